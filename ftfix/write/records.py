"""ftfix's own records in a checkpoint's `.ftfix/`: training rows `RepairCallback` keeps."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.samples import SAMPLES_FILE
from .atomic import _state_dir, atomic_write

__all__ = ["record_training_samples"]


def record_training_samples(root: Path, data: bytes) -> Path:
    """Write `data` (JSONL rows) to `root/.ftfix/training_samples.jsonl`, atomically.

    Raises:
        `UnsafePathError`: `.ftfix` is a symlink or a file (ftfix would write through it).
        `OSError`: the folder cannot be written.
    """
    state = _state_dir(root)
    os.makedirs(state, exist_ok=True)
    path = state / SAMPLES_FILE
    atomic_write(path, data)
    return path
