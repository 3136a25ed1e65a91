"""FTX401 quantization-config-unused: a 4-bit config left on 16-bit merged weights."""

from __future__ import annotations

import pytest
from builders_config import read_json, rewrite_tensors, set_json
from ckpt_builders import copy_checkpoint

import ftfix

BNB = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}


def _found(report):
    return [f for f in report.findings if f.code == "FTX401"]


def test_noop_healthy_pair(pair):
    """No quantization_config: nothing to say."""
    assert _found(ftfix.check(*pair)) == []


def test_noop_really_quantised(pair):
    """bitsandbytes 4-bit tensors (U8 weight + absmax + quant_state) match the config."""
    base, ft = pair
    set_json(ft, "config.json", quantization_config=BNB)
    name = "model.layers.0.mlp.down_proj"
    rewrite_tensors(
        ft,
        add={
            f"{name}.weight": ("U8", (4, 1), bytes(4)),
            f"{name}.weight.absmax": ("F32", (1,), bytes(4)),
            f"{name}.weight.quant_state.bitsandbytes__nf4": ("U8", (8,), bytes(8)),
        },
    )
    assert _found(ftfix.check(base, ft)) == []


def test_fix_removes_key_and_transformers_loads(make_checkpoint, tmp_path):
    """Before: transformers refuses the bnb config; after: the key is gone and the model loads."""
    from transformers import LlamaForCausalLM

    base = make_checkpoint("base", full_model=True)
    ft = copy_checkpoint(base, tmp_path / "ft")
    set_json(ft, "config.json", quantization_config=BNB)
    with pytest.raises((ImportError, ValueError, RuntimeError)):
        LlamaForCausalLM.from_pretrained(str(ft))

    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert "bitsandbytes" in finding.message
    assert finding.fix.applicability.value == "safe"

    report = ftfix.repair(base, ft)
    assert report.exit_code == 0, report.render_text()
    assert "quantization_config" not in read_json(ft)
    assert (ft / "config.json").read_bytes() == (base / "config.json").read_bytes()
    LlamaForCausalLM.from_pretrained(str(ft))
    assert _found(ftfix.check(base, ft)) == []
