"""Issue 13 items 10 and 12-16: a model that cannot stop must not pass, and verify judges the
folder as it is. Real TRL + peft training on CPU (seconds)."""

from __future__ import annotations

import json

import pytest
from builders_precision import NEW_END, NEW_START, trl_finetune
from tiny_training import CONVERSATIONS, build_base

import ftfix
from ftfix.cli import main
from ftfix.verify import ProbeOutcome, VerifyReport

pytestmark = pytest.mark.slow

PROBES = [list(c[:2]) for c in CONVERSATIONS[:4]]


@pytest.fixture(scope="module")
def frozen_head(tmp_path_factory):
    """The most common LoRA mistake, made with TRL: ChatML-style turn tokens added with
    transformers' default mean resizing, LoRA on the projections, lm_head frozen (no
    modules_to_save). peft saves the resized embedding and head with the adapter."""
    root = tmp_path_factory.mktemp("frozen")
    base = build_base(root / "base")
    adapter = trl_finetune(
        root / "adapter", base, add_tokens=(NEW_START, NEW_END), start=NEW_START, end=NEW_END,
        lora=True, steps=60,
    )  # fmt: skip
    return base, adapter


def test_frozen_end_of_turn_row_is_an_error_that_repair_cannot_hide(frozen_head, tmp_path):
    """Item 10: the end-of-turn output row sits at its mean init: FTX206 is an error (with the
    cure), check still fails after repair, and generating confirms the model never stops."""
    base, adapter = frozen_head
    report = ftfix.check(base, adapter)
    (finding,) = [f for f in report.findings if f.code == "FTX206"]
    assert finding.severity.value == "error"
    assert "<|turn_end|>" in finding.message and "initialized, never trained" in finding.message
    assert "modules_to_save or trainable_token_indices" in finding.message
    # one view: FTX103 no longer reports the same output row as a warning
    for other in report.findings:
        if other.code == "FTX103" and "<|turn_end|>" in other.message:
            assert "output row" not in other.message
    copy = tmp_path / "repaired"
    repaired = ftfix.repair(base, adapter, output=copy)
    assert repaired.exit_code == 1
    assert ftfix.check(base, copy).exit_code == 1

    # Item 12: verify loads an adapter whose training added tokens (no size-mismatch crash).
    measured = ftfix.verify(base, copy, prompts=PROBES, max_new_tokens=16)
    assert measured.end_of_turn == ["<|turn_end|>"]
    assert measured.verdict_rate == 0.0 and measured.exit_code == 1
    assert measured.metrics["mean_end_of_turn_probability"] < 0.1
    # The record verify leaves proves nothing here: FTX206 stays an error.
    record = json.loads((copy / ".ftfix" / "verified.json").read_text())
    assert record["end_of_turn"] == "<|turn_end|>" and record["end_of_turn_stop_rate"] == 0.0
    assert ftfix.check(base, copy).exit_code == 1
    # Item 16: the notebook view shows the verdict, the end of turn and sample answers.
    page = measured._repr_html_()
    assert "Verdict:" in page and "&lt;|turn_end|&gt;" in page and "ended turn" in page


def test_verify_adapter_with_trained_head_and_added_tokens(tmp_path):
    """Items 12 and 13: the standard TRL ChatML + LoRA setup with modules_to_save; verify
    loads it (base resized first) and judges the folder as it is, not the repaired copy."""
    base = build_base(tmp_path / "base")
    adapter = trl_finetune(
        tmp_path / "adapter", base, add_tokens=(NEW_START, NEW_END), start=NEW_START,
        end=NEW_END, lora=True, modules_to_save=("embed_tokens", "lm_head"), steps=80,
        stop_on_end=False,
    )  # fmt: skip
    report = ftfix.verify(base, adapter, prompts=PROBES, max_new_tokens=16, compare_before=True)
    assert report.repaired is not None
    # As saved it cannot stop (the base's generation config stops on <|end_of_text|> only).
    assert report.verdict_rate == 0.0
    assert report.exit_code == 1
    assert report.repaired.verdict_rate >= 0.75
    assert "Verdict: end-of-turn stop rate 0.00" in report.render_text()
    assert "The repaired copy would pass" in report.render_text()


def test_verdict_counts_only_the_first_turn_ending():
    """Item 14: stopping on the base eos after writing fake turns is not ending the turn."""
    fake_turns = ProbeOutcome("p", "a<|im_end|><|im_start|>user ...<|end_of_text|>", 9, True,
                              False, False, False, False)  # fmt: skip
    ended = ProbeOutcome("p", "a<|im_end|>", 2, True, True, False, False, False)
    report = VerifyReport("ft", "as is", ["<|im_end|>"], [fake_turns] * 3 + [ended])
    assert report.stop_rate == 1.0
    assert report.verdict_rate == 0.25
    assert report.exit_code == 1


def test_incomplete_weights_exit_2(make_checkpoint, capsys):
    """Item 15: transformers reports missing tensors (only the embedding and head stored, as
    in the README's demo model): no verdict, a clear error and exit 2."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft")
    with pytest.raises(ftfix.InvalidCheckpointError, match="weights incomplete"):
        ftfix.verify(base, ft, prompts=PROBES, max_new_tokens=4)
    assert main(["verify", str(base), str(ft), "--max-new-tokens", "4"]) == 2
    assert "weights incomplete" in capsys.readouterr().err
