"""Builders for unreadable files: Git LFS pointers, damaged files, missing shards, pickles."""

from __future__ import annotations

import hashlib
from pathlib import Path

# What `git lfs` leaves in a clone made without it: this text instead of the file.
GB_2_4 = 2_400_000_000


def lfs_pointer_bytes(size: int = GB_2_4, seed: str = "x") -> bytes:
    """The bytes of a Git LFS pointer standing for a file of `size` bytes."""
    oid = hashlib.sha256(seed.encode()).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def make_lfs_pointer(folder: Path, rel: str, size: int = GB_2_4) -> Path:
    """Replace (or create) `folder/rel` with a Git LFS pointer; return its path."""
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lfs_pointer_bytes(size, rel))
    return path


def pickle_bomb(sentinel: Path) -> bytes:
    """A protocol-0 pickle that would create `sentinel` if anything ever unpickled it."""
    return b"cos\nmkdir\n(V" + str(sentinel).encode() + b"\ntR."
