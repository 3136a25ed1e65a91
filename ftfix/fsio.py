"""The only module that writes: atomic writes, the lock, a write-ahead journal, commit, undo.

Crash safety rests on one journal per repair, `<root>/.ftfix/backups/<stamp>/manifest.json`:

1. Under the lock (`.ftfix/lock`), the originals are copied into the backup folder (whole
   small files; tensor rows as their original bytes) and the journal is written with
   `state: pending`, listing every planned edit with its sha256 before and after and its
   backup. Files and folders are fsynced before the first byte of the checkpoint changes.
2. Files are replaced atomically (same-folder temp file, fsync, `os.replace`); shards whose
   tensors grow are rewritten the same way, streamed (the journal holds their original header
   and where the new rows go, enough to cut them out again); tensor rows are patched in place
   with `pwrite` and fsynced.
3. The journal is rewritten with `state: complete`. Without `backup`, the journal and its
   backups are then deleted (so `--no-backup` only gives up `undo`, never crash recovery).

The journal (`format: 2`) lists `files` (path, sha256 before/after, backup or none for a
created file, symlink target, mode), `tensors` (path, tensor, rows, sha256 of the rows' bytes
before/after, backup of those bytes) and `resized` (path, backup of the original header and its
sha256, the inserted spans and their sha256, the grown header's sha256, original size, and the
whole-file sha256 before/after once the rewrite has run).

`recover(root)` runs at the start of every command: a `pending` journal (a repair killed
mid-way) is rolled back from its backups, an `undoing` journal (an undo killed mid-way) is
finished, leftover `*.ftfix-tmp` files are removed. An error while committing rolls back
in-process at once. `undo` marks its journal `undoing` before it restores anything.

`FTFIX_TEST_PAUSE=<seconds>` (test-only, read nowhere else) sleeps between the steps of a
commit, so crash tests can kill the process inside every step.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import stat
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from ._version import __version__
from .errors import (
    LockedError,
    NothingToUndoError,
    RecoveryError,
    StaleEditError,
    UnsafePathError,
    WriteFailedError,
)
from .findings import FileEdit, TensorEdit, TensorResizeEdit, TensorRowsEdit, sha256_hex
from .io.safetensors import SafetensorsFile

__all__ = [
    "STATE_DIR",
    "CommitResult",
    "atomic_write",
    "commit",
    "copy_tree_for_output",
    "locked",
    "recover",
    "undo",
]

logger = logging.getLogger(__name__)

STATE_DIR = ".ftfix"
BACKUPS = "backups"
MANIFEST = "manifest.json"
LOCK = "lock"
JOURNAL_FORMAT = 2
PENDING, COMPLETE, UNDOING = "pending", "complete", "undoing"
_TMP_SUFFIX = ".ftfix-tmp"
_PAUSE_ENV = "FTFIX_TEST_PAUSE"
_BLOCK = 4096
# fsync of a folder is not supported everywhere; these mean "cannot", not "failed".
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM}


@dataclass
class CommitResult:
    """What a commit wrote.

    Args:
        written (`list[str]`): relative paths changed, in order.
        backup (`Path`, *optional*): the backup folder, when backups were kept.
    """

    written: list[str] = field(default_factory=list)
    backup: Path | None = None


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
    mode = 0o644
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            mode = stat.S_IMODE(info.st_mode)
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
    return sha256_hex(path.read_bytes()) if path.is_file() else None


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


# ------------------------------------------------------------------------------ journal
def _stamp() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


def _json_bytes(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _split(
    tensors: Sequence[TensorEdit],
) -> tuple[list[TensorRowsEdit], dict[str, list[TensorResizeEdit]]]:
    """Row patches, and tensors to grow grouped by file (one rewrite per file)."""
    rows = [t for t in tensors if isinstance(t, TensorRowsEdit)]
    resizes: dict[str, list[TensorResizeEdit]] = {}
    for tedit in tensors:
        if isinstance(tedit, TensorResizeEdit):
            resizes.setdefault(tedit.path, []).append(tedit)
    return rows, resizes


def _check_fresh(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    resizes: dict[str, list[TensorResizeEdit]] | None = None,
) -> None:
    for edit in edits:
        path = _inside(root, edit.path)
        current = path.read_bytes() if path.is_file() else None
        if current != edit.before:
            raise StaleEditError(
                path,
                "changed on disk since the repair was planned",
                hint="run ftfix again; nothing was written",
            )
    for tedit in tensors:
        path = _inside(root, tedit.path)
        raw = SafetensorsFile.open(path).read_raw_rows(tedit.tensor, tedit.rows)
        if sha256_hex(raw) != tedit.before_sha256:
            raise StaleEditError(
                path,
                f"rows of {tedit.tensor!r} changed since the repair was planned",
                hint="run ftfix again; nothing was written",
            )
    for rel, group in (resizes or {}).items():
        path = _inside(root, rel)
        if any(shard_header_sha256(path) != e.before_sha256 for e in group):
            raise StaleEditError(
                path,
                "changed since the repair was planned",
                hint="run ftfix again; nothing was written",
            )


def _blocks(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _check_space(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    resizes: dict[str, list[TensorResizeEdit]] | None = None,
) -> None:
    """Refuse up front when the backups, temp files and journal cannot fit."""
    needed = 4 * _BLOCK  # the journal, written twice, and its folders
    for edit in edits:
        needed += _blocks(len(edit.after)) + _blocks(len(edit.before or b""))
    for tedit in tensors:
        needed += _blocks(len(tedit.data))
        path = root / tedit.path
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_nlink > 1:
            needed += _blocks(os.stat(path).st_size)  # patched through a private copy
    for rel, group in (resizes or {}).items():
        # The rewrite is a whole temporary copy of the grown file; the backup is its header.
        needed += _blocks(os.stat(root / rel).st_size + sum(len(e.data) for e in group))
        needed += 2 * _BLOCK
    free = shutil.disk_usage(root).free
    if needed > free:
        raise WriteFailedError(
            root,
            f"not enough free disk space: the repair needs {needed} bytes, {free} are free; "
            "nothing was changed",
            hint="free some disk space and run again",
            errno=errno.ENOSPC,
        )


def _begin(
    root: Path,
    folder: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    *,
    keep: bool,
    growths: Sequence[_Growth] = (),
) -> dict[str, Any]:
    """Back up the originals and write the pending journal, all durable before any change."""
    state = root / STATE_DIR
    _mkdirs(folder)
    files = []
    for index, edit in enumerate(edits):
        path = _inside(root, edit.path)
        info = None
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(path)
        entry: dict[str, Any] = {
            "path": edit.path,
            "before_sha256": edit.before_sha256,
            "after_sha256": sha256_hex(edit.after),
            "backup": None,
            "symlink": os.readlink(path) if info and stat.S_ISLNK(info.st_mode) else None,
            "mode": stat.S_IMODE(info.st_mode) if info and stat.S_ISREG(info.st_mode) else None,
        }
        if edit.before is not None:
            entry["backup"] = f"files/{index}"
            atomic_write(folder / "files" / str(index), edit.before)
            _step(f"backed up {edit.path}")
        files.append(entry)
    rows = []
    for index, tedit in enumerate(tensors):
        path = _inside(root, tedit.path)
        original = SafetensorsFile.open(path).read_raw_rows(tedit.tensor, tedit.rows)
        atomic_write(folder / "rows" / str(index), original)
        _step(f"backed up rows of {tedit.tensor}")
        rows.append(
            {
                "path": tedit.path,
                "tensor": tedit.tensor,
                "rows": list(tedit.rows),
                "before_sha256": sha256_hex(original),
                "after_sha256": sha256_hex(tedit.data),
                "backup": f"rows/{index}",
                "symlink": os.readlink(path) if path.is_symlink() else None,
            }
        )
    resized = []
    for index, growth in enumerate(growths):
        # A grown file is undone by cutting the new rows out again and putting its original
        # header back, so the header is all the backup it needs (not a copy of the shard).
        path = _inside(root, growth.shard.path)
        atomic_write(folder / "grown" / str(index), growth.shard.header)
        _step(f"backed up the header of {growth.shard.path}")
        entry = growth.shard.to_json(f"grown/{index}")
        entry.update(
            header_sha256=sha256_hex(growth.shard.header),
            size=growth.size,
            before_sha256=None,  # filled in once the rewrite has read the whole file
            after_sha256=None,
            symlink=os.readlink(path) if path.is_symlink() else None,
        )
        resized.append(entry)
    journal: dict[str, Any] = {
        "format": JOURNAL_FORMAT,
        "state": PENDING,
        "keep": keep,
        "ftfix_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(),
        "files": files,
        "tensors": rows,
        "resized": resized,
    }
    atomic_write(folder / MANIFEST, _json_bytes(journal))
    for durable in (folder, folder.parent, state, root):
        _fsync_dir(durable)
    logger.info("journal %s written (%s)", folder.name, PENDING)
    _step("journal written")
    return journal


def _set_state(folder: Path, journal: dict[str, Any], state: str) -> None:
    journal["state"] = state
    atomic_write(folder / MANIFEST, _json_bytes(journal))
    logger.info("journal %s is %s", folder.name, state)


def _discard(folder: Path) -> None:
    """Delete a journal: the manifest first (atomically ends it), then the backups."""
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
        _fsync_dir(folder)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _fsync_dir(folder.parent)


_BACKUP_NAME = re.compile(r"^(files|rows|grown)/\d+$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _is_sha(value: Any, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    return isinstance(value, str) and bool(_SHA.match(value))


def _valid_entry(entry: Any, key: str) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    backup = entry.get("backup")
    if backup is not None and not (isinstance(backup, str) and _BACKUP_NAME.match(backup)):
        return False
    if entry.get("symlink") is not None and not isinstance(entry["symlink"], str):
        return False
    if key == "files":
        return _is_sha(entry.get("before_sha256"), optional=True) and _is_sha(
            entry.get("after_sha256")
        )
    if key == "tensors":
        return (
            isinstance(entry.get("tensor"), str)
            and isinstance(entry.get("rows"), list)
            and all(type(r) is int for r in entry["rows"])
            and isinstance(backup, str)
            and _is_sha(entry.get("before_sha256"))
            and _is_sha(entry.get("after_sha256"))
        )
    spans = entry.get("inserted")
    return (
        isinstance(backup, str)
        and isinstance(spans, list)
        and all(
            isinstance(s, list) and len(s) == 2 and all(type(v) is int and v >= 0 for v in s)
            for s in spans
        )
        and all(_is_sha(entry.get(k)) for k in ("grown_header_sha256", "inserted_sha256"))
        and _is_sha(entry.get("header_sha256"))
        and type(entry.get("size")) is int
        and all(_is_sha(entry.get(k), optional=True) for k in ("before_sha256", "after_sha256"))
    )


def _load_journal(folder: Path) -> dict[str, Any]:
    """Read and validate a journal; a damaged one is a `RecoveryError`, never guessed at."""
    path = folder / MANIFEST

    def damaged(what: str) -> RecoveryError:
        return RecoveryError(
            path,
            f"journal of an earlier repair is damaged ({what})",
            hint=f"restore the files it lists by hand from {folder}, then delete that folder",
        )

    try:
        journal = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(str(exc)) from exc
    if not isinstance(journal, dict) or journal.get("format") not in (1, JOURNAL_FORMAT):
        raise damaged("unknown format")
    if journal.get("state") not in (PENDING, COMPLETE, UNDOING):
        raise damaged(f"unknown state {journal.get('state')!r}")
    journal.setdefault("resized", [])
    for key in ("files", "tensors", "resized"):
        entries = journal.get(key)
        if not isinstance(entries, list):
            raise damaged(f"{key!r} is not a list")
        if not all(_valid_entry(entry, key) for entry in entries):
            raise damaged(f"bad entry in {key!r}")
    return journal


def _backup_bytes(folder: Path, entry: dict[str, Any], *, key: str = "before_sha256") -> bytes:
    """The backed-up original bytes of an entry, checked against the journal's sha256."""
    data = (folder / str(entry["backup"])).read_bytes()
    if sha256_hex(data) != entry[key]:
        raise RecoveryError(
            folder / str(entry["backup"]),
            f"backup of {entry['path']} does not match the journal's sha256",
            hint="the backup folder was modified; restore the file by hand",
        )
    return data


def _grown_shard(folder: Path, entry: dict[str, Any]) -> GrownShard:
    """The `GrownShard` of a journal entry (hashes of whole files empty until known)."""
    header = _backup_bytes(folder, entry, key="header_sha256")
    return GrownShard.from_json(
        {**entry, "before_sha256": entry["before_sha256"] or "", "after_sha256": ""}, header
    )


@dataclass
class _Restore:
    """What must go back to its original state, decided before anything is touched."""

    files: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    resized: list[dict[str, Any]] = field(default_factory=list)


def _plan_restore(root: Path, folder: Path, journal: dict[str, Any], *, strict: bool) -> _Restore:
    """Which entries must go back to their originals; raise before anything is touched.

    Whole files are written atomically, so a file is either as before, as after, or changed by
    someone else since (refused). Rows patched in place may be half done after a crash; with
    `strict=False` any state of the rows is rolled back. A grown file has either its original
    header (not replaced yet) or the grown one.
    """
    todo = _Restore()
    for entry in journal["files"]:
        path = _inside(root, entry["path"])
        current = _file_sha(path)
        if current == entry["before_sha256"]:
            continue  # never written, or already restored
        if current != entry["after_sha256"]:
            raise StaleEditError(
                path,
                f"changed since the repair of {folder.name}; refusing to restore it",
                hint=f"restore it by hand from {folder / (entry['backup'] or '')}",
            )
        if entry["backup"] is not None:
            _backup_bytes(folder, entry)
        todo.files.append(entry)
    for entry in journal["tensors"]:
        path = _inside(root, entry["path"])
        if not path.is_file():
            raise RecoveryError(
                path,
                f"is missing; cannot restore rows of {entry['tensor']!r}",
                hint=f"the original rows are in {folder / entry['backup']}",
            )
        current = sha256_hex(
            SafetensorsFile.open(path).read_raw_rows(entry["tensor"], entry["rows"])
        )
        relink = bool(entry.get("symlink")) and not path.is_symlink()
        if current == entry["before_sha256"] and not relink:
            continue
        if strict and current not in (entry["before_sha256"], entry["after_sha256"]):
            raise StaleEditError(
                path,
                f"rows of {entry['tensor']!r} changed since the repair; refusing to restore them",
                hint=f"the original rows are in {folder / entry['backup']}",
            )
        _backup_bytes(folder, entry)
        todo.rows.append(entry)
    for entry in journal["resized"]:
        path = _inside(root, entry["path"])
        shard = _grown_shard(folder, entry)
        current = shard_header_sha256(path) if path.is_file() else None
        relink = bool(entry.get("symlink")) and not path.is_symlink()
        if current == entry["header_sha256"] and not relink:
            continue  # killed before the rewrite replaced the file
        if current not in (entry["header_sha256"], shard.grown_header_sha256):
            raise StaleEditError(
                path,
                f"changed since the repair of {folder.name} grew it; refusing to restore it",
                hint="re-save the model, or restore the shard from your own copy",
            )
        patched = any(t["path"] == entry["path"] for t in journal["tensors"])
        if strict and current == shard.grown_header_sha256 and not patched:
            check_grown_shard(path, shard)  # refuse before anything is touched
        todo.resized.append(entry)
    return todo


def _restore_file(root: Path, folder: Path, entry: dict[str, Any]) -> None:
    path = _inside(root, entry["path"])
    if entry.get("symlink"):
        _replace_with_symlink(path, entry["symlink"])
    elif entry["backup"] is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(path.parent)
        _remove_empty_parents(root, path)
    else:
        _relink_or_write(path, folder / entry["backup"], entry)


def _relink_or_write(path: Path, backup: Path, entry: dict[str, Any]) -> None:
    # A hard link of the backup needs no free space (a rollback after "disk full" must work);
    # the backup folder is deleted afterwards, so the link leaves no second name behind.
    tmp = _tmp_path(path)
    try:
        os.link(backup, tmp)
    except OSError:
        atomic_write(path, backup.read_bytes())
        return
    try:
        if entry.get("mode") is not None:
            os.chmod(tmp, entry["mode"])
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _blob_holds(path: Path, link: str, check: Any) -> bool:
    """Whether the file a recorded symlink points to still holds the original bytes."""
    target = path.parent / link
    try:
        return bool(check(target))
    except (OSError, ValueError):
        return False


def _restore_rows(root: Path, folder: Path, entry: dict[str, Any]) -> None:
    path = _inside(root, entry["path"])

    def original_rows(file: Path) -> bool:
        raw = SafetensorsFile.open(file).read_raw_rows(entry["tensor"], entry["rows"])
        return bool(sha256_hex(raw) == entry["before_sha256"])

    # Patched through a private copy of a symlinked (cache blob) file: put the link back if the
    # blob still holds the original rows.
    link = entry.get("symlink")
    if link and not path.is_symlink() and _blob_holds(path, link, original_rows):
        _replace_with_symlink(path, link)
        return
    if original_rows(path):
        return  # restored already (e.g. by putting back the symlink for an earlier tensor)
    original = _backup_bytes(folder, entry)
    tedit = TensorRowsEdit(entry["path"], entry["tensor"], tuple(entry["rows"]), original, "")
    _patch_rows(root, tedit)


def _restore_grown(root: Path, folder: Path, entry: dict[str, Any]) -> None:
    path = _inside(root, entry["path"])

    def original_file(file: Path) -> bool:
        return bool(
            shard_header_sha256(file) == entry["header_sha256"]
            and file.stat().st_size == entry["size"]
        )

    link = entry.get("symlink")
    if link and not path.is_symlink() and _blob_holds(path, link, original_file):
        _replace_with_symlink(path, link)
        return
    if shard_header_sha256(path) == entry["header_sha256"]:
        return
    shrink_grown_shard(path, _grown_shard(folder, entry))


def _do_restore(root: Path, folder: Path, todo: _Restore) -> list[str]:
    # Rows before shrinking: a grown file must hold its original rows to shrink back exactly.
    restored = []
    for entry in todo.files:
        _restore_file(root, folder, entry)
        restored.append(entry["path"])
    for entry in todo.rows:
        _restore_rows(root, folder, entry)
        if entry["path"] not in restored:
            restored.append(entry["path"])
    for entry in todo.resized:
        _restore_grown(root, folder, entry)
        if entry["path"] not in restored:
            restored.append(entry["path"])
    return restored


def _remove_empty_parents(root: Path, path: Path) -> None:
    # A created file may have created its folders (additional_chat_templates/); remove them too.
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        _fsync_dir(parent.parent)
        parent = parent.parent


def _journal_folders(root: Path) -> list[Path]:
    backups = root / STATE_DIR / BACKUPS
    try:
        return sorted(p for p in backups.iterdir() if p.is_dir() and not p.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _needs_recovery(root: Path) -> str | None:
    """Cheap, lock-free look at what an interrupted run left behind.

    Returns `"rollback"` for a journal that is not complete (the checkpoint may be half
    written), `"cleanup"` for leftovers that do not affect the checkpoint's files (a backup
    folder without a journal, a completed `--no-backup` journal, an empty `.ftfix/`), or `None`.
    """
    if not (root / STATE_DIR).is_dir():
        return None
    folders = _journal_folders(root)
    level = None if folders else "cleanup"
    for folder in folders:
        try:
            journal = json.loads((folder / MANIFEST).read_text("utf-8"))
        except FileNotFoundError:
            level = "cleanup"
            continue
        except (OSError, ValueError):
            return "rollback"  # unreadable: let the locked pass report it
        if not isinstance(journal, dict) or journal.get("state") != COMPLETE:
            return "rollback"
        if not journal.get("keep", True):
            level = "cleanup"
    return level


def _recover_locked(root: Path) -> list[str]:
    """Finish or roll back what interrupted runs left in `root` (lock held). Returns notices."""
    notices: list[str] = []
    touched_dirs = {root}
    for folder in reversed(_journal_folders(root)):
        if not (folder / MANIFEST).is_file():
            # Killed while backing up: the checkpoint was not touched yet.
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed the incomplete backup %s", folder.name)
            continue
        journal = _load_journal(folder)
        for entry in (*journal["files"], *journal["tensors"], *journal["resized"]):
            touched_dirs.add(_inside(root, entry["path"]).parent)
        state = journal["state"]
        if state == COMPLETE:
            if not journal.get("keep", True):
                _discard(folder)  # killed after a --no-backup repair completed
            continue
        restored = _do_restore(root, folder, _plan_restore(root, folder, journal, strict=False))
        _discard(folder)
        what = "rolled back an interrupted repair" if state == PENDING else "finished an undo"
        notice = f"{root}: {what} ({folder.name})" + (
            f": restored {', '.join(restored)}" if restored else ": nothing had been written"
        )
        logger.warning("%s", notice)
        notices.append(notice)
    for folder in touched_dirs:
        with contextlib.suppress(OSError):
            for child in folder.iterdir():
                if _is_tmp(child.name) and not child.is_dir():
                    child.unlink()
                    logger.info("removed leftover temp file %s", child)
    return notices


def recover(root: str | os.PathLike[str], *, writer: bool = False) -> list[str]:
    """Roll back what an interrupted ftfix run left in the checkpoint at `root`.

    Every command runs this first. A repair killed mid-way (a `pending` journal) is rolled back
    from its backups, an interrupted undo is finished, and leftover temp files are removed.
    Does nothing, and writes nothing, when there is nothing to recover. When another ftfix
    process holds the lock (a repair is running right now), nothing is done either, or, for a
    caller about to write (`writer=True`), `LockedError` is raised at once.

    Args:
        root (`str` or `os.PathLike`): the checkpoint folder.
        writer (`bool`, *optional*, defaults to `False`): the caller will write to `root`.

    Returns:
        `list[str]`: one notice per journal rolled back or finished (also logged as warnings).

    Raises:
        `RecoveryError`: a journal is damaged, a backup does not match its journal, or the
            rollback could not be written (e.g. a read-only folder).
        `StaleEditError`: a file the interrupted run wrote has changed since.
        `UnsafePathError`: `.ftfix` is a symlink or a file.
        `LockedError`: with `writer=True`, another process is writing to `root`.
    """
    root = Path(os.fspath(root))
    if not os.path.lexists(root / STATE_DIR):
        return []
    _state_dir(root)
    level = _needs_recovery(root)
    if level is None:
        return []
    try:
        with locked(root):
            return _recover_locked(root)
    except LockedError:
        if writer:
            raise
        logger.info("%s: a repair is running in another process; not recovering", root)
        return []
    except OSError as exc:
        if level == "cleanup":
            # Leftovers that do not change what the checkpoint holds: a read-only folder
            # can still be checked.
            logger.info("%s: cannot clean up %s: %s", root, STATE_DIR, exc)
            return []
        raise RecoveryError(
            getattr(exc, "filename", None) or root,
            f"an interrupted repair could not be rolled back: {exc.strerror or exc}",
            hint=f"make the folder writable and run ftfix again; "
            f"the originals are in {root / STATE_DIR / BACKUPS}",
        ) from exc


# ------------------------------------------------------------------------------- commit
def commit(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorEdit] = (),
    *,
    backup: bool = True,
) -> CommitResult:
    """Apply planned edits to the checkpoint at `root`, crash-safely.

    Under the lock: roll back any interrupted earlier repair, check every file still holds what
    the plan was made against and that the disk has room, write the journal and backups
    (fsynced), then write each file atomically, rewrite the shards whose tensors grow
    (`TensorResizeEdit`: streamed into a temp file, replaced atomically), patch tensor rows in
    place, and mark the journal complete. Any error while writing rolls the checkpoint back
    before raising. With `backup=False` the journal and backups are deleted once the repair
    completed.

    Raises:
        `LockedError`: another repair holds the lock.
        `StaleEditError`: a file changed since planning (nothing is written).
        `UnsafePathError`: a path would be written outside the checkpoint.
        `WriteFailedError`: the disk is full, the folder is read-only, or a write or fsync
            failed; the checkpoint is rolled back (the message says if that failed too).
    """
    result = CommitResult()
    rows, resizes = _split(tensors)
    if not edits and not tensors:
        return result
    for rel in [e.path for e in edits] + [t.path for t in tensors]:
        _inside(root, rel)  # refuse bad paths before creating anything
    try:
        with locked(root):
            _recover_locked(root)
            _check_fresh(root, edits, rows, resizes)
            _check_space(root, edits, rows, resizes)
            growths = [_plan_growth(_inside(root, rel), g, rel) for rel, g in resizes.items()]
            logger.info(
                "committing %d file edits and %d tensor edits to %s", len(edits), len(tensors), root
            )
            folder = root / STATE_DIR / BACKUPS / _stamp()
            try:
                journal = _begin(root, folder, edits, rows, keep=backup, growths=growths)
            except BaseException:
                _discard(folder)  # nothing in the checkpoint changed yet
                raise
            try:
                _apply(root, folder, journal, edits, rows, growths, result)
                _set_state(folder, journal, COMPLETE)  # the commit point
            except BaseException as exc:
                _rollback_after_failure(root, folder, journal, exc)
                raise
            if backup:
                result.backup = folder
            else:
                _step("journal complete")
                try:
                    _discard(folder)
                except OSError as exc:  # the repair is done; the next run deletes the journal
                    logger.warning("could not delete the journal %s: %s", folder, exc)
    except OSError as exc:
        if isinstance(exc, WriteFailedError):
            raise
        raise WriteFailedError(
            exc.filename or root,
            f"cannot write: {exc.strerror or exc}; nothing was changed",
            hint="check free disk space and that the folder is writable, then run again",
            errno=exc.errno,
        ) from exc
    return result


def _apply(
    root: Path,
    folder: Path,
    journal: dict[str, Any],
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    growths: Sequence[_Growth],
    result: CommitResult,
) -> None:
    for edit in edits:
        atomic_write(_inside(root, edit.path), edit.after)
        result.written.append(edit.path)
        logger.info("wrote %s", edit.path)
        _step(f"wrote {edit.path}")
    for index, growth in enumerate(growths):
        rel = growth.shard.path
        grown = _stream_growth(_inside(root, rel), growth)
        # The whole-file hashes make undo exact; until they are recorded, a rollback checks
        # the header and the inserted rows only.
        journal["resized"][index].update(
            before_sha256=grown.before_sha256, after_sha256=grown.after_sha256
        )
        atomic_write(folder / MANIFEST, _json_bytes(journal))
        if rel not in result.written:
            result.written.append(rel)
        logger.info("grew %s in %s", ", ".join(growth.inserts), rel)
        _step(f"grew {rel}")
    for tedit in tensors:
        _patch_rows(root, tedit)
        if tedit.path not in result.written:
            result.written.append(tedit.path)
        logger.info("rewrote %d rows of %s in %s", len(tedit.rows), tedit.tensor, tedit.path)
        _step(f"patched {tedit.tensor}")


def _rollback_after_failure(
    root: Path, folder: Path, journal: dict[str, Any], exc: BaseException
) -> None:
    """Undo a commit that failed (or was interrupted) part-way; raise if that fails too."""
    try:
        restored = _do_restore(root, folder, _plan_restore(root, folder, journal, strict=False))
        _discard(folder)
    except Exception as second:
        logger.error("rolling back %s failed: %s", folder.name, second)
        raise WriteFailedError(
            getattr(exc, "filename", None) or root,
            f"cannot write: {getattr(exc, 'strerror', None) or exc}; the repair stopped "
            f"part-way and rolling it back failed too ({second})",
            hint=f"fix the cause, then run any ftfix command on {root}: it rolls the repair "
            f"back from {folder}",
            errno=getattr(exc, "errno", None),
        ) from exc
    logger.warning("%s: write failed; rolled back %s", root, ", ".join(restored) or "nothing")


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


# --------------------------------------------------------------------------------- undo
def _latest_backup(root: Path) -> tuple[Path, dict[str, Any]]:
    for folder in reversed(_journal_folders(root)):
        if (folder / MANIFEST).is_file():
            journal = _load_journal(folder)
            if journal["state"] == COMPLETE and journal.get("keep", True):
                return folder, journal
    raise NothingToUndoError(
        root,
        "no backup of a previous repair",
        hint="undo works after `ftfix repair` kept a backup",
    )


def undo(root: Path) -> list[str]:
    """Restore exactly what the last repair of `root` changed, then drop its backup.

    Refuses, changing nothing, when a repaired file was modified after the repair. The journal
    is marked `undoing` first, so an undo killed part-way is finished by the next command.
    Shards the repair grew are shrunk back to their original bytes, after their rows.

    Returns:
        `list[str]`: the relative paths restored.

    Raises:
        `NothingToUndoError`: no backup exists.
        `StaleEditError`: a file changed since the repair.
        `LockedError`: a repair is running.
        `WriteFailedError`: a write failed part-way (the next command finishes the undo).
    """
    with locked(root):
        _recover_locked(root)
        folder, journal = _latest_backup(root)
        todo = _plan_restore(root, folder, journal, strict=True)
        _set_state(folder, journal, UNDOING)
        try:
            restored = _do_restore(root, folder, todo)
        except OSError as exc:
            raise WriteFailedError(
                exc.filename or root,
                f"undo stopped part-way: {exc.strerror or exc}",
                hint=f"fix the cause, then run any ftfix command on {root}: it finishes the undo "
                f"from {folder}",
                errno=exc.errno,
            ) from exc
        _discard(folder)
    return restored


# ------------------------------------------------------------------------------- output
def copy_tree_for_output(src: Path, dst: Path, *, copy: Sequence[str] = ()) -> None:
    """Make `dst` a copy of checkpoint `src`: hard links for files, real copies for `copy`.

    Files in `copy` will be patched in place, so they must not share an inode with `src`. Files
    the repair replaces are written atomically and so break their link anyway. `.ftfix/` is
    skipped.

    Raises:
        `FileExistsError`: `dst` exists and is not an empty folder.
    """
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(errno.EEXIST, "output folder exists and is not empty", str(dst))
    dst.mkdir(parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        rel_dir = Path(dirpath).relative_to(src)
        (dst / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            if _is_tmp(name):
                continue
            rel = (rel_dir / name).as_posix()
            source, target = Path(dirpath) / name, dst / rel_dir / name
            if rel in copy:
                shutil.copyfile(source, target)
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


# ------------------------------------------------------ growing a tensor (shape change)
# Written for the embedding rules (FTX101 grows `embed_tokens`/`lm_head` to the tokenizer's
# length). A shape change moves every later tensor, so the shard is rewritten: streamed in
# chunks (never held in memory) into a same-folder temp file, fsynced, then `os.replace`d. The
# record returned (`GrownShard`) is what undo needs: the original header, and where the new rows
# were inserted; removing them again gives the original file byte for byte.
_COPY_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class GrownShard:
    """What `rewrite_shard_with_grown_tensors` did to one file, enough to undo it exactly.

    Args:
        path (`str`): the file, relative to the checkpoint.
        header (`bytes`): the original 8-byte length prefix and JSON header.
        inserted (`tuple[tuple[int, int], ...]`): (offset in the rewritten file, length) of each
            run of appended rows.
        grown_header_sha256 (`str`): sha256 of the rewritten file's prefix and header.
        inserted_sha256 (`str`): sha256 of the inserted bytes, runs concatenated in order.
        before_sha256 (`str`): sha256 of the whole original file.
        after_sha256 (`str`): sha256 of the whole rewritten file.
    """

    path: str
    header: bytes
    inserted: tuple[tuple[int, int], ...]
    grown_header_sha256: str
    inserted_sha256: str
    before_sha256: str
    after_sha256: str

    def to_json(self, backup: str) -> dict[str, Any]:
        """The journal entry; the original header is stored in the file `backup`."""
        return {
            "path": self.path,
            "backup": backup,
            "inserted": [list(span) for span in self.inserted],
            "grown_header_sha256": self.grown_header_sha256,
            "inserted_sha256": self.inserted_sha256,
            "before_sha256": self.before_sha256,
            "after_sha256": self.after_sha256,
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any], header: bytes) -> GrownShard:
        """Read a journal entry back (its header from the backup file)."""
        return cls(
            path=str(entry["path"]),
            header=header,
            inserted=tuple((int(o), int(n)) for o, n in entry["inserted"]),
            grown_header_sha256=str(entry["grown_header_sha256"]),
            inserted_sha256=str(entry["inserted_sha256"]),
            before_sha256=str(entry["before_sha256"]),
            after_sha256=str(entry["after_sha256"]),
        )


def _read_header(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The raw prefix + header bytes and the parsed header (validated by `SafetensorsFile`)."""
    SafetensorsFile.open(path)
    with path.open("rb") as handle:
        prefix = handle.read(8)
        (length,) = struct.unpack("<Q", prefix)
        raw = handle.read(length)
    header: dict[str, Any] = json.loads(raw.decode("utf-8"))
    return prefix + raw, header


def shard_header_sha256(path: Path) -> str:
    """sha256 of a safetensors file's length prefix and JSON header (`TensorResizeEdit`)."""
    return sha256_hex(_read_header(path)[0])


def _copy_span(
    src: Any, dst: Any, start: int, end: int, hashes: Sequence[Any], *, write: bool = True
) -> None:
    """Copy bytes `start:end` of `src` to `dst` in bounded chunks, feeding `hashes`."""
    pos = start
    while pos < end:
        data = os.pread(src.fileno(), min(_COPY_CHUNK, end - pos), pos)
        if not data:
            raise OSError(errno.EIO, "unexpected end of file", src.name)
        for digest in hashes:
            digest.update(data)
        if write:
            dst.write(data)
        pos += len(data)


def _replace_streamed(path: Path, fill: Any) -> None:
    """Replace `path` atomically by a temp file that `fill(handle)` writes through a buffer."""

    def write(fd: int) -> None:
        with os.fdopen(fd, "wb", buffering=_COPY_CHUNK, closefd=False) as handle:
            fill(handle)
            handle.flush()

    _replace_via_temp(path, write, f"rewrote {path.name} into a temp file")


@dataclass(frozen=True)
class _Growth:
    """A planned shard rewrite: everything but the whole-file hashes, known before writing.

    The journal records it before the file is touched, so a crash mid-rewrite can be undone.
    """

    shard: GrownShard  # before_sha256 / after_sha256 are "" until the rewrite has run
    new_raw: bytes
    data_start: int
    size: int
    points: tuple[tuple[int, str], ...]
    inserts: dict[str, bytes]


def _plan_growth(path: Path, edits: Sequence[TensorResizeEdit], rel: str | None) -> _Growth:
    """The new header and where the new rows go; refuses stale or non-appended edits."""
    import hashlib

    raw, header = _read_header(path)
    if any(sha256_hex(raw) != e.before_sha256 for e in edits):
        raise StaleEditError(
            path,
            "changed since the repair was planned",
            hint="run ftfix again; nothing was written",
        )
    data_start = len(raw)
    inserts: dict[str, bytes] = {}
    for edit in edits:
        entry = header.get(edit.tensor)
        if not isinstance(entry, dict) or edit.tensor in inserts:
            raise ValueError(f"{path}: cannot grow {edit.tensor!r} (absent or listed twice)")
        shape = entry["shape"]
        row_bytes = SafetensorsFile.open(path).info(edit.tensor).row_bytes
        old = shape[0]
        appended = tuple(range(old, old + len(edit.rows)))
        if edit.rows != appended or len(edit.data) != len(edit.rows) * row_bytes:
            raise ValueError(f"{path}: rows of {edit.tensor!r} must be appended after row {old}")
        inserts[edit.tensor] = edit.data
    # (insert point in the old data buffer, tensor) in file order
    points = sorted((header[name]["data_offsets"][1], name) for name in inserts)
    new_header: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            new_header[name] = entry
            continue
        begin, end = entry["data_offsets"]
        shift = sum(len(inserts[o]) for point, o in points if point <= begin and o != name)
        grown = len(inserts.get(name, b""))
        updated = dict(entry)
        updated["data_offsets"] = [begin + shift, end + shift + grown]
        if grown:
            updated["shape"] = [entry["shape"][0] + len(_rows_of(edits, name)), *entry["shape"][1:]]
        new_header[name] = updated
    text = json.dumps(new_header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    new_raw = struct.pack("<Q", len(text)) + text
    spans, moved, inserted = [], 0, hashlib.sha256()
    for point, name in points:
        spans.append((len(new_raw) + point + moved, len(inserts[name])))
        moved += len(inserts[name])
        inserted.update(inserts[name])
    shard = GrownShard(
        path=rel or path.name,
        header=raw,
        inserted=tuple(spans),
        grown_header_sha256=sha256_hex(new_raw),
        inserted_sha256=inserted.hexdigest(),
        before_sha256="",
        after_sha256="",
    )
    return _Growth(shard, new_raw, data_start, path.stat().st_size, tuple(points), inserts)


def _stream_growth(path: Path, growth: _Growth) -> GrownShard:
    """Run a planned rewrite: stream the old file and the new rows into place, atomically."""
    import hashlib

    raw, new_raw, data_start, size = (
        growth.shard.header,
        growth.new_raw,
        growth.data_start,
        growth.size,
    )
    if path.stat().st_size != size:
        raise StaleEditError(path, "changed since the repair was planned", hint="run ftfix again")
    needed = size + len(new_raw) - len(raw) + sum(len(d) for d in growth.inserts.values())
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise OSError(errno.ENOSPC, f"need {needed} bytes to rewrite, {free} free", str(path))

    before, after = hashlib.sha256(), hashlib.sha256()

    def fill(handle: Any) -> None:
        before.update(raw)
        after.update(new_raw)
        handle.write(new_raw)
        with path.open("rb") as src:
            pos = data_start
            for point, name in growth.points:
                _copy_span(src, handle, pos, data_start + point, (before, after))
                payload = growth.inserts[name]
                handle.write(payload)
                after.update(payload)
                pos = data_start + point
            _copy_span(src, handle, pos, size, (before, after))

    _replace_streamed(path, fill)
    return replace(growth.shard, before_sha256=before.hexdigest(), after_sha256=after.hexdigest())


def rewrite_shard_with_grown_tensors(
    path: Path, edits: Sequence[TensorResizeEdit], *, rel: str | None = None
) -> GrownShard:
    """Rewrite the safetensors file `path` with tensors grown by the rows of `edits`.

    The new rows go right after each tensor's old rows; later tensors move down. The file is
    streamed in bounded chunks into a same-folder temp file, fsynced and replaced atomically
    (a symlink is replaced by a regular file, never written through); `__metadata__` and the
    header's key order are kept. `commit` journals this before it runs it.

    Args:
        path (`Path`): the file.
        edits (`Sequence[TensorResizeEdit]`): one per tensor to grow, all for this file.
        rel (`str`, *optional*): the path to record (defaults to the file name).

    Returns:
        `GrownShard`: what undo needs to restore the original bytes.

    Raises:
        `StaleEditError`: the header changed since planning.
        `ValueError`: an edit does not append whole rows right after the tensor's last row.
    """
    return _stream_growth(path, _plan_growth(path, edits, rel))


def _rows_of(edits: Sequence[TensorResizeEdit], tensor: str) -> tuple[int, ...]:
    return next(e.rows for e in edits if e.tensor == tensor)


def check_grown_shard(path: Path, grown: GrownShard) -> None:
    """Refuse (`StaleEditError`) unless `path` still has the header and rows the rewrite wrote.

    Reads only the header and the inserted rows. Rows patched in place afterwards (and restored
    before this undo) are checked when the original is rebuilt (`shrink_grown_shard`).
    """
    import hashlib

    try:
        raw, _ = _read_header(path)
    except (OSError, ValueError) as exc:
        raise StaleEditError(path, f"cannot read the grown shard: {exc}") from exc
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for offset, length in grown.inserted:
            _copy_span(handle, None, offset, offset + length, (digest,), write=False)
    if sha256_hex(raw) != grown.grown_header_sha256 or digest.hexdigest() != grown.inserted_sha256:
        raise StaleEditError(
            path,
            "changed since the repair grew it; refusing to undo",
            hint="re-save the model, or restore the shard from your own copy",
        )


def shrink_grown_shard(path: Path, grown: GrownShard) -> None:
    """Undo `rewrite_shard_with_grown_tensors`: drop the inserted rows, restore the header.

    The rebuilt file must hash to `grown.before_sha256`, else nothing is replaced. (After a
    crash right after the rewrite that hash may not be in the journal yet, `""`: the header and
    inserted rows are still checked.)

    Raises:
        `StaleEditError`: the file changed since the rewrite (nothing is replaced).
    """
    import hashlib

    check_grown_shard(path, grown)
    size = path.stat().st_size
    rebuilt = hashlib.sha256()

    def fill(handle: Any) -> None:
        rebuilt.update(grown.header)
        handle.write(grown.header)
        with path.open("rb") as src:
            (length,) = struct.unpack("<Q", os.pread(src.fileno(), 8, 0))
            pos = 8 + length
            for offset, span in grown.inserted:
                _copy_span(src, handle, pos, offset, (rebuilt,))
                pos = offset + span
            _copy_span(src, handle, pos, size, (rebuilt,))
        if grown.before_sha256 and rebuilt.hexdigest() != grown.before_sha256:
            raise StaleEditError(
                path,
                "changed since the repair grew it; refusing to undo",
                hint="re-save the model, or restore the shard from your own copy",
            )

    _replace_streamed(path, fill)
