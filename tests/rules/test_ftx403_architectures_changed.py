"""FTX403 architectures-changed: a bare `LlamaModel` left by a merge script."""

from __future__ import annotations

from builders_config import read_json, rewrite_tensors, set_json
from ckpt_builders import copy_checkpoint

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX403"]


def test_noop_healthy_pair(pair):
    """Same architectures: nothing."""
    assert _found(ftfix.check(*pair)) == []


def test_noop_keys_are_not_the_base_class(pair):
    """A really bare model (keys without `model.` and no head) is what its config says."""
    base, ft = pair
    set_json(ft, "config.json", architectures=["LlamaModel"])
    rewrite_tensors(ft, rename=lambda n: n.removeprefix("model."))
    assert _found(ftfix.check(base, ft)) == []


def test_noop_other_model_type(pair):
    """A different model_type is another model, not a drifted class name."""
    base, ft = pair
    set_json(ft, "config.json", architectures=["MistralForCausalLM"], model_type="mistral")
    assert _found(ftfix.check(base, ft)) == []


def test_fix_restores_base_architectures(make_checkpoint, tmp_path):
    """`LlamaModel` over the base's keys: restored.

    transformers loads either way (AutoModelForCausalLM goes by model_type): the breakage is
    vLLM's, whose registry lists "LlamaModel" among `_EMBEDDING_MODELS`
    (vllm/model_executor/models/registry.py), and llama.cpp's converter's.
    """
    from transformers import AutoModelForCausalLM

    base = make_checkpoint("base", full_model=True)
    ft = copy_checkpoint(base, tmp_path / "ft")
    set_json(ft, "config.json", architectures=["LlamaModel"])
    assert type(AutoModelForCausalLM.from_pretrained(str(ft))).__name__ == "LlamaForCausalLM"

    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert "['LlamaModel']" in finding.message and "LlamaForCausalLM" in finding.message

    ftfix.repair(base, ft)
    assert read_json(ft)["architectures"] == ["LlamaForCausalLM"]
    assert (ft / "config.json").read_bytes() == (base / "config.json").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(str(ft))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert _found(ftfix.check(base, ft)) == []


def test_fix_without_base_weights(make_checkpoint, tmp_path):
    """The base's weights are not at hand (a Hub base without weights): the head decides."""
    base = make_checkpoint("base")
    (base / "model.safetensors").unlink()
    ft = make_checkpoint("ft")
    set_json(ft, "config.json", architectures=["LlamaModel"])
    finding = _found(ftfix.check(base, ft))[0]
    assert "output head" in finding.message
    ftfix.repair(base, ft)
    assert read_json(ft)["architectures"] == ["LlamaForCausalLM"]
