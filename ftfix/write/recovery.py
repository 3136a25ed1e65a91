"""Rolling back or finishing an interrupted repair or undo from its journal."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    LockedError,
    RecoveryError,
    StaleEditError,
    UntrustedJournalError,
)
from ..findings import SpliceEdit, TensorRowsEdit, sha256_hex
from ..io.safetensors import SafetensorsFile
from ..io.state import journal_folders
from .atomic import (
    BACKUPS,
    COMPLETE,
    MANIFEST,
    PENDING,
    STATE_DIR,
    _file_sha,
    _fsync_dir,
    _inside,
    _is_tmp,
    _replace_with_symlink,
    _state_dir,
    _tmp_path,
    atomic_write,
)
from .journal import (
    _backup_bytes,
    _discard,
    _grown_shard,
    _load_journal,
    _read_manifest,
    backup_path,
)
from .lock import locked
from .rows import _patch_rows
from .spliced import apply_splice, range_sha256
from .streamed import check_grown_shard, shard_header_sha256, shrink_grown_shard

logger = logging.getLogger(__name__)


@dataclass
class _Restore:
    """What must go back to its original state, decided before anything is touched."""

    files: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    resized: list[dict[str, Any]] = field(default_factory=list)
    spliced: list[dict[str, Any]] = field(default_factory=list)


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
    for entry in journal["spliced"]:
        path = _inside(root, entry["path"])
        state = _splice_state(path, entry)
        relink = bool(entry.get("symlink")) and not path.is_symlink()
        if state == "before" and not relink:
            continue  # never written, or restored already
        if state == "unknown" and (strict or path.stat().st_size != entry["size_before"]):
            # Not strict: a torn in-place patch (same size) is put back from the backup.
            raise StaleEditError(
                path,
                f"changed since the repair of {folder.name}; refusing to restore it",
                hint=f"the original bytes at offset {entry['offset']} are in "
                f"{folder / entry['backup']}",
            )
        _backup_bytes(folder, entry)
        todo.spliced.append(entry)
    return todo


def _splice_state(path: Path, entry: dict[str, Any]) -> str:
    """`"before"`, `"after"` or `"unknown"`: what the spliced range of `path` holds now."""
    if not path.is_file():
        return "unknown"
    size = path.stat().st_size
    offset = entry["offset"]
    if size == entry["size_after"] and (
        range_sha256(path, offset, entry["after_length"]) == entry["after_sha256"]
    ):
        return "after"
    if size == entry["size_before"] and (
        range_sha256(path, offset, entry["before_length"]) == entry["before_sha256"]
    ):
        return "before"
    return "unknown"


def _restore_spliced(root: Path, folder: Path, entry: dict[str, Any]) -> None:
    path = _inside(root, entry["path"])

    def original(file: Path) -> bool:
        return _splice_state(file, entry) == "before"

    link = entry.get("symlink")
    if link and not path.is_symlink() and _blob_holds(path, link, original):
        _replace_with_symlink(path, link)
        return
    state = _splice_state(path, entry)
    if state == "before":
        return
    before = _backup_bytes(folder, entry)
    if state == "after":
        current = b"\0" * entry["after_length"]  # checked by the state above
        with path.open("rb") as handle:
            current = os.pread(handle.fileno(), entry["after_length"], entry["offset"])
        apply_splice(path, SpliceEdit(entry["path"], entry["offset"], current, before))
    else:  # a torn in-place patch: same length, put the original bytes back
        torn = SpliceEdit(entry["path"], entry["offset"], before, before)
        apply_splice(path, torn, check=False)


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
        _relink_or_write(path, folder, entry)


def _relink_or_write(path: Path, folder: Path, entry: dict[str, Any]) -> None:
    # A hard link of the backup needs no free space (a rollback after "disk full" must work);
    # the backup folder is deleted afterwards, so the link leaves no second name behind.
    # The backup was checked to be a regular file (never a symlink: linking or chmod-ing one
    # would act on whatever it points to); its bytes are checked against the journal first.
    data = _backup_bytes(folder, entry)
    backup = backup_path(folder, entry)
    tmp = _tmp_path(path)
    try:
        os.link(backup, tmp, follow_symlinks=False)
    except OSError:
        atomic_write(path, data)
        return
    try:
        if entry.get("mode") is not None:
            os.chmod(tmp, entry["mode"] & 0o777, follow_symlinks=False)
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
    for entry in todo.spliced:
        _restore_spliced(root, folder, entry)
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
    return journal_folders(root)


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
        if not os.path.lexists(folder / MANIFEST):
            level = "cleanup"
            continue
        try:
            journal = _read_manifest(folder)
        except RecoveryError:
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
        if not os.path.lexists(folder / MANIFEST):
            # Killed while backing up: the checkpoint was not touched yet.
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed the incomplete backup %s", folder.name)
            continue
        try:
            journal = _load_journal(root, folder)
        except UntrustedJournalError:
            if _read_manifest(folder).get("state") == COMPLETE:
                # A finished repair's backup (e.g. the folder was copied here): harmless as
                # long as nothing acts on it; undo refuses it.
                logger.info("ignoring the journal %s ftfix did not write here", folder.name)
                continue
            raise
        for entry in (
            *journal["files"], *journal["tensors"], *journal["resized"], *journal["spliced"]
        ):  # fmt: skip
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

    Every writing command (repair, undo) runs this first on the fine-tune; readers never do.
    Only a journal sealed by this user's ftfix in this folder is acted on (`trust`). A repair
    killed mid-way (a `pending` journal) is rolled back from its backups, an interrupted undo is
    finished, and leftover temp files are removed.
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
