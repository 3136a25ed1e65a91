"""FTX305 deepspeed-weights-not-consolidated: placeholders where the weights should be."""

from __future__ import annotations

import pytest
from builders_adapters import kit, rewrite_tensors
from ckpt_builders import copy_checkpoint, tree_digest

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


def _found(report):
    return [f for f in report.findings if f.code == "FTX305"]


def _zero3_save(ft, *, deepspeed_files=True):
    """What a ZeRO-3 save without gathering leaves: [0] tensors (all but the norms)."""
    rewrite_tensors(
        ft / "model.safetensors",
        lambda n, d, s, b: (n, s, b) if n.endswith("norm.weight") else (n, [0], b""),
    )
    if deepspeed_files:
        (ft / "global_step1200").mkdir()
        (ft / "global_step1200" / "zero_pp_rank_0_mp_rank_00_model_states.pt").write_bytes(b"")
        (ft / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
        (ft / "latest").write_text("global_step1200")


def test_error_placeholders_beside_deepspeed_checkpoint(k, tmp_path):
    """transformers refuses the size mismatch; the message gives the recovery command."""
    from transformers import LlamaForCausalLM

    ft = copy_checkpoint(k["base"], tmp_path / "ft")
    _zero3_save(ft)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        LlamaForCausalLM.from_pretrained(str(ft))
    (finding,) = _found(ftfix.check(k["base"], ft))
    assert finding.severity.value == "error"
    assert finding.path == "model.safetensors"
    assert finding.message.startswith(
        "23 of 30 weight tensors have no elements (lm_head.weight [0], "
        "model.embed_tokens.weight [0], "
    )
    assert "`python zero_to_fp32.py . recovered/ --safe_serialization`" in finding.message
    assert finding.data["deepspeed_checkpoint"] == "global_step1200"
    before = tree_digest(ft)
    ftfix.repair(k["base"], ft, unsafe_fixes=True)
    assert tree_digest(ft) == before


def test_error_placeholders_without_deepspeed_files(k, tmp_path):
    """No DeepSpeed checkpoint left: how to re-save, no recovery command."""
    ft = copy_checkpoint(k["base"], tmp_path / "ft")
    _zero3_save(ft, deepspeed_files=False)
    (finding,) = _found(ftfix.check(k["base"], ft))
    assert "stage3_gather_16bit_weights_on_model_save" in finding.message
    assert "zero_to_fp32" not in finding.message


def test_error_only_deepspeed_weights(k, tmp_path):
    """config.json and tokenizer, no model.safetensors, and DeepSpeed's global_stepN."""
    ft = copy_checkpoint(k["base"], tmp_path / "ft")
    (ft / "model.safetensors").unlink()
    (ft / "global_step7").mkdir()
    (ft / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
    (finding,) = _found(ftfix.check(k["base"], ft))
    assert finding.message.startswith(
        "no weights in the folder; only DeepSpeed's checkpoint (global_step7/) holds them"
    )


def test_noop_healthy_with_deepspeed_files(k, tmp_path):
    """Gathered weights next to DeepSpeed's checkpoint (a resumable run): fine."""
    ft = copy_checkpoint(k["base"], tmp_path / "ft")
    (ft / "global_step1200").mkdir()
    (ft / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
    assert _found(ftfix.check(k["base"], ft)) == []
