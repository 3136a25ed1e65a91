"""The writer's promises, each observable: no write-through to other links, undo refuses rows that
changed after the repair, fsync before replace and journal before the first byte, free space
counted with the backups.

Each test here kills a mutant the rest of the suite let live (see `make mutation`).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from ckpt_builders import tree_digest, write_safetensors

from ftfix import write
from ftfix.errors import FtfixError, WriteFailedError
from ftfix.findings import FileEdit, TensorRowsEdit, sha256_hex
from ftfix.io.safetensors import SafetensorsFile
from ftfix.write import STATE_DIR

ROWS, COLS = 6, 4


def _shard(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = np.arange(ROWS * COLS, dtype=np.float32).tobytes()
    write_safetensors(root / "model.safetensors", {"embed": ("F32", (ROWS, COLS), data)})
    return root / "model.safetensors"


def _row_edit(root: Path, rows: tuple[int, ...], value: float) -> TensorRowsEdit:
    file = SafetensorsFile.open(root / "model.safetensors")
    before = sha256_hex(file.read_raw_rows("embed", rows))
    data = np.full((len(rows), COLS), value, dtype=np.float32).tobytes()
    return TensorRowsEdit("model.safetensors", "embed", rows, data, before)


def _rows(path: Path, rows: tuple[int, ...]) -> np.ndarray:
    raw = SafetensorsFile.open(path).read_raw_rows("embed", rows)
    return np.frombuffer(raw, dtype=np.float32).reshape(len(rows), COLS)


def test_hard_linked_shard_is_not_written_through(tmp_path):
    """A shard hard-linked elsewhere (`cp -al` snapshot) is patched as a private copy."""
    shard = _shard(tmp_path / "ft")
    snapshot = tmp_path / "snapshot.safetensors"
    os.link(shard, snapshot)
    snapshot_bytes = snapshot.read_bytes()

    write.commit(tmp_path / "ft", [], [_row_edit(tmp_path / "ft", (1, 3), 7.0)])

    assert snapshot.read_bytes() == snapshot_bytes  # the other link kept its bytes
    assert (_rows(shard, (1, 3)) == 7.0).all()  # the checkpoint got the new rows
    assert os.stat(shard).st_nlink == 1 and os.stat(snapshot).st_nlink == 1


def test_undo_refuses_rows_changed_after_the_repair(tmp_path):
    """Rows rewritten after a repair are not silently overwritten by `undo`."""
    root = tmp_path / "ft"
    shard = _shard(root)
    write.commit(root, [], [_row_edit(root, (2,), 5.0)])
    info = SafetensorsFile.open(shard).info("embed")
    with open(shard, "r+b") as handle:  # the user trains on: row 2 changes again
        handle.seek(info.row_offset(2))
        handle.write(np.full(COLS, 9.0, dtype=np.float32).tobytes())
    after_user = shard.read_bytes()

    with pytest.raises(FtfixError, match="changed"):
        write.undo(root)
    assert shard.read_bytes() == after_user


def test_undo_restores_rows_exactly(tmp_path):
    """The control for the test above: unchanged rows are restored byte for byte."""
    root = tmp_path / "ft"
    shard = _shard(root)
    original = shard.read_bytes()
    write.commit(root, [], [_row_edit(root, (0, 5), 3.0)])
    assert shard.read_bytes() != original
    write.undo(root)
    assert shard.read_bytes() == original


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@pytest.fixture
def events(monkeypatch) -> list[tuple[str, str]]:
    """Record (operation, path) for fsync, replace and pwrite, in order."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace, real_pwrite = os.fsync, os.replace, os.pwrite

    def fsync(fd):
        seen.append(("fsync", _fd_path(fd)))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        seen.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        return real_replace(src, dst, *args, **kwargs)

    def pwrite(fd, data, offset):
        seen.append(("pwrite", _fd_path(fd)))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "pwrite", pwrite)
    return seen


def test_temp_file_is_fsynced_before_it_replaces_the_original(tmp_path, events):
    """Every replaced checkpoint file was fsynced as a temp file first (else a crash loses it)."""
    root = tmp_path / "ft"
    root.mkdir()
    (root / "config.json").write_bytes(b'{"a": 1}\n')
    write.commit(root, [FileEdit("config.json", b'{"a": 1}\n', b'{"a": 2}\n')])

    replaces = [
        i
        for i, (op, what) in enumerate(events)
        if op == "replace" and what.endswith(f"-> {root / 'config.json'}")
    ]
    assert replaces, events
    src = events[replaces[0]][1].split(" -> ")[0]
    fsyncs = [i for i, (op, what) in enumerate(events) if op == "fsync" and what == src]
    assert fsyncs and fsyncs[0] < replaces[0], events


def test_journal_and_its_folders_are_durable_before_the_first_write(tmp_path, events):
    """The manifest and the folders holding it are fsynced before any checkpoint byte changes."""
    root = tmp_path / "ft"
    shard = _shard(root)
    (root / "config.json").write_bytes(b"{}\n")
    write.commit(
        root,
        [FileEdit("config.json", b"{}\n", b'{"x": 1}\n')],
        [_row_edit(root, (4,), 1.0)],
        backup=True,
    )
    first_change = next(
        i
        for i, (op, what) in enumerate(events)
        if (op == "replace" and what.endswith(f"-> {root / 'config.json'}"))
        or (op == "pwrite" and what == str(shard))
    )
    before = [what for op, what in events[:first_change] if op == "fsync"]
    state = root / STATE_DIR
    backups = [p for p in (state / "backups").iterdir() if p.is_dir()]
    assert len(backups) == 1
    journal_folder = backups[0]
    for needed in (journal_folder, journal_folder.parent, state, root):
        assert str(needed) in before, (needed, before)
    manifest = str(journal_folder / ".manifest.json.")
    assert any(what.startswith(manifest) for what in before), before  # its temp file, fsynced


def test_free_space_check_counts_the_backups(tmp_path, monkeypatch):
    """Room for the new files but not for the backups of the old ones: refused, nothing written."""
    root = tmp_path / "ft"
    root.mkdir()
    big = b"x" * (4 * 1024 * 1024)
    (root / "tokenizer.json").write_bytes(big)
    edits = [FileEdit("tokenizer.json", big, b"{}\n")]
    before = tree_digest(root)
    real = shutil.disk_usage(root)
    # Enough for the new bytes, the journal and temp files, but not a 4 MiB backup.
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real._replace(free=1024 * 1024))
    with pytest.raises(WriteFailedError) as caught:
        write.commit(root, edits, backup=True)
    assert caught.value.errno == errno.ENOSPC
    assert tree_digest(root) == before
    assert not (root / STATE_DIR / "backups").exists() or not any(
        (root / STATE_DIR / "backups").iterdir()
    )


def test_patched_rows_are_fsynced_before_the_journal_completes(tmp_path, events):
    """Rows written with pwrite reach the disk before the journal is marked complete."""
    root = tmp_path / "ft"
    shard = _shard(root)
    write.commit(root, [], [_row_edit(root, (1,), 2.0)], backup=True)
    last_pwrite = max(i for i, (op, what) in enumerate(events) if op == "pwrite")
    shard_syncs = [i for i, (op, what) in enumerate(events) if op == "fsync" and what == str(shard)]
    manifests = [
        i for i, (op, what) in enumerate(events) if op == "replace" and "manifest.json" in what
    ]
    complete = manifests[-1]  # the second manifest write: state complete
    assert len(manifests) == 2, events
    assert any(last_pwrite < i < complete for i in shard_syncs), events


def test_commit_refuses_rows_changed_since_planning(tmp_path):
    """Rows rewritten between planning and commit: StaleEditError, nothing written."""
    root = tmp_path / "ft"
    shard = _shard(root)
    edit = _row_edit(root, (3,), 4.0)  # planned against the current rows
    info = SafetensorsFile.open(shard).info("embed")
    with open(shard, "r+b") as handle:  # then someone else changes row 3
        handle.seek(info.row_offset(3))
        handle.write(np.full(COLS, -1.0, dtype=np.float32).tobytes())
    changed = shard.read_bytes()
    with pytest.raises(FtfixError, match="changed since the repair was planned"):
        write.commit(root, [], [edit])
    assert shard.read_bytes() == changed
    assert not (root / STATE_DIR).exists()
