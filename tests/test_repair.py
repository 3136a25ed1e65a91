"""repair(): healthy folders stay byte-identical, repairs converge, dry-run writes nothing, undo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, copy_checkpoint, tree_digest
from helpers import LLAMA3_ASSISTANT_HEADER, transformers_render

import ftfix
from ftfix.errors import (
    IncompatibleCheckpointsError,
    LockedError,
    NothingToUndoError,
    StaleEditError,
)
from ftfix.write import STATE_DIR, locked


@pytest.fixture
def broken(make_checkpoint):
    """A base and a fine-tune whose template lost the generation prompt."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    return base, ft


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_healthy_pair_is_left_byte_identical(make_checkpoint, tmp_path, layout):
    """repair() of a healthy fine-tune changes no byte and creates no .ftfix folder."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    before = tree_digest(ft)
    report = ftfix.repair(base, ft)
    assert report.findings == [] and report.written == []
    assert report.exit_code == 0
    assert tree_digest(ft) == before
    assert str(report) == "All checks passed."


def test_second_repair_is_a_noop(broken):
    """After one repair, a second finds nothing and writes nothing."""
    base, ft = broken
    first = ftfix.repair(base, ft)
    assert [f.code for f in first.applied] == ["FTX002"]
    after_first = tree_digest(ft)
    second = ftfix.repair(base, ft)
    assert second.findings == [] and second.written == []
    assert tree_digest(ft) == after_first


@pytest.mark.parametrize("kw", [{"dry_run": True}], ids=["dry-run"])
def test_dry_run_writes_nothing(broken, kw):
    """dry_run plans, diffs and reports 'would fix' without touching the folder."""
    base, ft = broken
    before = tree_digest(ft)
    report = ftfix.repair(base, ft, **kw)
    assert tree_digest(ft) == before
    assert report.mode == "dry-run"
    assert [f.code for f in report.applied] == ["FTX002"]
    assert "+++ b/chat_template.jinja" in report.diff
    assert "Would fix 1 problem" in report.summary()


def test_undo_restores_every_byte(broken):
    """undo() puts back exactly the original files and removes the .ftfix folder."""
    base, ft = broken
    before = tree_digest(ft)
    report = ftfix.repair(base, ft)
    assert report.backup is not None and os.path.isdir(report.backup)
    assert tree_digest(ft) != before
    assert ftfix.undo(ft) == ["chat_template.jinja"]
    assert tree_digest(ft) == before
    assert not (ft / STATE_DIR).exists()


def test_undo_refuses_after_later_edit(broken):
    """If a repaired file changed since, undo refuses and changes nothing."""
    base, ft = broken
    ftfix.repair(base, ft)
    (ft / "chat_template.jinja").write_text("{{ 'edited by hand' }}")
    snapshot = tree_digest(ft)
    with pytest.raises(StaleEditError, match="changed since the repair"):
        ftfix.undo(ft)
    assert tree_digest(ft) == snapshot


def test_undo_without_backup(pair):
    """undo with nothing to undo is a clear error."""
    _, ft = pair
    with pytest.raises(NothingToUndoError):
        ftfix.undo(ft)


def test_undo_restores_created_file(pair):
    """A file the repair created is removed again by undo."""
    base, ft = pair
    (ft / "chat_template.jinja").unlink()
    before = tree_digest(ft)
    ftfix.repair(base, ft)
    assert (ft / "chat_template.jinja").exists()
    ftfix.undo(ft)
    assert tree_digest(ft) == before


def test_output_copy_leaves_original(broken, tmp_path):
    """output= writes a repaired copy (hard links for untouched files); the input is unchanged."""
    base, ft = broken
    before = tree_digest(ft)
    out = tmp_path / "repaired"
    report = ftfix.repair(base, ft, output=out)
    assert tree_digest(ft) == before
    assert report.output == str(out)
    assert transformers_render(out).endswith(LLAMA3_ASSISTANT_HEADER)
    assert os.stat(out / "model.safetensors").st_ino == os.stat(ft / "model.safetensors").st_ino
    assert not (out / STATE_DIR).exists()


def test_output_must_be_empty(broken, tmp_path):
    """An existing non-empty output folder is refused before anything is written."""
    base, ft = broken
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        ftfix.repair(base, ft, output=out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_no_backup(broken):
    """backup=False writes the fix and keeps no backup folder."""
    base, ft = broken
    report = ftfix.repair(base, ft, backup=False)
    assert report.backup is None
    assert not (ft / STATE_DIR / "backups").exists() or not any(
        (ft / STATE_DIR / "backups").iterdir()
    )


def test_same_folder_is_refused(pair):
    """Passing the same folder twice is bad input."""
    _, ft = pair
    with pytest.raises(IncompatibleCheckpointsError, match="same folder"):
        ftfix.check(ft, ft)


def test_concurrent_repair_is_locked_out(broken):
    """A second repair while the lock is held fails at once and writes nothing."""
    base, ft = broken
    before = tree_digest(ft)
    with locked(ft):
        snapshot = {k: v for k, v in tree_digest(ft).items() if not k.startswith(STATE_DIR)}
        with pytest.raises(LockedError, match="another ftfix process"):
            ftfix.repair(base, ft)
        assert {k: v for k, v in tree_digest(ft).items() if not k.startswith(STATE_DIR)} == snapshot
    assert {k: v for k, v in tree_digest(ft).items() if not k.startswith(STATE_DIR)} == before


def test_symlinked_file_is_replaced_not_written_through(broken, tmp_path):
    """A symlink (Hugging Face cache blob) is replaced by a file; the blob keeps its bytes."""
    base, ft = broken
    blob = tmp_path / "blob.jinja"
    blob.write_bytes((ft / "chat_template.jinja").read_bytes())
    (ft / "chat_template.jinja").unlink()
    (ft / "chat_template.jinja").symlink_to(blob)
    blob_before = blob.read_bytes()
    ftfix.repair(base, ft)
    assert blob.read_bytes() == blob_before
    assert not (ft / "chat_template.jinja").is_symlink()
    ftfix.undo(ft)
    assert (ft / "chat_template.jinja").is_symlink()
    assert os.readlink(ft / "chat_template.jinja") == str(blob)


def test_json_report_schema(broken):
    """The JSON report carries the documented top-level keys and per-finding fields."""
    base, ft = broken
    data = json.loads(ftfix.check(base, ft).to_json())
    assert data["schema_version"] == 1
    assert data["mode"] == "check" and data["exit_code"] == 1
    (finding,) = data["findings"]
    assert finding["code"] == "FTX002"
    assert finding["fix"]["applicability"] == "safe"
    assert set(finding) == {
        "code",
        "name",
        "severity",
        "message",
        "path",
        "fix",
        "data",
        "explanation",
    }


def test_html_report(broken):
    """The notebook rendering is an HTML table with one row per finding."""
    base, ft = broken
    html = ftfix.check(base, ft)._repr_html_()
    assert html.count("<tr>") == 2 and "FTX002" in html


def test_check_does_not_import_torch_or_transformers(pair):
    """The check path never imports torch, peft or transformers."""
    base, ft = pair
    code = (
        "import sys, ftfix; r = ftfix.check(sys.argv[1], sys.argv[2]); assert r.ok; "
        "print(sorted(m for m in ('torch', 'peft', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(base), str(ft)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
