"""Small records ftfix keeps in a folder's `.ftfix/` state folder (e.g. what `verify` measured)."""

from __future__ import annotations

from pathlib import Path

from .atomic import _mkdirs, _state_dir, atomic_write

__all__ = ["write_state_file"]


def write_state_file(root: Path, name: str, data: bytes) -> Path:
    """Write `.ftfix/<name>` in `root` atomically and return its path.

    Raises:
        `UnsafePathError`: `.ftfix` is a symlink or a file.
        `OSError`: the folder is not writable.
    """
    state = _state_dir(root)
    _mkdirs(state)
    path = state / name
    atomic_write(path, data)
    return path
