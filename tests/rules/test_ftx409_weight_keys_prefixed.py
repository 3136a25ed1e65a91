"""FTX409 weight-keys-prefixed: `_orig_mod.` / `module.` keys and the VLM rename."""

from __future__ import annotations

import pytest
from builders_config import rewrite_tensors

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX409"]


def test_noop_healthy_pair(pair):
    """The base's keys: nothing."""
    assert _found(ftfix.check(*pair)) == []


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module."])
def test_reports_wrapper_prefix(make_checkpoint, prefix):
    """Every key prefixed: reported with the map, and transformers indeed misses the weights."""
    from transformers import LlamaForCausalLM

    base = make_checkpoint("base", full_model=True)
    ft = make_checkpoint("ft", full_model=True)
    rewrite_tensors(ft, rename=lambda n: prefix + n)
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.severity.value == "error"
    assert finding.data["prefix_map"] == [prefix, ""]
    assert (
        finding.data["unmatched"] == len(finding.data["examples"]) or finding.data["unmatched"] > 5
    )
    _, info = LlamaForCausalLM.from_pretrained(str(ft), output_loading_info=True)
    assert "model.embed_tokens.weight" in info["missing_keys"]


def test_reports_without_base_weights(make_checkpoint):
    """Base weights absent: keys that all share a wrapper prefix are still reported."""
    base = make_checkpoint("base")
    (base / "model.safetensors").unlink()
    ft = make_checkpoint("ft")
    rewrite_tensors(ft, rename=lambda n: "_orig_mod." + n)
    assert len(_found(ftfix.check(base, ft))) == 1


def test_vlm_rename_is_named(make_checkpoint):
    """Keys renamed the transformers 4.52 way are explained by that one map."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    for folder, new in ((base, "language_model.model."), (ft, "model.language_model.")):
        rewrite_tensors(folder, rename=lambda n, new=new: n.replace("model.", new, 1))
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.data["prefix_map"] == ["model.language_model.", "language_model.model."]
