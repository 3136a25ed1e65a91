"""Splices: replace one byte range of a large file (GGUF metadata), in place or streamed.

A range replaced by bytes of the same length is patched in place (`pwrite` + fsync), like
tensor rows: an integer id in a GGUF file costs the same on any model size. A range that grows
or shrinks (a new chat template) moves everything after it, so the file is streamed into a
same-folder temp file and replaced atomically, like a grown shard: the cost is the bytes
rewritten. Bytes outside the range are copied, never changed. Undo is the reverse splice.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from ..errors import StaleEditError
from ..findings import SpliceEdit, sha256_hex
from .atomic import _step
from .streamed import _copy_span, _replace_streamed

logger = logging.getLogger(__name__)

__all__ = ["apply_splice", "range_sha256", "splice_entry"]


def range_sha256(path: Path, offset: int, length: int) -> str | None:
    """sha256 of `length` bytes at `offset`, or `None` when the file is shorter."""
    with path.open("rb") as handle:
        data = os.pread(handle.fileno(), length, offset)
    return sha256_hex(data) if len(data) == length else None


def splice_entry(path: Path, edit: SpliceEdit) -> dict[str, Any]:
    """The journal entry of a splice (the original range is its backup)."""
    size = path.stat().st_size
    return {
        "path": edit.path,
        "offset": edit.offset,
        "before_sha256": sha256_hex(edit.before),
        "after_sha256": sha256_hex(edit.after),
        "before_length": len(edit.before),
        "after_length": len(edit.after),
        "size_before": size,
        "size_after": size - len(edit.before) + len(edit.after),
    }


def _in_place(path: Path, edit: SpliceEdit) -> bool:
    # A hard-linked (an -o copy's source) or symlinked file is rewritten, never written through.
    info = os.lstat(path)
    return len(edit.before) == len(edit.after) and stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def apply_splice(path: Path, edit: SpliceEdit, *, check: bool = True) -> None:
    """Replace `edit.before` at `edit.offset` of `path` by `edit.after`.

    Args:
        path (`Path`): the file.
        edit (`SpliceEdit`): the range and its new bytes.
        check (`bool`): refuse (`StaleEditError`) unless the range holds `edit.before`; a
            rollback of a torn in-place patch passes `False`.
    """
    size = path.stat().st_size
    if check and range_sha256(path, edit.offset, len(edit.before)) != sha256_hex(edit.before):
        raise StaleEditError(
            path,
            "changed since the repair was planned",
            hint="run ftfix again; nothing was written",
        )
    if _in_place(path, edit):
        fd = os.open(path, os.O_RDWR)
        try:
            if os.pwrite(fd, edit.after, edit.offset) != len(edit.after):
                raise OSError(errno.EIO, "short write", str(path))
            os.fsync(fd)
        finally:
            os.close(fd)
        _step(f"patched {edit.path} in place")
        return
    needed = size - len(edit.before) + len(edit.after)
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise OSError(errno.ENOSPC, f"need {needed} bytes to rewrite, {free} free", str(path))

    def fill(handle: Any) -> None:
        with path.open("rb") as src:
            _copy_span(src, handle, 0, edit.offset, ())
            handle.write(edit.after)
            _copy_span(src, handle, edit.offset + len(edit.before), size, ())

    _replace_streamed(path, fill)
    _step(f"rewrote {edit.path}")
