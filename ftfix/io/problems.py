"""Files ftfix cannot read: Git LFS pointers, damaged files, missing shards, pickled weights.

A checkpoint records one `FileProblem` per such file when it is opened; the file rules
(FTX900-FTX919) report them, and every other rule runs on what is readable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .limits import read_limited

__all__ = ["FileProblem", "ProblemKind", "human_size", "lfs_pointer"]

LFS_SPEC = b"version https://git-lfs.github.com/spec/"
# A pointer file is about 130 bytes; the spec caps it at 1024.
_LFS_MAX = 1024
_LFS_SIZE = re.compile(rb"^size (\d+)\s*$", re.MULTILINE)


class ProblemKind(str, Enum):
    """Why a file cannot be read; each kind is reported by its own rule."""

    LFS_POINTER = "git-lfs-pointer"
    UNREADABLE = "unreadable-file"
    MISSING_SHARD = "missing-shard"
    PICKLED = "pickled-weights"


@dataclass(frozen=True)
class FileProblem:
    """One file of a checkpoint that ftfix cannot read.

    Args:
        path (`str`): POSIX path relative to the checkpoint.
        kind (`ProblemKind`): why.
        reason (`str`): what is wrong, lower case, e.g. "is a Git LFS pointer (...)".
        hint (`str`): what to do.
    """

    path: str
    kind: ProblemKind
    reason: str
    hint: str

    def __str__(self) -> str:
        return (
            f"{self.path} {self.reason}"
            if self.kind is ProblemKind.LFS_POINTER
            else (f"{self.path}: {self.reason}")
        )


def human_size(size: int) -> str:
    """`2.4 GB`, `512 KB`, `134 bytes` (decimal units, as Git LFS and the Hub show them)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def lfs_pointer(path: Path) -> FileProblem | None:
    """The problem of `path` when it is a Git LFS pointer file, else `None` (reads <= 1 KiB)."""
    try:
        # Bounded and non-blocking (a FIFO under a file's name must not hang the run).
        head = read_limited(path, _LFS_MAX)
    except (OSError, ValueError):  # unreadable, or larger than any pointer
        return None
    if head is None:
        return None
    size = len(head)
    if not head.startswith(LFS_SPEC):
        return None
    match = _LFS_SIZE.search(head)
    stands_for = f" standing for a {human_size(int(match.group(1)))} file" if match else ""
    return FileProblem(
        path.name,
        ProblemKind.LFS_POINTER,
        f"is a Git LFS pointer (a {size}-byte text{stands_for}); run `git lfs pull`",
        "run `git lfs pull` in the clone (or download the real file) and check again",
    )


def is_lfs_pointer(data: bytes) -> bool:
    """Whether `data` is the content of a Git LFS pointer file."""
    return len(data) <= _LFS_MAX and data.startswith(LFS_SPEC)


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root`, POSIX style."""
    return Path(os.path.relpath(path, root)).as_posix()
