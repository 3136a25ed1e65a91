"""Project configuration: found walking up as ruff does; flags layer over it; bad files exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, copy_checkpoint, tree_digest

from ftfix import config
from ftfix.cli import main

SAMPLING = {"temperature": 0.6, "top_p": 0.9, "do_sample": True}


@pytest.fixture
def project(tmp_path, make_checkpoint, monkeypatch):
    """A project folder (the working directory) holding a base and a fine-tune that has an
    error (FTX002, lost generation prompt) and a warning (FTX203, lost sampling defaults)."""
    make_checkpoint("base", sampling=SAMPLING)
    make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def codes(capsys) -> list[str]:
    doc = json.loads(capsys.readouterr().out)
    docs = doc if isinstance(doc, list) else [doc]
    return [sorted(f["code"] for f in d["findings"]) for d in docs]


def test_no_config_runs_everything(project, capsys):
    """Without a configuration file (nothing up to /), every rule runs: the baseline."""
    assert config.find(project) is None
    assert main(["check", "base", "ft", "--format", "json"]) == 1
    assert codes(capsys) == [["FTX002", "FTX203"]]


def test_pyproject_tool_table_selects_and_ignores(project, capsys):
    """[tool.ftfix] ignore in pyproject.toml skips the rule; the run passes on the warning."""
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ftfix]\nignore = ["generation-prompt-lost"]\n'
    )
    assert main(["check", "base", "ft", "--format", "json"]) == 0
    assert codes(capsys) == [["FTX203"]]


def test_found_from_a_subfolder_walking_up(project, capsys, monkeypatch):
    """The search starts in the working directory and walks up to the first configuration."""
    (project / "ftfix.toml").write_text('select = ["FTX2"]\n')
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert config.find() == project / "ftfix.toml"
    assert main(["check", str(project / "base"), str(project / "ft"), "--format", "json"]) == 0
    assert codes(capsys) == [["FTX203"]]


def test_ftfix_toml_wins_over_pyproject_in_the_same_folder(project):
    (project / "pyproject.toml").write_text('[tool.ftfix]\nselect = ["FTX0"]\n')
    (project / "ftfix.toml").write_text('select = ["FTX2"]\n')
    assert config.find(project) == project / "ftfix.toml"
    assert config.load(project).select == ["FTX2"]


def test_pyproject_without_tool_table_is_passed_over(project):
    """A nearer pyproject.toml without [tool.ftfix] does not stop the search (as ruff)."""
    (project / "ftfix.toml").write_text('ignore = ["FTX203"]\n')
    inner = project / "pkg"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "pkg"\n[tool.ruff]\nline-length = 9\n')
    assert config.find(inner) == project / "ftfix.toml"
    # ...but the nearest configuration wins, without merging with the ones above it.
    (inner / "pyproject.toml").write_text('[tool.ftfix]\nfail-on = "warning"\n')
    found = config.load(inner)
    assert (
        found.path == inner / "pyproject.toml" and found.ignore == [] and found.fail_on == "warning"
    )


def test_cli_select_replaces_the_files_selection(project, capsys):
    """--select replaces the file's select and ignore (ruff's layering)."""
    (project / "ftfix.toml").write_text('select = ["FTX2"]\nignore = ["FTX002"]\n')
    assert main(["check", "base", "ft", "--format", "json", "--select", "FTX002"]) == 1
    assert codes(capsys) == [["FTX002"]]


def test_cli_ignore_adds_to_the_files_ignore(project, capsys):
    (project / "ftfix.toml").write_text('ignore = ["FTX002"]\n')
    assert main(["check", "base", "ft", "--format", "json", "--ignore", "FTX203"]) == 0
    assert codes(capsys) == [[]]


def test_fail_on_from_the_file_and_the_flag_over_it(project, capsys):
    """fail-on = "warning" makes the warning fail; --fail-on error on the command line wins."""
    (project / "ftfix.toml").write_text('ignore = ["FTX002"]\nfail-on = "warning"\n')
    assert main(["check", "base", "ft"]) == 1
    assert main(["check", "base", "ft", "--fail-on", "error"]) == 0
    capsys.readouterr()


def test_isolated_and_explicit_config(project, capsys, tmp_path_factory):
    """--isolated reads no file; --config FILE reads that one instead of searching."""
    (project / "ftfix.toml").write_text('ignore = ["FTX002", "FTX203"]\n')
    assert main(["check", "base", "ft"]) == 0
    assert main(["check", "base", "ft", "--isolated"]) == 1
    capsys.readouterr()
    other = tmp_path_factory.mktemp("elsewhere") / "pyproject.toml"
    other.write_text('[tool.ftfix]\nselect = ["FTX203"]\n')
    assert main(["check", "base", "ft", "--config", str(other), "--format", "json"]) == 0
    assert codes(capsys) == [["FTX203"]]


def test_per_path_ignores_apply_to_matching_folders_only(project, capsys):
    """A glob relative to the configuration's folder skips rules for the folders it matches."""
    models = project / "models"
    models.mkdir()
    copy_checkpoint(project / "ft", models / "legacy-a")
    copy_checkpoint(project / "ft", models / "new-b")
    (project / "pyproject.toml").write_text(
        '[tool.ftfix.per-path-ignores]\n"models/legacy-*" = ["FTX002"]\n'
    )
    args = ["check", "base", "models/legacy-a", "models/new-b", "--format", "json"]
    assert main(args) == 1  # new-b still has the error
    assert codes(capsys) == [["FTX203"], ["FTX002", "FTX203"]]
    assert main(["check", "base", "models/legacy-a"]) == 0
    capsys.readouterr()


def test_per_path_ignores_match_the_folder_name_and_absolute_path(project):
    settings = config.Config(
        path=project / "ftfix.toml", per_path_ignores={"legacy-*": ["FTX002"], "/nowhere/*": ["X"]}
    )
    assert settings.ignores_for(project / "models" / "legacy-a") == ["FTX002"]
    assert settings.ignores_for(project / "models" / "new") == []
    assert settings.ignores_for("/nowhere/m") == ["X"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('selct = ["FTX2"]\n', "unknown key in the file: selct"),
        ('select = ["FTX999"]\n', "'FTX999' matches no rule code or name"),
        ('fail-on = "fatal"\n', "fail-on must be one of error, warning, info"),
        ("select = 3\n", "select must be a list of rule codes"),
        ("select = [\n", "not valid TOML"),
        ('per-path-ignores = ["x"]\n', "per-path-ignores must be a table"),
    ],
)
def test_a_bad_file_exits_2_naming_the_file(project, capsys, text, reason):
    """A typo in the configuration stops the run with the file's path; nothing is checked."""
    (project / "ftfix.toml").write_text(text)
    before = tree_digest(project / "ft")
    assert main(["repair", "base", "ft"]) == 2
    err = capsys.readouterr().err
    assert f"{project / 'ftfix.toml'}: " in err and reason in err, err
    assert tree_digest(project / "ft") == before


def test_files_stand_for_their_folder(project, capsys):
    """pre-commit passes changed files: with --files each folder is checked once, without a base
    path (without --files a file is bad input, exit 2, as before)."""
    args = ["check", "--files", "ft/generation_config.json", "ft/chat_template.jinja"]
    main([*args, "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, dict) and Path(doc["finetuned"]) == Path("ft") and doc["base"] is None
    assert main(args[:1] + args[2:]) == 2
    assert "is a file, not a checkpoint folder" in capsys.readouterr().err


def test_base_then_files(project, capsys):
    """A base folder followed by files: the files' folder is the fine-tune, checked once."""
    args = ["check", "--files", "base", "ft/generation_config.json", "ft/config.json"]
    assert main([*args, "--format", "json"]) == 1
    assert codes(capsys) == [["FTX002", "FTX203"]]


def test_pre_commit_hooks_run_on_the_files_they_match(project, capsys):
    """The hooks' `files` pattern picks a checkpoint's small files (never weights), and their
    entries, fed those files the way pre-commit feeds them, check and then repair the folder."""
    import re
    import shlex

    import yaml

    hooks = yaml.safe_load((Path(__file__).parent.parent / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"ftfix", "ftfix-repair"}
    files = sorted(p.relative_to(project).as_posix() for p in (project / "ft").rglob("*"))
    pattern = re.compile(by_id["ftfix"]["files"])
    matched = [f for f in files if pattern.search(f)]
    assert "ft/model.safetensors" in files and "ft/model.safetensors" not in matched
    assert {"ft/chat_template.jinja", "ft/generation_config.json", "ft/config.json"} <= set(matched)
    check = shlex.split(by_id["ftfix"]["entry"])[1:]
    assert main([*check, "base", *matched]) == 1
    repair = shlex.split(by_id["ftfix-repair"]["entry"])[1:]
    assert main([*repair, "base", *matched]) == 0
    assert main([*check, "base", *matched]) == 0
    assert not (project / "ft" / ".ftfix").exists()  # nothing left to commit by mistake
    capsys.readouterr()
