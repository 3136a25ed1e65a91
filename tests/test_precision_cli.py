"""Issue 13 items 9 and 17: clear refusals and small things a user trips on."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, tree_digest

import ftfix
from ftfix.cli import main


@pytest.mark.parametrize("command", ["check", "repair"])
def test_base_of_another_hidden_size_is_one_clear_line(make_checkpoint, capsys, command):
    """Item 9: a base of another width is not this fine-tune's base: one line, exit 2, nothing
    written (it used to crash with a numpy broadcast traceback)."""
    base = make_checkpoint("base", hidden_size=8)
    ft = make_checkpoint("ft", hidden_size=64, zero_rows=[5])
    before = tree_digest(ft)
    assert main([command, str(base), str(ft), "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert "base and fine-tune differ in hidden size (8 vs 64): is BASE the model the" in err
    assert "Traceback" not in err
    assert tree_digest(ft) == before
    with pytest.raises(ftfix.IncompatibleCheckpointsError):
        ftfix.check(base, ft)


def test_select_as_a_string(make_checkpoint):
    """Item 17: select="FTX202" is one rule, as on the CLI ("FTX0,FTX201" too)."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", generation_eos=2)
    report = ftfix.check(base, ft, select="FTX202")
    assert [f.code for f in report.findings] == ["FTX202"]
    assert [f.code for f in ftfix.check(base, ft, select="FTX202,FTX201").findings] == ["FTX202"]
    with pytest.raises(ftfix.UsageError, match="names no rule"):
        ftfix.check(base, ft, select="")


def test_empty_select_is_a_usage_error(pair, capsys):
    """`--select ''` would run no rule and print "All checks passed.": a usage error."""
    base, ft = pair
    assert main(["check", str(base), str(ft), "--select", ""]) == 2
    captured = capsys.readouterr()
    assert "--select: names no rule" in captured.err
    assert "All checks passed" not in captured.out


def test_verbose_and_debug_after_the_subcommand(pair, capsys):
    """`ftfix check -v --debug BASE FT` is accepted like `ftfix -v --debug check ...`."""
    base, ft = pair
    assert main(["check", "-v", "--debug", str(base), str(ft)]) == 0
    assert main(["-v", "check", str(base), str(ft)]) == 0


def test_output_into_existing_folder_hint(make_checkpoint, tmp_path, capsys):
    """`-o` into a non-empty folder: say so, not "permissions and disk space"."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["repair", str(base), str(ft), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "new or empty folder" in err and "disk space" not in err


def test_undo_with_nothing_to_undo_exits_0(pair, capsys):
    """`undo` on a folder never repaired says so and exits 0."""
    _, ft = pair
    assert main(["undo", str(ft)]) == 0
    assert "Nothing to undo" in capsys.readouterr().out


def test_colour_only_on_a_terminal(make_checkpoint, monkeypatch, capsys):
    """Severity words in colour when stdout is a terminal; never with NO_COLOR or when piped."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", generation_eos=2)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    main(["check", str(base), str(ft)])
    assert "\033[31merror\033[0m" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    main(["check", str(base), str(ft)])
    assert "\033[" not in capsys.readouterr().out
    monkeypatch.delenv("NO_COLOR")
    main(["check", str(base), str(ft), "--format", "json"])
    assert json.loads(capsys.readouterr().out)  # JSON is never coloured
