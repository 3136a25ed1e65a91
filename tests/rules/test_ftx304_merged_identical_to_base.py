"""FTX304 merged-identical-to-base: a merged fine-tune that is byte-for-byte its base."""

from __future__ import annotations

import shutil

import pytest
from builders_adapters import build_base, kit, rewrite_tensors
from ckpt_builders import copy_checkpoint

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


def _found(report):
    return [f for f in report.findings if f.code == "FTX304"]


def _merge(base, adapter, out):
    """What a user does: load base + adapter with peft, merge_and_unload, save_pretrained."""
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(str(base)), str(adapter))
    merged = model.merge_and_unload()
    copy_checkpoint(base, out)
    (out / "model.safetensors").unlink()
    merged.save_pretrained(str(out))
    return out


def test_warning_merge_of_an_untrained_adapter(k, tmp_path):
    """merge_and_unload() of an adapter that never trained: the base, saved again."""
    merged = _merge(k["base"], k["untrained"], tmp_path / "merged")
    (finding,) = _found(ftfix.check(k["base"], merged))
    assert finding.severity.value == "warning"
    assert finding.path == "model.safetensors"
    assert "byte-identical to the base's: this is the base model" in finding.message
    assert finding.data["bytes_compared"] > 0


def test_noop_merge_of_a_trained_adapter(k, tmp_path):
    """Merging a trained LoRA changes every targeted matrix."""
    merged = _merge(k["base"], k["attention"], tmp_path / "merged")
    assert _found(ftfix.check(k["base"], merged)) == []


def test_noop_one_changed_kind_is_enough(k, tmp_path):
    """Only the down_proj weights changed (a partial fine-tune): not the base."""
    ft = copy_checkpoint(k["base"], tmp_path / "ft")
    rewrite_tensors(
        ft / "model.safetensors",
        lambda n, d, s, b: (n, s, bytes(reversed(b)) if "down_proj" in n else b),
    )
    assert _found(ftfix.check(k["base"], ft)) == []


def test_noop_another_initialisation(k, tmp_path):
    """Same architecture, other weights."""
    other = build_base(tmp_path / "other", seed=1)
    assert _found(ftfix.check(k["base"], other)) == []


def test_noop_embeddings_only_checkpoints(make_checkpoint, tmp_path):
    """Without transformer layers to sample (embedding-only test checkpoints): no verdict."""
    base = make_checkpoint("base")
    ft = tmp_path / "ft"
    shutil.copytree(base, ft)
    assert _found(ftfix.check(base, ft)) == []
