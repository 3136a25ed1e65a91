"""The writer's lock (`.ftfix/lock`): one repair or undo at a time per folder."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import (
    LockedError,
)
from .atomic import BACKUPS, LOCK, _mkdirs, _state_dir

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- lock
def _flock(fd: int, root: Path) -> None:
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - Windows has no fcntl; msvcrt locks a byte
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise LockedError(
                root,
                "another ftfix process is repairing this checkpoint",
                hint="wait for it to finish; the lock is released when that process exits",
            ) from exc
        raise


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold `<root>/.ftfix/lock` for the duration; a second writer gets `LockedError` at once.

    On release, `.ftfix/` is removed again when it holds no backup, so a folder ftfix changed
    nothing in (or whose repairs were all undone) is left as it was.
    """
    state = _state_dir(root)
    for _ in range(50):
        _mkdirs(state)
        try:
            fd = os.open(state / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # .ftfix/ was dropped by a process finishing just now
        try:
            _flock(fd, root)
            # The lock file may have been removed by a process dropping .ftfix/ just before
            # we locked it; a lock on an unlinked file protects nothing, so take it again.
            mine, there = os.fstat(fd), os.stat(state / LOCK)
            if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                break
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    else:  # pragma: no cover - needs 50 lost races in a row
        raise LockedError(root, "could not take the lock", hint="run again")
    try:
        yield
    finally:
        try:
            _release(state, fd)
        finally:
            os.close(fd)  # closing releases the flock


def _release(state: Path, fd: int) -> None:
    """Tidy up while still holding the lock: drop `.ftfix/` when it keeps no backup.

    The order matters to the next locker: the empty backups folder goes first (nobody else may
    touch it until they hold the lock), then our own lock file (a later locker creates a fresh
    one and checks that the file it locked is the one at the path), then `.ftfix/` itself,
    which fails harmlessly if a new lock file is already there.
    """
    backups = state / BACKUPS
    with contextlib.suppress(OSError):
        backups.rmdir()  # only if empty
    with contextlib.suppress(OSError):
        mine, there = os.fstat(fd), os.stat(state / LOCK)
        if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
            (state / LOCK).unlink()
    if not backups.exists():
        with contextlib.suppress(OSError):
            state.rmdir()
