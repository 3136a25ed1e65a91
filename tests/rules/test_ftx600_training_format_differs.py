"""FTX600 training-format-differs: training rows against the saved template's rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders_training import (
    CONVERSATIONS,
    LF_QWEN_DEFAULT_SYSTEM,
    QWEN25_DEFAULT_SYSTEM,
    chatml_text,
    copy_folder,
    edit_template,
    load_tokenizer,
    qwen25_tokenizer_dir,
    trl_rows,
    write_jsonl,
)

import ftfix
from ftfix.cli import main
from ftfix.errors import InvalidCheckpointError


def _ftx600(report):
    return [f for f in report.findings if f.code == "FTX600"]


@pytest.fixture(scope="session")
def qwen25(tmp_path_factory):
    return qwen25_tokenizer_dir(tmp_path_factory)


@pytest.fixture
def ft(qwen25, tmp_path):
    return copy_folder(qwen25, tmp_path / "ft")


@pytest.fixture
def trl_file(qwen25, tmp_path):
    rows = trl_rows(load_tokenizer(qwen25), CONVERSATIONS)
    assert any("input_ids" in r for r in rows) and any("text" in r for r in rows)
    return write_jsonl(tmp_path / "trl.jsonl", rows)


def test_trl_rows_rendered_by_the_tokenizers_template_are_silent(ft, trl_file):
    report = ftfix.check(ft, trained_on=trl_file, select=["FTX600"])
    assert _ftx600(report) == []


def test_llamafactory_qwen_default_system_prompt_is_an_error(ft, tmp_path):
    rows = [
        {"messages": list(c), "text": chatml_text(c, default_system=LF_QWEN_DEFAULT_SYSTEM)}
        for c in CONVERSATIONS
    ]
    report = ftfix.check(ft, trained_on=write_jsonl(tmp_path / "lf.jsonl", rows))
    (finding,) = _ftx600(report)
    assert finding.severity.value == "error"
    assert finding.data["region"] == "system prompt"
    # Only the samples without their own system message differ.
    assert (finding.data["samples"], finding.data["differing"]) == (3, 2)
    assert finding.data["trained"] == LF_QWEN_DEFAULT_SYSTEM
    assert finding.data["served"] == QWEN25_DEFAULT_SYSTEM
    assert f"training had the system prompt {LF_QWEN_DEFAULT_SYSTEM!r}" in finding.message
    assert QWEN25_DEFAULT_SYSTEM in finding.message


def test_default_system_prompt_changed_after_training(ft, trl_file):
    edit_template(ft, QWEN25_DEFAULT_SYSTEM, "You are a pirate.")
    (finding,) = _ftx600(ftfix.check(ft, trained_on=trl_file, select=["FTX600"]))
    assert finding.severity.value == "error"
    assert finding.data["region"] == "system prompt"
    assert finding.data["trained"] == QWEN25_DEFAULT_SYSTEM
    assert finding.data["served"] == "You are a pirate."


def test_space_after_the_assistant_header_is_an_error(ft, trl_file):
    # Edited after training: the generation prompt and the assistant turns gain a space.
    edit_template(ft, "'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n '")
    edit_template(
        ft,
        "{{- '<|im_start|>' + message.role + '\\n' + message.content",
        "{{- '<|im_start|>' + message.role + '\\n' + (' ' if message.role == 'assistant' "
        "else '') + message.content",
    )
    (finding,) = _ftx600(ftfix.check(ft, trained_on=trl_file, select=["FTX600"]))
    assert finding.severity.value == "error"
    assert finding.data["region"] == "generation prompt"
    assert (finding.data["trained"], finding.data["served"]) == ("", " ")
    assert "with a space after" in finding.message and "assistant" in finding.message


def test_difference_inside_a_turn_is_a_warning(ft, tmp_path):
    # Training wrote a blank line before the second user turn; the template does not.
    rows = [
        {"messages": list(c), "text": chatml_text(c, default_system=QWEN25_DEFAULT_SYSTEM)}
        for c in CONVERSATIONS
    ]
    rows[2]["text"] = rows[2]["text"].replace(
        "<|im_end|>\n<|im_start|>user\nTell", "<|im_end|>\n\n<|im_start|>user\nTell"
    )
    (finding,) = _ftx600(ftfix.check(ft, trained_on=write_jsonl(tmp_path / "s.jsonl", rows)))
    assert finding.severity.value == "warning"
    assert finding.data["region"] == "turn"
    assert finding.data["differing"] == 1
    assert (finding.data["trained"], finding.data["served"]) == ("\n", "")


def test_blank_line_after_the_system_turn_is_not_the_system_prompt(ft, tmp_path):
    c = CONVERSATIONS[1]
    text = chatml_text(c, default_system=None).replace("<|im_end|>\n", "<|im_end|>\n\n", 1)
    rows = [{"messages": list(c), "text": text}]
    (finding,) = _ftx600(ftfix.check(ft, trained_on=write_jsonl(tmp_path / "b.jsonl", rows)))
    assert finding.data["region"] == "prompt start"
    assert finding.severity.value == "warning"


def test_ids_tokenized_apart_are_reported(ft, qwen25, tmp_path):
    tok = load_tokenizer(qwen25)
    messages = list(CONVERSATIONS[0])
    text = tok.apply_chat_template(messages, tokenize=False)
    cut = text.index("Paris")
    ids = tok(text[:cut], add_special_tokens=False)["input_ids"]
    ids += tok(text[cut:], add_special_tokens=False)["input_ids"]
    joined = tok(text, add_special_tokens=False)["input_ids"]
    assert ids != joined and tok.decode(ids) == text
    rows = [{"messages": messages, "input_ids": ids}]
    (finding,) = _ftx600(ftfix.check(ft, trained_on=write_jsonl(tmp_path / "i.jsonl", rows)))
    assert finding.data["region"] == "token ids"
    assert finding.severity.value == "warning"


def test_eos_appended_by_the_trainer_is_not_a_difference(ft, qwen25, tmp_path):
    tok = load_tokenizer(qwen25)
    rows = [
        {
            "messages": list(c),
            "text": tok.apply_chat_template(list(c), tokenize=False) + "<|im_end|>",
        }
        for c in CONVERSATIONS
    ]
    report = ftfix.check(ft, trained_on=write_jsonl(tmp_path / "e.jsonl", rows))
    assert _ftx600(report) == []


def test_cli_trained_on(ft, tmp_path, capsys):
    rows = [
        {"messages": list(c), "text": chatml_text(c, default_system=LF_QWEN_DEFAULT_SYSTEM)}
        for c in CONVERSATIONS
    ]
    path = write_jsonl(tmp_path / "lf.jsonl", rows)
    code = main(
        ["check", str(ft), "--trained-on", str(path), "--select", "FTX600", "--format", "json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [f["code"] for f in out["findings"]] == ["FTX600"]


def test_a_file_without_samples_is_bad_input(ft, tmp_path, capsys):
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "hi"}\nnot json\n', "utf-8")
    with pytest.raises(InvalidCheckpointError):
        ftfix.check(ft, trained_on=path)
    assert main(["check", str(ft), "--trained-on", str(path)]) == 2
    assert "no line has a conversation" in capsys.readouterr().err


def test_without_samples_the_rule_is_silent(ft):
    assert _ftx600(ftfix.check(ft, select=["FTX600"])) == []


RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"


@pytest.mark.parametrize(
    ("framework", "version", "template", "differing"),
    [
        ("llamafactory", "0.9.5", "qwen", 0),
        ("llamafactory", "0.9.2", "qwen", 2),
        ("ms-swift", "4.6.0", "qwen2_5", 0),
        ("ms-swift", "4.6.0", "qwen", 2),
    ],
)
def test_framework_recordings(ft, framework, version, template, differing):
    """Rows the frameworks' own template code produced (tools/record_training_formats.py).

    LLaMA-Factory's `qwen` trained with "You are a helpful assistant." up to 0.9.2 and with
    Qwen2.5's prompt from 0.9.3; ms-swift's `qwen` with the former, `qwen2_5` with the latter.
    """
    path = RECORDINGS / f"{framework}-{version}-{template}-qwen2.5.jsonl"
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert {(r["framework"], r["version"], r["template"]) for r in rows} == {
        (framework, version, template)
    }
    found = _ftx600(ftfix.check(ft, trained_on=path, select=["FTX600"]))
    if not differing:
        # Trained with Qwen2.5's own system prompt: the saved template reproduces the ids.
        assert found == []
        return
    (finding,) = found
    assert finding.severity.value == "error"
    assert (finding.data["differing"], finding.data["region"]) == (differing, "system prompt")
    assert finding.data["trained"] == LF_QWEN_DEFAULT_SYSTEM
    assert finding.data["served"] == QWEN25_DEFAULT_SYSTEM


def test_unsafe_fix_writes_the_training_system_prompt(ft, qwen25):
    """Rows recorded in .ftfix/ (as RepairCallback keeps them) drive a validated unsafe fix."""
    recording = RECORDINGS / "llamafactory-0.9.2-qwen-qwen2.5.jsonl"
    (ft / ".ftfix").mkdir()
    (ft / ".ftfix" / "training_samples.jsonl").write_bytes(recording.read_bytes())
    (finding,) = _ftx600(ftfix.check(ft, select=["FTX600"]))
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"

    safe = ftfix.repair(ft, select=["FTX600"])
    assert not safe.applied
    assert QWEN25_DEFAULT_SYSTEM in (ft / "chat_template.jinja").read_text("utf-8")

    report = ftfix.repair(ft, select=["FTX600"], unsafe_fixes=True)
    assert [f.code for f in report.applied] == ["FTX600"]
    assert not [f for f in report.remaining if f.code == "FTX600"]
    saved = (ft / "chat_template.jinja").read_text("utf-8")
    assert QWEN25_DEFAULT_SYSTEM not in saved and LF_QWEN_DEFAULT_SYSTEM in saved
    # transformers now renders every recorded row to the ids LLaMA-Factory trained on.
    tok = load_tokenizer(ft)
    for line in recording.read_text("utf-8").splitlines():
        row = json.loads(line)
        encoded = tok.apply_chat_template(row["messages"], tokenize=True)
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        assert list(ids) == row["input_ids"]
    assert _ftx600(ftfix.check(ft, select=["FTX600"])) == []


def test_no_fix_when_the_template_does_not_hold_the_prompt(ft, tmp_path):
    # Training had no system prompt and the template adds one: nothing to substitute.
    rows = [
        {"messages": list(c), "text": chatml_text(c, default_system=None)} for c in CONVERSATIONS
    ]
    (finding,) = _ftx600(ftfix.check(ft, trained_on=write_jsonl(tmp_path / "n.jsonl", rows)))
    assert finding.data["trained"] == "" and finding.fix is None


def test_no_fix_unless_every_row_then_renders_identically(ft, tmp_path):
    # The system prompt differs, and one row also has a blank line the template never writes.
    rows = [
        {"messages": list(c), "text": chatml_text(c, default_system=LF_QWEN_DEFAULT_SYSTEM)}
        for c in CONVERSATIONS
    ]
    rows[2]["text"] = rows[2]["text"].replace(
        "<|im_end|>\n<|im_start|>user\nTell", "<|im_end|>\n\n<|im_start|>user\nTell"
    )
    (finding,) = _ftx600(ftfix.check(ft, trained_on=write_jsonl(tmp_path / "v.jsonl", rows)))
    assert finding.data["region"] == "system prompt" and finding.fix is None
