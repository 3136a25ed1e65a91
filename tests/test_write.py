"""ftfix.write: atomic writes survive failures, backups are byte-exact, row patches touch rows."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, build_weights, read_tensor, tree_digest

import ftfix
from ftfix import write
from ftfix.errors import StaleEditError, UnsafePathError
from ftfix.findings import FileEdit, TensorRowsEdit, sha256_hex
from ftfix.io.safetensors import SafetensorsFile, rows_from_float32


def test_atomic_write_failure_keeps_original(tmp_path, monkeypatch):
    """If os.replace fails, the original file is untouched and no temp file is left."""
    path = tmp_path / "config.json"
    path.write_bytes(b"original")

    def boom(src, dst):
        raise OSError(errno.EIO, "simulated failure")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated failure"):
        write.atomic_write(path, b"new")
    assert path.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_repair_failure_midway_changes_nothing(make_checkpoint, monkeypatch):
    """A write that fails mid-repair surfaces as OSError and is rolled back at once."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    before = tree_digest(ft)
    real_replace = os.replace

    def fail_on_template(src, dst):
        if str(dst).endswith("chat_template.jinja"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_template)
    with pytest.raises(OSError, match="No space left"):
        ftfix.repair(base, ft)
    monkeypatch.setattr(os, "replace", real_replace)
    assert tree_digest(ft) == before
    with pytest.raises(ftfix.NothingToUndoError):
        ftfix.undo(ft)
    assert tree_digest(ft) == before


def test_commit_refuses_stale_file(tmp_path):
    """A file that changed since planning stops the commit before anything is written."""
    (tmp_path / "a.json").write_bytes(b"{}")
    edit = FileEdit("a.json", b'{"old": 1}', b'{"new": 1}')
    with pytest.raises(StaleEditError):
        write.commit(tmp_path, [edit])
    assert (tmp_path / "a.json").read_bytes() == b"{}"


def test_commit_refuses_paths_outside(tmp_path):
    """Edits may not escape the folder, also through a symlinked parent folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "sub").symlink_to(outside)
    for rel in ("../x.json", "sub/x.json"):
        with pytest.raises(UnsafePathError):
            write.commit(root, [FileEdit(rel, None, b"{}")])
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tensor_rows_patch_and_undo(tmp_path, dtype):
    """Row edits change only those rows; undo restores the file byte for byte."""
    build_weights(tmp_path, vocab_size=12, dtype=dtype)
    path = tmp_path / "model.safetensors"
    original = path.read_bytes()
    name = "model.embed_tokens.weight"
    file = SafetensorsFile.open(path)
    info = file.info(name)
    st_dtype = info.dtype
    new = np.full((2, info.shape[1]), 0.5, dtype=np.float32)
    edit = TensorRowsEdit(
        "model.safetensors",
        name,
        (3, 9),
        rows_from_float32(new, st_dtype),
        sha256_hex(file.read_raw_rows(name, (3, 9))),
        "test",
    )
    write.commit(tmp_path, [], [edit])
    after = read_tensor(path, name).astype(np.float32)
    assert np.all(after[[3, 9]] == 0.5)
    before = np.frombuffer(original, dtype=np.uint8)
    changed = np.flatnonzero(before != np.frombuffer(path.read_bytes(), dtype=np.uint8))
    lo, hi = info.row_offset(3), info.row_offset(9) + info.row_bytes
    assert changed.min() >= lo and changed.max() < hi
    write.undo(tmp_path)
    assert path.read_bytes() == original
