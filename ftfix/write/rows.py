"""Patch tensor rows in place (pwrite + fsync), through a private copy when the file is shared."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..findings import TensorRowsEdit
from ..io.safetensors import SafetensorsFile
from .atomic import (
    _fsync_dir,
    _inside,
    _kept_mode,
    _step,
    _tmp_path,
)

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------- tensor rows
def _patch_rows(root: Path, tedit: TensorRowsEdit) -> None:
    """Patch rows in place; copy a symlinked or hard-linked file first so no other copy changes."""
    path = _inside(root, tedit.path)
    info = SafetensorsFile.open(path).info(tedit.tensor)
    payload = tedit.data
    if len(payload) != info.row_bytes * len(tedit.rows):
        raise ValueError(
            f"{tedit.path}: {len(payload)} bytes for {len(tedit.rows)} rows of {tedit.tensor}"
        )
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or st.st_nlink > 1:
        tmp = _tmp_path(path)
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, _kept_mode(path))  # copyfile creates it with the umask's mode
            _pwrite_rows(tmp, info.row_offset, info.row_bytes, tedit.rows, payload)
            _step(f"patched a private copy of {tedit.path}")
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    _pwrite_rows(path, info.row_offset, info.row_bytes, tedit.rows, payload)


def _pwrite_rows(
    path: Path, offset_of: Any, row_bytes: int, rows: Sequence[int], payload: bytes
) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        for i, row in enumerate(rows):
            chunk = payload[i * row_bytes : (i + 1) * row_bytes]
            if os.pwrite(fd, chunk, offset_of(row)) != len(chunk):
                raise OSError(errno.EIO, "short write", str(path))
            _step(f"wrote row {row}")
        os.fsync(fd)
    finally:
        os.close(fd)
