"""FTX209 base-looks-swapped: BASE and FINETUNED reversed; no fix, and no fix creates an error."""

from __future__ import annotations

import pytest
from ckpt_builders import LLAMA3_TEMPLATE, LLAMA3_TEMPLATE_NO_GEN_PROMPT, tree_digest

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX209"]


def test_noop_healthy_pair(pair):
    """Same folder contents on both sides."""
    assert _found(ftfix.check(*pair)) == []


def test_noop_finetune_added_tokens(make_checkpoint):
    """The usual direction: the fine-tune has tokens the base lacks."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=["<|turn_start|>"])
    assert _found(ftfix.check(base, ft)) == []


def test_warning_base_template_ignores_generation_prompt(make_checkpoint):
    """Issue 13 item 5: a "base" whose template ignores add_generation_prompt while the
    fine-tune's honours it: FTX002 no longer replaces the working template with the broken one
    (nothing is written, no FTX005 on ftfix's own result); FTX209 says what it looks like."""
    base = make_checkpoint("base", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE)
    before = tree_digest(ft)
    report = ftfix.repair(base, ft)
    assert tree_digest(ft) == before
    assert [f.code for f in report.findings if f.code in ("FTX002", "FTX005")] == []
    (finding,) = _found(report)
    assert finding.severity.value == "warning" and finding.fix is None
    assert "swapped" in finding.message


def test_reversed_finetune_is_the_swapped_case(make_checkpoint):
    """The same pair with the arguments in the right order: FTX002 repairs the fine-tune."""
    base = make_checkpoint("base", chat_template=LLAMA3_TEMPLATE)
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    report = ftfix.repair(base, ft)
    assert [f.code for f in report.applied] == ["FTX002"]
    assert _found(report) == []


@pytest.mark.slow
def test_error_reversed_trl_pair_writes_nothing(tmp_path):
    """Issue 13 item 5: a TRL ChatML fine-tune (turn tokens added) passed as BASE and its base
    as FINETUNED: FTX209 error; the safe FTX001 would install the ChatML template into a
    tokenizer without its markers (a new FTX007 error), so it is not applied: nothing is
    written."""
    from builders_precision import NEW_END, NEW_START, trl_finetune
    from tiny_training import build_base

    real_base = build_base(tmp_path / "real-base")
    real_ft = trl_finetune(
        tmp_path / "real-ft", real_base, add_tokens=(NEW_START, NEW_END), start=NEW_START,
        end=NEW_END, steps=2,
    )  # fmt: skip
    before = tree_digest(real_base)
    report = ftfix.repair(real_ft, real_base)
    assert tree_digest(real_base) == before
    (finding,) = _found(report)
    assert finding.severity.value == "error"
    assert "<|turn_start|>" in finding.message and "swapped" in finding.message
    assert report.applied == []
    assert "would create FTX007" in report.skipped[("FTX001", "chat_template.jinja")]
    assert report.exit_code == 1
