"""FTX421 adapter-trainable-tokens: peft's trainable token rows, which only peft applies."""

from __future__ import annotations

from ckpt_builders import TOKEN_IDS, build_adapter

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX421"]


def test_noop_plain_adapter(make_checkpoint, tmp_path):
    """A LoRA-only adapter: nothing."""
    base = make_checkpoint("peft-base", full_model=True)
    assert _found(ftfix.check(base, build_adapter(tmp_path / "lora", base))) == []


def test_reports_trainable_tokens(make_checkpoint, tmp_path):
    """trainable_token_indices saved by peft: a warning to merge before serving."""
    base = make_checkpoint("peft-base", full_model=True)
    ids = [TOKEN_IDS["<|im_end|>"]]
    adapter = build_adapter(tmp_path / "tokens", base, trainable_token_indices=ids)
    (finding,) = _found(ftfix.check(base, adapter))
    assert finding.data["trainable_token_indices"] == ids
    assert "merge before serving" in finding.message
