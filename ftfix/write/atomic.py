"""Atomic primitives: temp file in the same folder, fsync, replace; safe paths; the state folder."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..errors import (
    UnsafePathError,
)
from ..findings import sha256_hex
from ..io.limits import TOKENIZER_LIMIT, read_limited
from ..io.state import BACKUPS as BACKUPS
from ..io.state import MANIFEST as MANIFEST
from ..io.state import STATE_DIR as STATE_DIR

logger = logging.getLogger(__name__)

LOCK = "lock"
JOURNAL_FORMAT = 2
PENDING, COMPLETE, UNDOING = "pending", "complete", "undoing"
_TMP_SUFFIX = ".ftfix-tmp"
_PAUSE_ENV = "FTFIX_TEST_PAUSE"
_BLOCK = 4096
# fsync of a folder is not supported everywhere; these mean "cannot", not "failed".
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM}


# --------------------------------------------------------------------------- primitives
def _step(what: str) -> None:
    """Mark the end of one step of a commit (logged at debug level).

    Test-only: with `FTFIX_TEST_PAUSE=<seconds>` set, sleep that long, so crash tests can kill
    the process between any two steps.
    """
    logger.debug("step: %s", what)
    pause = os.environ.get(_PAUSE_ENV)
    if pause:
        time.sleep(float(pause))


def _inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing `..`, absolute paths and parent folders that symlink elsewhere."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise UnsafePathError(root, f"refusing to write {rel!r} outside the checkpoint")
    path = root.joinpath(*pure.parts)
    real_root = root.resolve()
    real_parent = path.parent.resolve()
    if real_parent != real_root and real_root not in real_parent.parents:
        raise UnsafePathError(
            path,
            f"parent folder resolves to {real_parent}, outside the checkpoint",
            hint="replace the symlinked folder with a real one before repairing",
        )
    if pure.parts[0] == STATE_DIR:
        raise UnsafePathError(path, f"refusing to write into ftfix's own {STATE_DIR}/ folder")
    return path


def _state_dir(root: Path) -> Path:
    """`root/.ftfix`, refusing a symlink or a file there (ftfix would write through it)."""
    state = root / STATE_DIR
    try:
        info = os.lstat(state)  # one look: .ftfix/ may vanish any time (another run drops it)
    except FileNotFoundError:
        return state
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(
            state,
            f"is a symlink to {os.readlink(state)}; ftfix keeps its lock and backups here",
            hint="remove the symlink (or replace it with a real folder) and run again",
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(
            state,
            "is a file, not ftfix's state folder",
            hint="move the file away and run again",
        )
    return state


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _DIR_FSYNC_UNSUPPORTED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _mkdirs(folder: Path) -> None:
    """Create `folder` and missing parents, fsyncing each parent so the new entries persist."""
    missing = []
    here = folder
    while not here.exists():
        missing.append(here)
        here = here.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        _fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd` (the single place file contents are written)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: same-folder temp file, fsync, `os.replace`.

    A symlink at `path` (a Hugging Face cache blob) is replaced by a regular file, never written
    through. The file mode of a replaced regular file is kept. The temp file is removed on error.
    """
    _mkdirs(path.parent)
    _replace_via_temp(path, lambda fd: _write_all(fd, data), f"wrote a temp file for {path.name}")


def _replace_via_temp(path: Path, write: Callable[[int], None], step: str) -> None:
    """Write a same-folder temp file with `write(fd)`, fsync it, and `os.replace` `path` by it.

    The mode of a replaced regular file is kept (a symlink is replaced, not followed); the temp
    file is removed whatever happens.
    """
    mode = _kept_mode(path)
    tmp = _tmp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            write(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        _step(step)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _kept_mode(path: Path, default: int = 0o644) -> int:
    """The permission bits a replacement of `path` keeps (0o777 bits only).

    Those of the file, or of the file a symlink there points to (a 0600 cache blob must not
    become a 0644 copy); never setuid, setgid or sticky.
    """
    with contextlib.suppress(OSError):
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            return info.st_mode & 0o777
    return default


def _replace_with_symlink(path: Path, target: str) -> None:
    tmp = _tmp_path(path)
    try:
        os.symlink(target, tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _file_sha(path: Path) -> str | None:
    data = read_limited(path, TOKENIZER_LIMIT)
    return None if data is None else sha256_hex(data)
