"""FTX423 lora-on-tied-head: LoRA on lm_head of a base whose head is the embedding."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import build_tokenizer

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX423"]


def _adapter(folder, targets):
    folder.mkdir()
    data = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": targets}
    (folder / "adapter_config.json").write_text(json.dumps(data))
    build_tokenizer(folder)
    return folder


def test_noop_untied_base_or_no_head(make_checkpoint, tmp_path):
    """An untied base with a head LoRA, or a tied base without one: nothing."""
    untied, tied = make_checkpoint("untied"), make_checkpoint("tied", tied=True)
    assert _found(ftfix.check(untied, _adapter(tmp_path / "a", ["q_proj", "lm_head"]))) == []
    assert _found(ftfix.check(tied, _adapter(tmp_path / "b", ["q_proj", "v_proj"]))) == []


@pytest.mark.parametrize("targets", [["q_proj", "lm_head"], ".*(q_proj|lm_head)"])
def test_reports_head_lora_on_tied_base(make_checkpoint, tmp_path, targets):
    """lm_head in the list, or matched by the regular expression: reported."""
    tied = make_checkpoint("tied", tied=True)
    (finding,) = _found(ftfix.check(tied, _adapter(tmp_path / "a", targets)))
    assert "merge before serving" in finding.message
