"""FTX404 dtype-mismatch: config.json's dtype keys against the stored tensors."""

from __future__ import annotations

import pytest
from builders_config import read_json, set_json

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX404"]


@pytest.mark.parametrize("layout", ["v5", "v4"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_noop_declared_as_stored(make_checkpoint, tmp_path, layout, dtype):
    """Healthy folders of either layout and dtype: nothing."""
    base = make_checkpoint("base", layout=layout, dtype=dtype)
    ft = make_checkpoint("ft", layout=layout, dtype=dtype)
    assert _found(ftfix.check(base, ft)) == []


@pytest.mark.parametrize(
    ("updates", "remove", "expected"),
    [
        pytest.param({}, ("dtype",), "declares no dtype", id="missing"),
        pytest.param({"dtype": None}, (), "dtype is null", id="null"),
        pytest.param({"torch_dtype": "float32"}, (), "torch_dtype is float32", id="wrong"),
    ],
)
def test_fix_writes_both_keys(make_checkpoint, updates, remove, expected):
    """BF16 tensors: dtype and torch_dtype both become bfloat16; transformers loads bf16."""
    import torch
    from transformers import LlamaForCausalLM

    base = make_checkpoint("base", dtype="bfloat16", full_model=True)
    ft = make_checkpoint("ft", dtype="bfloat16", full_model=True)
    set_json(ft, "config.json", remove=remove, **updates)

    finding = _found(ftfix.check(base, ft))[0]
    assert expected in finding.message and "stored as bfloat16" in finding.message
    ftfix.repair(base, ft)
    config = read_json(ft)
    assert config["dtype"] == config["torch_dtype"] == "bfloat16"
    model = LlamaForCausalLM.from_pretrained(str(ft), dtype="auto")
    assert model.dtype == torch.bfloat16
    assert _found(ftfix.check(base, ft)) == []
