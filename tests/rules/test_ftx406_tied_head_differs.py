"""FTX406 tied-head-differs: a tied config next to a stored, trained head."""

from __future__ import annotations

import numpy as np
from builders_config import read_json, set_json
from ckpt_builders import read_tensor

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX406"]


def test_noop_healthy_pair(pair):
    """Untied config with a head: nothing."""
    assert _found(ftfix.check(*pair)) == []


def test_noop_tied_without_head(make_checkpoint):
    """Tied and no lm_head stored: what a tied save looks like."""
    base = make_checkpoint("base", tied=True)
    ft = make_checkpoint("ft", tied=True)
    assert _found(ftfix.check(base, ft)) == []


def test_noop_stored_head_equals_embedding(make_checkpoint, tmp_path):
    """Tied, and the stored head is byte-identical to the embedding: the tie loses nothing."""
    from builders_config import rewrite_tensors
    from ckpt_builders import read_safetensors_header

    base = make_checkpoint("base", tied=True)
    ft = make_checkpoint("ft", tied=True)
    info = read_safetensors_header(ft / "model.safetensors")["model.embed_tokens.weight"]
    embed = read_tensor(ft / "model.safetensors", "model.embed_tokens.weight")
    rewrite_tensors(ft, add={"lm_head.weight": ("F32", tuple(info["shape"]), embed.tobytes())})
    assert _found(ftfix.check(base, ft)) == []


def test_unsafe_fix_unties_and_transformers_uses_the_stored_head(make_checkpoint, caplog):
    """transformers 5 keeps the stored head (and warns); after the fix it loads it silently.

    vLLM is what breaks: with `tie_word_embeddings` its Llama/Qwen2 `load_weights` skips every
    `lm_head.` tensor (`AutoWeightsLoader(self, skip_prefixes=["lm_head."])`,
    vllm/model_executor/models/llama.py), so the served head is the embedding.
    """
    from transformers import LlamaForCausalLM

    base = make_checkpoint("base", full_model=True)
    ft = make_checkpoint("ft", full_model=True, seed=1)
    set_json(ft, "config.json", tie_word_embeddings=True)
    stored_head = read_tensor(ft / "model.safetensors", "lm_head.weight")
    embed = read_tensor(ft / "model.safetensors", "model.embed_tokens.weight")

    served = LlamaForCausalLM.from_pretrained(str(ft)).lm_head.weight.detach().numpy()
    assert np.array_equal(served, stored_head) and not np.array_equal(served, embed)
    assert "tie_word_embeddings=False" in caplog.text

    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert finding.fix.applicability.value == "unsafe"

    ftfix.repair(base, ft)  # safe fixes only: left as is
    assert read_json(ft)["tie_word_embeddings"] is True

    ftfix.repair(base, ft, unsafe_fixes=True)
    assert read_json(ft)["tie_word_embeddings"] is False
    caplog.clear()
    served = LlamaForCausalLM.from_pretrained(str(ft)).lm_head.weight.detach().numpy()
    assert np.array_equal(served, stored_head)
    assert "tie_word_embeddings=False" not in caplog.text
    assert _found(ftfix.check(base, ft)) == []
