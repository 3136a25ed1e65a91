"""The only module that writes: atomic writes, lock, backups with a manifest, commit and undo."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import LockedError, NothingToUndoError, StaleEditError, UnsafePathError
from .findings import FileEdit, TensorRowsEdit, sha256_hex
from .safetensors_io import SafetensorsFile

__all__ = [
    "STATE_DIR",
    "CommitResult",
    "atomic_write",
    "commit",
    "copy_tree_for_output",
    "locked",
    "undo",
]

logger = logging.getLogger(__name__)

STATE_DIR = ".ftfix"
BACKUPS = "backups"
MANIFEST = "manifest.json"
_TMP_SUFFIX = ".ftfix-tmp"


@dataclass
class CommitResult:
    """What a commit wrote.

    Args:
        written (`list[str]`): relative paths changed, in order.
        backup (`Path`, *optional*): the backup folder, when backups were kept.
    """

    written: list[str] = field(default_factory=list)
    backup: Path | None = None


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
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem can fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: same-folder temp file, fsync, `os.replace`.

    A symlink at `path` (a Hugging Face cache blob) is replaced by a regular file, never written
    through. The file mode of a replaced regular file is kept. The temp file is removed on error.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
    mode = 0o644
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            mode = stat.S_IMODE(info.st_mode)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold `<root>/.ftfix/lock` for the duration; a second writer gets `LockedError` at once."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
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
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _stamp() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


def _check_fresh(root: Path, edits: Sequence[FileEdit], tensors: Sequence[TensorRowsEdit]) -> None:
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


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OSError(errno.ENOSPC, f"need {needed} bytes, {free} free", str(folder))


def commit(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit] = (),
    *,
    backup: bool = True,
) -> CommitResult:
    """Apply planned edits to the checkpoint at `root`.

    Under the lock: check every file still holds what the plan was made against, back up the
    originals (whole small files; tensor rows as their original bytes) with a manifest of sha256
    before/after, then write each file atomically and patch tensor rows in place.

    Raises:
        `LockedError`: another repair holds the lock.
        `StaleEditError`: a file changed since planning (nothing is written).
        `UnsafePathError`: a path would be written outside the checkpoint.
    """
    result = CommitResult()
    if not edits and not tensors:
        return result
    with locked(root):
        _check_fresh(root, edits, tensors)
        _check_space(root, sum(len(e.after) + len(e.before or b"") for e in edits))
        manifest_path = None
        manifest: dict[str, Any] = {}
        if backup:
            result.backup = root / STATE_DIR / BACKUPS / _stamp()
            manifest = _write_backup(root, result.backup, edits, tensors)
            manifest_path = result.backup / MANIFEST
        for edit in edits:
            atomic_write(_inside(root, edit.path), edit.after)
            result.written.append(edit.path)
            logger.info("wrote %s", edit.path)
        for tedit in tensors:
            _patch_rows(root, tedit)
            if tedit.path not in result.written:
                result.written.append(tedit.path)
            logger.info("rewrote %d rows of %s in %s", len(tedit.rows), tedit.tensor, tedit.path)
        if manifest_path is not None:
            manifest["state"] = "complete"
            atomic_write(manifest_path, _json_bytes(manifest))
    if not backup:
        _drop_state_dir(root)  # leave no lock-only .ftfix/ behind
    return result


def _json_bytes(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_backup(
    root: Path, folder: Path, edits: Sequence[FileEdit], tensors: Sequence[TensorRowsEdit]
) -> dict[str, Any]:
    folder.mkdir(parents=True)
    files = []
    for index, edit in enumerate(edits):
        path = _inside(root, edit.path)
        entry: dict[str, Any] = {
            "path": edit.path,
            "before_sha256": edit.before_sha256,
            "after_sha256": sha256_hex(edit.after),
            "backup": None,
            "symlink": os.readlink(path) if path.is_symlink() else None,
        }
        if edit.before is not None:
            entry["backup"] = f"files/{index}"
            atomic_write(folder / "files" / str(index), edit.before)
        files.append(entry)
    rows = []
    for index, tedit in enumerate(tensors):
        path = _inside(root, tedit.path)
        original = SafetensorsFile.open(path).read_raw_rows(tedit.tensor, tedit.rows)
        atomic_write(folder / "rows" / str(index), original)
        rows.append(
            {
                "path": tedit.path,
                "tensor": tedit.tensor,
                "rows": list(tedit.rows),
                "before_sha256": sha256_hex(original),
                "after_sha256": sha256_hex(tedit.data),
                "backup": f"rows/{index}",
            }
        )
    manifest = {
        "format": 1,
        "state": "pending",
        "created": datetime.now(timezone.utc).isoformat(),
        "files": files,
        "tensors": rows,
    }
    atomic_write(folder / MANIFEST, _json_bytes(manifest))
    return manifest


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
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
        try:
            shutil.copyfile(path, tmp)
            _pwrite_rows(tmp, info.row_offset, info.row_bytes, tedit.rows, payload)
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
            os.pwrite(fd, payload[i * row_bytes : (i + 1) * row_bytes], offset_of(row))
        os.fsync(fd)
    finally:
        os.close(fd)


def _latest_backup(root: Path) -> Path:
    folder = root / STATE_DIR / BACKUPS
    candidates = (
        sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file()) if folder.is_dir() else []
    )
    if not candidates:
        raise NothingToUndoError(
            root,
            "no backup of a previous repair",
            hint="undo works after `ftfix repair` kept a backup",
        )
    return candidates[-1]


def undo(root: Path) -> list[str]:
    """Restore exactly what the last repair of `root` changed, then drop its backup.

    Refuses, changing nothing, when a repaired file was modified after the repair.

    Returns:
        `list[str]`: the relative paths restored.

    Raises:
        `NothingToUndoError`: no backup exists.
        `StaleEditError`: a file changed since the repair.
        `LockedError`: a repair is running.
    """
    with locked(root):
        folder = _latest_backup(root)
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        todo = []
        for entry in manifest["files"]:
            path = _inside(root, entry["path"])
            current = sha256_hex(path.read_bytes()) if path.is_file() else None
            if current == entry["before_sha256"]:
                continue  # never written (an interrupted repair) or already restored
            if current != entry["after_sha256"]:
                raise StaleEditError(
                    path,
                    "changed since the repair; refusing to undo",
                    hint=f"restore it by hand from {folder / (entry['backup'] or '')}",
                )
            todo.append(entry)
        row_todo = []
        for entry in manifest["tensors"]:
            path = _inside(root, entry["path"])
            current = sha256_hex(
                SafetensorsFile.open(path).read_raw_rows(entry["tensor"], entry["rows"])
            )
            if current == entry["before_sha256"]:
                continue
            if current != entry["after_sha256"]:
                raise StaleEditError(
                    path, f"rows of {entry['tensor']!r} changed since the repair; refusing to undo"
                )
            row_todo.append(entry)
        restored = []
        for entry in todo:
            path = _inside(root, entry["path"])
            if entry["backup"] is None:
                path.unlink()
            elif entry.get("symlink"):
                tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
                os.symlink(entry["symlink"], tmp)
                os.replace(tmp, path)
            else:
                atomic_write(path, (folder / entry["backup"]).read_bytes())
            restored.append(entry["path"])
        for entry in row_todo:
            original = (folder / entry["backup"]).read_bytes()
            tedit = TensorRowsEdit(
                entry["path"], entry["tensor"], tuple(entry["rows"]), original, ""
            )
            _patch_rows(root, tedit)
            restored.append(entry["path"])
        shutil.rmtree(folder)
        _remove_empty_dirs(root, todo)
    _drop_state_dir(root)
    return restored


def _remove_empty_dirs(root: Path, entries: list[dict[str, Any]]) -> None:
    # A created file may have created its folder (additional_chat_templates/); undo removes it too.
    for entry in entries:
        if entry["backup"] is None:
            parent = _inside(root, entry["path"]).parent
            if parent != root:
                with contextlib.suppress(OSError):
                    parent.rmdir()


def _drop_state_dir(root: Path) -> None:
    """Remove `.ftfix/` once no backups remain, so an undone folder is as it was."""
    state = root / STATE_DIR
    backups = state / BACKUPS
    if backups.is_dir() and any(backups.iterdir()):
        return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(state)


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
            rel = (rel_dir / name).as_posix()
            source, target = Path(dirpath) / name, dst / rel_dir / name
            if rel in copy:
                shutil.copyfile(source, target)
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
