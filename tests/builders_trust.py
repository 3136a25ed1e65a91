"""Planted `.ftfix/` journals, outside victim files and symlink tricks for the trust tests."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from ftfix.io.state import BACKUPS, MANIFEST, STATE_DIR

STAMP = "20260101T000000000000Z-abcdef"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Victim:
    """A file outside every checkpoint whose bytes, mode and inode must never change."""

    def __init__(self, folder: Path, data: bytes = b"precious outside file\n", mode: int = 0o640):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "victim.txt"
        self.path.write_bytes(data)
        os.chmod(self.path, mode)
        self.data, self.mode = data, mode
        self.ino = os.stat(self.path).st_ino

    def assert_untouched(self) -> None:
        info = os.lstat(self.path)
        assert stat.S_ISREG(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == self.mode, oct(info.st_mode)
        assert info.st_ino == self.ino
        assert self.path.read_bytes() == self.data


def plant_journal(
    root: Path,
    *,
    files: list[dict[str, Any]] = (),  # type: ignore[assignment]
    tensors: list[dict[str, Any]] = (),  # type: ignore[assignment]
    state: str = "pending",
    backups: dict[str, bytes | Path] | None = None,
    extra: dict[str, Any] | None = None,
    stamp: str = STAMP,
) -> Path:
    """Write a forged journal in `root/.ftfix/backups/<stamp>/`; backups given as a Path are
    planted as symlinks to that path."""
    folder = root / STATE_DIR / BACKUPS / stamp
    folder.mkdir(parents=True)
    for rel, content in (backups or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            os.symlink(content, path)
        else:
            path.write_bytes(content)
    journal = {
        "format": 2,
        "state": state,
        "keep": True,
        "ftfix_version": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "files": list(files),
        "tensors": list(tensors),
        "resized": [],
        **(extra or {}),
    }
    (folder / MANIFEST).write_text(json.dumps(journal, indent=2))
    return folder


def file_entry(
    path: str, before: bytes | None, after: bytes, *, backup: str | None = "files/0", mode=None
) -> dict[str, Any]:
    return {
        "path": path,
        "before_sha256": None if before is None else sha(before),
        "after_sha256": sha(after),
        "backup": backup,
        "symlink": None,
        "mode": mode,
    }
