"""ftfix verify: tiny models trained in the test show whether answers stop, before and after."""

from __future__ import annotations

import json

import pytest
from tiny_training import CONVERSATIONS, build_base, train_chat_lora, train_chat_model

import ftfix
from ftfix.cli import main
from ftfix.verify import load_prompts

pytestmark = pytest.mark.slow

# The trained conversations, with their answers as references for the end-of-turn probability.
PROBES = [list(c[:2]) for c in CONVERSATIONS[:4]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ChatML fine-tune of a base model whose generation_config stops only on <|end_of_text|>."""
    root = tmp_path_factory.mktemp("verify")
    base = build_base(root / "base")
    ft = train_chat_model(root / "ft", base=base)
    return base, ft


def test_broken_then_repaired(trained, tmp_path):
    """As saved, answers run to max_new_tokens; the repaired copy stops every time."""
    base, ft = trained
    report = ftfix.verify(base, ft, prompts=PROBES, max_new_tokens=24, compare_before=True)
    assert report.stop_rate == 0.0
    assert report.metrics["max_tokens_rate"] == 1.0
    assert report.end_of_turn == ["<|im_end|>"]
    assert report.repaired is not None
    assert report.repaired.stop_rate == 1.0
    assert report.repaired.metrics["end_of_turn_stop_rate"] == 1.0
    assert report.repaired.metrics["empty_rate"] == 0.0
    # the model did learn to end turns: teacher-forced probability of <|im_end|> is high
    assert report.metrics["mean_end_of_turn_probability"] > 0.5
    assert report.exit_code == 1  # the folder as it is does not stop (issue 13 item 13)
    text = report.render_text()
    assert "stop_rate" in text and "repaired" in text
    assert "<table>" in report._repr_html_()


def test_cli_verify_gates_on_stop_rate(trained, tmp_path, capsys):
    """The CLI exits 1 when the stop rate is below --min-stop-rate, and 0 after a repair."""
    base, ft = trained
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"messages": p}) for p in PROBES) + "\n")
    assert len(load_prompts(prompts)) == len(PROBES)
    args = ["verify", str(base), str(ft), "--prompts", str(prompts), "--max-new-tokens", "24"]
    assert main([*args, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["metrics"]["stop_rate"] == 0.0
    out = tmp_path / "fixed"
    ftfix.repair(base, ft, output=out)
    assert (
        main(["verify", str(base), str(out), "--prompts", str(prompts), "--max-new-tokens", "24"])
        == 0
    )


def test_adapter_is_verified_through_peft(trained, tmp_path):
    """A LoRA adapter (with a trained lm_head copy) is loaded on its base through peft."""
    base, _ = trained
    adapter = train_chat_lora(tmp_path / "lora", base)
    report = ftfix.verify(base, adapter, prompts=PROBES, max_new_tokens=24, compare_before=True)
    assert report.stop_rate == 0.0
    assert report.repaired is not None and report.repaired.stop_rate == 1.0


def test_looping_model_is_flagged(tmp_path):
    """A model trained to repeat itself is flagged as looping."""
    base = build_base(tmp_path / "base")
    chant = "pong pong pong pong pong pong pong pong pong pong pong pong pong pong pong pong"
    loop = [({"role": "user", "content": "ping"}, {"role": "assistant", "content": chant})]
    ft = train_chat_model(tmp_path / "ft", base=base, conversations=loop)
    report = ftfix.verify(base, ft, prompts=[[loop[0][0]]], max_new_tokens=16)
    assert report.metrics["loop_rate"] == 1.0


def test_bad_prompts_file(tmp_path, trained):
    """A malformed prompts file is a clear error."""
    base, ft = trained
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"messages": "nope"}\n')
    with pytest.raises(ftfix.InvalidCheckpointError, match="line 1: expected a list"):
        ftfix.verify(base, ft, prompts=bad)
