"""The CLI: exit codes 0/1/2, output formats, one-line errors with hints, nothing modified."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, tree_digest

from ftfix.cli import main


@pytest.fixture
def broken(make_checkpoint):
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    return base, ft


def test_check_clean_exits_0(pair, capsys):
    """A healthy pair exits 0 and says so."""
    base, ft = pair
    assert main(["check", str(base), str(ft)]) == 0
    assert capsys.readouterr().out.strip() == "All checks passed."


def test_check_errors_exit_1_with_ruff_like_line(broken, capsys):
    """An error finding exits 1; the line names path, code, severity and the fix marker."""
    base, ft = broken
    assert main(["check", str(base), str(ft)]) == 1
    out = capsys.readouterr().out
    assert f"{ft}/chat_template.jinja: FTX002 error [*] with add_generation_prompt=True" in out
    assert 'Found 1 problem (1 error). 1 fixable with "ftfix repair".' in out


def test_exit_zero(broken):
    """--exit-zero reports but passes."""
    base, ft = broken
    assert main(["check", "--exit-zero", str(base), str(ft)]) == 0


def test_repair_then_check(broken, capsys):
    """repair exits 0 once the error is fixed; check then passes."""
    base, ft = broken
    assert main(["repair", str(base), str(ft)]) == 0
    out = capsys.readouterr().out
    assert "FTX002 error [fixed]" in out and "Fixed 1 problem; none remaining." in out
    assert main(["check", str(base), str(ft)]) == 0


@pytest.mark.parametrize("flag", ["--dry-run", "--diff"])
def test_dry_run_and_diff_write_nothing(broken, capsys, flag):
    """--dry-run and --diff leave every byte; --diff prints the diff and exits 1 when non-empty."""
    base, ft = broken
    before = tree_digest(ft)
    code = main(["repair", flag, str(base), str(ft)])
    assert tree_digest(ft) == before
    out = capsys.readouterr().out
    if flag == "--diff":
        assert code == 1
        assert out.startswith("--- a/chat_template.jinja\n+++ b/chat_template.jinja\n")
    else:
        assert code == 0  # dry-run predicts repair's exit code: every error would be fixed
        assert "Would fix 1 problem; none remaining." in out


def test_diff_exit_0_when_nothing_to_change(pair, capsys):
    """--diff on a healthy pair prints nothing to stdout and exits 0."""
    base, ft = pair
    assert main(["repair", "--diff", str(base), str(ft)]) == 0
    assert capsys.readouterr().out == ""


def test_json_format(broken, capsys):
    """--format json prints one JSON document."""
    base, ft = broken
    assert main(["check", "--format", "json", str(base), str(ft)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in data["findings"]] == ["FTX002"]


def test_select_and_ignore(broken, capsys):
    """--ignore by prefix drops the rule; an unknown code is a usage error (exit 2)."""
    base, ft = broken
    assert main(["check", "--ignore", "FTX00", str(base), str(ft)]) == 0
    assert main(["check", "--select", "FTX999", str(base), str(ft)]) == 2
    assert "FTX999: matches no rule" in capsys.readouterr().err


def test_undo_cli(broken, capsys):
    """undo restores and lists files; a second undo has nothing to do (says so, exit 0)."""
    base, ft = broken
    before = tree_digest(ft)
    main(["repair", str(base), str(ft)])
    assert main(["undo", str(ft)]) == 0
    assert "restored chat_template.jinja" in capsys.readouterr().out
    assert tree_digest(ft) == before
    assert main(["undo", str(ft)]) == 0
    assert "Nothing to undo" in capsys.readouterr().out


def test_explain_and_rules(capsys):
    """explain prints the rule's documentation; rules lists every rule."""
    assert main(["explain", "FTX002"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FTX002 generation-prompt-lost (error)")
    assert "## Fix safety" in out
    assert main(["explain", "missing-chat-template"]) == 0
    assert main(["explain", "nope"]) == 2
    capsys.readouterr()
    assert main(["rules"]) == 0
    assert "FTX001  missing-chat-template" in capsys.readouterr().out


def _error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_bad_input_missing_path(pair, tmp_path, capsys):
    """A missing path: one `path: reason` line, a hint, exit 2."""
    base, _ = pair
    missing = tmp_path / "missing"
    assert main(["check", str(base), str(missing)]) == 2
    lines = _error_lines(capsys)
    assert lines == [
        f"ftfix: error: {missing}: no such file or directory",
        "hint: check the finetuned path",
    ]


def test_bad_input_not_a_checkpoint(pair, tmp_path, capsys):
    """A folder that holds no checkpoint is bad input."""
    base, _ = pair
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["repair", str(base), str(empty)]) == 2
    lines = _error_lines(capsys)
    assert lines[0].startswith(f"ftfix: error: {empty}: not a Hugging Face checkpoint")
    assert lines[1].startswith("hint: ")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("target", ["base", "ft"])
def test_invalid_json_is_a_finding_or_a_note(broken, capsys, target):
    """Invalid JSON in the fine-tune is an FTX901 finding on the file; in the base, the checks
    that read it are skipped with a note. Never exit 2; the broken file and the base unchanged."""
    base, ft = broken
    folder = base if target == "base" else ft
    (folder / "generation_config.json").write_text('{"eos_token_id": 1,,}')
    broken_bytes = (folder / "generation_config.json").read_bytes()
    base_digest = tree_digest(base)
    code = main(["repair", str(base), str(ft)])
    out = capsys.readouterr().out
    assert code in (0, 1), out
    if target == "ft":
        assert f"{ft / 'generation_config.json'}: FTX901 error invalid JSON" in out
    else:
        assert "the base's generation_config.json" in out
    assert (folder / "generation_config.json").read_bytes() == broken_bytes
    assert tree_digest(base) == base_digest


def test_usage_error_exits_2(capsys):
    """argparse usage errors exit 2."""
    assert main(["check"]) == 2
    assert main(["frobnicate"]) == 2


def test_python_dash_m(pair):
    """`python -m ftfix` is the same CLI."""
    base, ft = pair
    out = subprocess.run(
        [sys.executable, "-m", "ftfix", "check", str(base), str(ft)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "All checks passed."


def test_several_checkpoints_and_all_checkpoints(make_checkpoint, tmp_path, capsys):
    """BASE FT1 FT2 checks each; --all-checkpoints expands a trainer folder; worst exit wins."""
    from ckpt_builders import build_trainer_root

    base = make_checkpoint("base")
    good = make_checkpoint("good")
    bad = make_checkpoint("bad", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    assert main(["check", str(base), str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"== {good}\nAll checks passed." in out
    assert f"== {bad}\n{bad}/chat_template.jinja: FTX002" in out
    root = build_trainer_root(
        tmp_path / "run", steps=(1, 2), chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT
    )
    assert main(["repair", "--all-checkpoints", "--jobs", "2", str(base), str(root)]) == 0
    capsys.readouterr()
    assert main(["check", "--all-checkpoints", "--format", "json", str(base), str(root)]) == 0
    documents = json.loads(capsys.readouterr().out)
    assert [d["finetuned"].rsplit("/", 1)[1] for d in documents] == ["checkpoint-1", "checkpoint-2"]


def test_output_with_several_targets_is_usage_error(pair, capsys):
    """-o takes exactly one fine-tuned checkpoint."""
    base, ft = pair
    assert main(["repair", "-o", "x", str(base), str(ft), str(ft)]) == 2
    assert "--output: takes one fine-tuned checkpoint" in capsys.readouterr().err


def test_adapter_alone_uses_declared_base(make_checkpoint, tmp_path, capsys):
    """`ftfix check ADAPTER` uses adapter_config.json's base_model_name_or_path."""
    base = make_checkpoint("base")
    adapter = tmp_path / "adapter"
    from ckpt_builders import build_tokenizer

    build_tokenizer(adapter, chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(base)})
    )
    assert main(["check", str(adapter)]) == 1
    assert "FTX002" in capsys.readouterr().out
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert main(["check", str(adapter)]) in (0, 1)  # checked alone; never bad input
    out = capsys.readouterr().out
    assert "note: skipped" in out and "no base model was given and the folder names none" in out


def test_repair_init_subtokens(make_checkpoint, capsys):
    """--init subtokens initialises an untrained added token from its pieces; check then warns."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=["<|tool|>"], zero_rows=[98])
    args = ["--unsafe-fixes", "--init", "subtokens", "--select", "FTX102", str(base), str(ft)]
    assert main(["repair", *args]) == 0
    capsys.readouterr()
    assert main(["check", "--select", "FTX1", str(base), str(ft)]) == 0
    assert "FTX103 warning" in capsys.readouterr().out


def test_template_path_typo_is_bad_input(pair, capsys):
    """--template naming a file that does not exist is bad input, not a one-line template."""
    base, ft = pair
    before = tree_digest(ft)
    assert main(["repair", "--template", "nosuch.jinja", str(base), str(ft)]) == 2
    assert "nosuch.jinja: template file not found" in capsys.readouterr().err
    assert tree_digest(ft) == before
