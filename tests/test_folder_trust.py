"""Issue 19: nothing in the folder is trusted. Planted journals, symlinks out, -o inside, modes.

Every attack runs against real files: forged manifests and real symlinks in a temporary folder,
and a victim file outside every checkpoint whose bytes, mode and inode are asserted unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from builders_trust import STAMP, Victim, file_entry, plant_journal, sha
from ckpt_builders import build_merged, copy_checkpoint, tree_digest

import ftfix
from ftfix.cli import main
from ftfix.errors import UntrustedJournalError
from ftfix.findings import FileEdit
from ftfix.io.state import BACKUPS, MANIFEST, STATE_DIR
from ftfix.write import journal as wjournal
from ftfix.write import recover


@pytest.fixture
def victim(tmp_path: Path) -> Victim:
    return Victim(tmp_path / "outside")


def _setuid_symlink_attack(ft: Path, victim: Victim) -> None:
    """A pending journal whose backup is a symlink out, with mode 0o4777 (the issue's item 1)."""
    config = (ft / "config.json").read_bytes()
    plant_journal(
        ft,
        files=[file_entry("config.json", victim.data, config, mode=0o4777)],
        backups={"files/0": victim.path},
    )


def _delete_weights_attack(folder: Path) -> None:
    """A pending journal saying the repair created model.safetensors: a rollback deletes it."""
    weights = (folder / "model.safetensors").read_bytes()
    plant_journal(folder, files=[file_entry("model.safetensors", None, weights, backup=None)])


ATTACKS = {"setuid-symlink": _setuid_symlink_attack, "delete-weights": _delete_weights_attack}


def _run_everything(base: Path, ft: Path) -> dict[str, int]:
    return {
        "check": main(["check", str(base), str(ft)]),
        "dry-run": main(["repair", "--dry-run", str(base), str(ft)]),
        "repair": main(["repair", str(base), str(ft)]),
        "undo": main(["undo", str(ft)]),
    }


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_planted_journal_in_finetuned_is_never_acted_on(pair, victim, attack, capsys):
    base, ft = pair
    if attack == "setuid-symlink":
        _setuid_symlink_attack(ft, victim)
    else:
        _delete_weights_attack(ft)
    before_ft, before_base = tree_digest(ft), tree_digest(base)
    codes = _run_everything(base, ft)
    out, err = capsys.readouterr()
    # check reports the pending journal (never "All checks passed") and touches nothing.
    assert codes["check"] == 1 and codes["dry-run"] == 1, codes
    assert "FTX920" in out and "All checks passed" not in out
    # writers refuse the journal: exit 2, one error line and a hint.
    assert codes["repair"] == 2 and codes["undo"] == 2, codes
    assert "did not write here" in err and "hint: " in err
    assert main(["check", "--exit-zero", "--format", "json", str(base), str(ft)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in report["findings"]] == ["FTX920"]
    assert tree_digest(ft) == before_ft and tree_digest(base) == before_base
    assert not (ft / "config.json").is_symlink()
    assert (ft / "model.safetensors").is_file()
    victim.assert_untouched()


def test_planted_journal_in_the_base_is_never_acted_on(pair, capsys):
    base, ft = pair
    _delete_weights_attack(base)
    before = tree_digest(base)
    assert main(["check", "--select", "FTX920", str(base), str(ft)]) == 1
    assert "the base holds" in capsys.readouterr().out
    assert main(["repair", str(base), str(ft)]) == 1  # FTX920 remains about the base
    assert tree_digest(base) == before
    assert (base / "model.safetensors").is_file()


def test_a_real_journal_copied_to_another_folder_is_refused(pair, tmp_path, victim):
    """A sealed journal is bound to the folder it was written in (device and inode)."""
    base, ft = pair
    edit = _config_edit(ft)
    folder = ft / STATE_DIR / BACKUPS / STAMP
    journal = wjournal._begin(ft, folder, [edit], [], keep=True)
    assert isinstance(journal["seal"], str)
    copy = copy_checkpoint(ft, tmp_path / "copy")  # cp -r: same bytes, another folder
    (copy / "config.json").write_bytes(edit.after)  # as if the repair had written it
    before = tree_digest(copy)
    with pytest.raises(UntrustedJournalError, match="seal does not match"):
        recover(copy, writer=True)
    assert tree_digest(copy) == before
    # In its own folder the same journal is trusted and rolled back (by a writer only).
    (ft / "config.json").write_bytes(edit.after)
    assert main(["check", "--select", "FTX920", str(base), str(ft)]) == 1
    assert (ft / "config.json").read_bytes() == edit.after  # check never acted on it
    assert recover(ft, writer=True)
    assert (ft / "config.json").read_bytes() == edit.before


def test_a_journal_edited_after_sealing_is_refused(pair):
    _base, ft = pair
    edit = _config_edit(ft)
    folder = ft / STATE_DIR / BACKUPS / STAMP
    wjournal._begin(ft, folder, [edit], [], keep=True)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][0]["mode"] = 0o777
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UntrustedJournalError, match="seal"):
        recover(ft, writer=True)


def _config_edit(ft: Path) -> FileEdit:
    before = (ft / "config.json").read_bytes()
    after = before.replace(b"{", b'{\n  "ftfix_test": 1,', 1)
    return FileEdit("config.json", before, after)


def test_trusted_journal_with_a_symlinked_backup_is_refused(pair, tmp_path):
    """Defense in depth: even a journal ftfix sealed never links or chmods through a symlink."""
    _base, ft = pair
    edit = _config_edit(ft)
    victim = Victim(tmp_path / "outside", data=edit.before, mode=0o600)  # same bytes as the backup
    folder = ft / STATE_DIR / BACKUPS / STAMP
    journal = wjournal._begin(ft, folder, [edit], [], keep=True)
    os.chmod(ft / "config.json", 0o644)
    (ft / "config.json").write_bytes(edit.after)
    (folder / "files" / "0").unlink()
    os.symlink(victim.path, folder / "files" / "0")
    journal["files"][0]["mode"] = 0o777
    wjournal._write_journal(ft, folder, journal)  # re-sealed: only the backup is hostile
    with pytest.raises(UntrustedJournalError, match="symlink"):
        recover(ft, writer=True)
    victim.assert_untouched()
    assert not (ft / "config.json").is_symlink()
    assert (ft / "config.json").read_bytes() == edit.after


def test_restored_modes_are_masked(pair):
    """A file that was setuid is restored with its permission bits only."""
    _base, ft = pair
    os.chmod(ft / "config.json", 0o4755)
    edit = _config_edit(ft)
    folder = ft / STATE_DIR / BACKUPS / STAMP
    journal = wjournal._begin(ft, folder, [edit], [], keep=True)
    assert journal["files"][0]["mode"] == 0o755
    (ft / "config.json").write_bytes(edit.after)
    assert recover(ft, writer=True)
    assert stat.S_IMODE(os.stat(ft / "config.json").st_mode) == 0o755


def test_key_is_owner_only_and_outside_the_folder(pair):
    from ftfix.write import trust

    _base, ft = pair
    key = trust._key(create=True)
    assert key is not None
    paths = [d / trust._KEY_NAME for d in trust._key_dirs() if (d / trust._KEY_NAME).exists()]
    assert paths and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in paths)
    assert not any(ft in p.parents for p in paths)


# ------------------------------------------------------------------------ symlinks and -o
@pytest.fixture
def rows_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A base and a fine-tune with two untrained added-token rows (FTX102 patches them)."""
    added = ("<tool_0>", "<tool_1>")
    base = build_merged(tmp_path / "base")
    ft = build_merged(tmp_path / "ft", added_tokens=added, zero_rows=(98, 99), seed=1)
    return base, ft


UNSAFE_ROWS = ["repair", "--unsafe-fixes", "--select", "FTX102"]


def test_symlinked_checkpoint_out_of_the_trainer_root_is_not_followed(rows_pair, tmp_path):
    base, elsewhere = rows_pair
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink(elsewhere, runs / "checkpoint-20")
    before = tree_digest(elsewhere)
    assert main([*UNSAFE_ROWS, str(base), str(runs)]) == 2  # nothing inside runs/ to repair
    assert tree_digest(elsewhere) == before and not (elsewhere / STATE_DIR).exists()
    # A real checkpoint beside it is the one used; the symlinked one is never written.
    copy_checkpoint(elsewhere, runs / "checkpoint-10")
    assert main([*UNSAFE_ROWS, str(base), str(runs)]) == 0
    assert (runs / "checkpoint-10" / STATE_DIR).is_dir()
    assert tree_digest(elsewhere) == before and not (elsewhere / STATE_DIR).exists()
    assert main(["check", "--all-checkpoints", str(base), str(runs)]) in (0, 1)
    assert tree_digest(elsewhere) == before


def test_output_inside_finetuned_or_base_is_refused(rows_pair, capsys):
    base, ft = rows_pair
    before_ft, before_base = tree_digest(ft), tree_digest(base)
    for out in (ft / "out", ft, base / "out"):
        assert main([*UNSAFE_ROWS, "-o", str(out), str(base), str(ft)]) == 2
        assert "output folder is inside" in capsys.readouterr().err
    assert tree_digest(ft) == before_ft and tree_digest(base) == before_base
    assert not (ft / "out").exists() and not (base / "out").exists()


@pytest.mark.parametrize("shared", ["symlink", "hardlink"])
def test_private_copy_keeps_the_file_mode(rows_pair, tmp_path, shared):
    """Rows of a 0600 symlinked or hard-linked weights file: the patched copy stays 0600."""
    base, ft = rows_pair
    blob = tmp_path / "blobs" / "weights"
    blob.parent.mkdir()
    shutil.move(ft / "model.safetensors", blob)
    os.chmod(blob, 0o600)
    if shared == "symlink":
        os.symlink(blob, ft / "model.safetensors")
    else:
        os.link(blob, ft / "model.safetensors")
    blob_before = blob.read_bytes()
    assert main([*UNSAFE_ROWS, str(base), str(ft)]) == 0
    info = os.lstat(ft / "model.safetensors")
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert blob.read_bytes() == blob_before and stat.S_IMODE(os.stat(blob).st_mode) == 0o600
    assert ftfix.undo(ft)
    assert stat.S_IMODE(os.stat(ft / "model.safetensors").st_mode) == 0o600
    assert (ft / "model.safetensors").read_bytes() == blob_before


def test_output_copy_keeps_the_file_mode(rows_pair, tmp_path):
    base, ft = rows_pair
    os.chmod(ft / "model.safetensors", 0o600)
    out = tmp_path / "out"
    assert main([*UNSAFE_ROWS, "-o", str(out), str(base), str(ft)]) == 0
    assert stat.S_IMODE(os.stat(out / "model.safetensors").st_mode) == 0o600
    assert sha((out / "model.safetensors").read_bytes()) != sha(
        (ft / "model.safetensors").read_bytes()
    )
