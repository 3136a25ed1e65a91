"""Which journals ftfix may act on: only those this user's ftfix wrote, on this machine, here.

A journal tells the writer to put bytes back, recreate symlinks and set modes. A folder from the
Hub, a git clone or an archive can carry a `.ftfix/` of anyone's making, so a journal is sealed
when it is written: an HMAC-SHA256, keyed by a secret that never leaves this machine (an
owner-only file outside every checkpoint), over the manifest and the identity of the folder it
was written in (device and inode of the checkpoint folder, and the journal folder's name). A
journal whose seal does not verify, that was copied or moved to another folder, or whose
manifest is not an owner-only regular file of this user, is never acted on.

Where the key lives: `$FTFIX_STATE_HOME`, else `$XDG_STATE_HOME/ftfix`, else
`~/.local/state/ftfix`; when none of these can be written, a 0700 folder of this user in the
system temp folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any

from ..errors import WriteFailedError

__all__ = ["SEAL", "seal", "seal_problem"]

SEAL = "seal"
_KEY_NAME = "journal-key"
_KEY_BYTES = 32


def _key_dirs() -> list[Path]:
    dirs = []
    explicit = os.environ.get("FTFIX_STATE_HOME")
    if explicit:
        dirs.append(Path(explicit))
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        if xdg and os.path.isabs(xdg):
            dirs.append(Path(xdg) / "ftfix")
        with contextlib.suppress(RuntimeError, KeyError):
            dirs.append(Path.home() / ".local" / "state" / "ftfix")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    dirs.append(Path(tempfile.gettempdir()) / f"ftfix-{uid}")
    return dirs


def _read_key(path: Path) -> bytes | None:
    """The key at `path` if it is an owner-only regular file of this user, else `None`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.getuid()
            or info.st_mode & 0o077
            or info.st_size != _KEY_BYTES
        ):
            return None
        data = os.read(fd, _KEY_BYTES + 1)
        return data if len(data) == _KEY_BYTES else None
    finally:
        os.close(fd)


def _safe_dir(folder: Path) -> bool:
    """Create `folder` (0700) if needed; True when it is a real folder only this user can write."""
    with contextlib.suppress(FileExistsError, OSError):
        folder.mkdir(mode=0o700, parents=True)
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _create_key(folder: Path) -> bytes | None:
    path = folder / _KEY_NAME
    tmp = folder / f".{_KEY_NAME}.{secrets.token_hex(4)}"
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never replaces a key another process created first
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return _read_key(path)


def _key(*, create: bool) -> bytes | None:
    """This user's journal key: the first readable one, or (with `create`) a new one."""
    dirs = _key_dirs()
    for folder in dirs:
        key = _read_key(folder / _KEY_NAME)
        if key is not None:
            return key
    if not create:
        return None
    for folder in dirs:
        if _safe_dir(folder):
            key = _create_key(folder)
            if key is not None:
                return key
    return None


def _identity(root: Path, folder: Path) -> list[Any]:
    info = os.stat(root)
    return [info.st_dev, info.st_ino, folder.name]


def _mac(key: bytes, journal: dict[str, Any], root: Path, folder: Path) -> str:
    body = {k: v for k, v in journal.items() if k != SEAL}
    message = json.dumps(
        [_identity(root, folder), body], sort_keys=True, ensure_ascii=True, separators=(",", ":")
    ).encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal(journal: dict[str, Any], root: Path, folder: Path) -> None:
    """Set `journal["seal"]` for the journal folder `folder` of checkpoint `root`.

    Raises:
        `WriteFailedError`: no key can be read or created (nothing was written yet).
    """
    key = _key(create=True)
    if key is None:
        raise WriteFailedError(
            root,
            "cannot create ftfix's journal key (tried " + ", ".join(map(str, _key_dirs())) + ")",
            hint="set FTFIX_STATE_HOME to a folder only you can write",
            errno=errno.EACCES,
        )
    journal[SEAL] = _mac(key, journal, root, folder)


def seal_problem(journal: dict[str, Any], root: Path, folder: Path) -> str | None:
    """Why ftfix must not act on this journal, or `None` when this user's ftfix wrote it here."""
    value = journal.get(SEAL)
    if not isinstance(value, str):
        return "it is not sealed by ftfix"
    key = _key(create=False)
    if key is None:
        return "this machine's ftfix has no key to verify it"
    try:
        expected = _mac(key, journal, root, folder)
    except (OSError, TypeError, ValueError) as exc:
        return f"it cannot be verified ({exc})"
    if not hmac.compare_digest(expected, value):
        return "its seal does not match (written by another user or machine, or in another folder)"
    return None
