"""Commit a plan: lock, journal, write files, grow shards, patch rows; roll back on failure."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    WriteFailedError,
)
from ..findings import FileEdit, SpliceEdit, TensorEdit, TensorRowsEdit
from .atomic import (
    BACKUPS,
    COMPLETE,
    STATE_DIR,
    _inside,
    _step,
    atomic_write,
)
from .journal import (
    _begin,
    _check_fresh,
    _check_space,
    _discard,
    _set_state,
    _split,
    _stamp,
    _write_journal,
)
from .lock import locked
from .recovery import _do_restore, _plan_restore, _recover_locked
from .rows import _patch_rows
from .spliced import apply_splice
from .streamed import _Growth, _plan_growth, _stream_growth

logger = logging.getLogger(__name__)


@dataclass
class CommitResult:
    """What a commit wrote.

    Args:
        written (`list[str]`): relative paths changed, in order.
        backup (`Path`, *optional*): the backup folder, when backups were kept.
    """

    written: list[str] = field(default_factory=list)
    backup: Path | None = None


# ------------------------------------------------------------------------------- commit
def commit(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorEdit] = (),
    *,
    backup: bool = True,
    splices: Sequence[SpliceEdit] = (),
) -> CommitResult:
    """Apply planned edits to the checkpoint at `root`, crash-safely.

    Under the lock: roll back any interrupted earlier repair, check every file still holds what
    the plan was made against and that the disk has room, write the journal and backups
    (fsynced), then write each file atomically, rewrite the shards whose tensors grow
    (`TensorResizeEdit`: streamed into a temp file, replaced atomically), patch tensor rows in
    place, splice byte ranges (`SpliceEdit`: GGUF metadata, in place when the length is
    unchanged, else streamed and replaced atomically), and mark the journal complete. Any
    error while writing rolls the checkpoint back before raising. With `backup=False` the
    journal and backups are deleted once the repair completed.

    Raises:
        `LockedError`: another repair holds the lock.
        `StaleEditError`: a file changed since planning (nothing is written).
        `UnsafePathError`: a path would be written outside the checkpoint.
        `WriteFailedError`: the disk is full, the folder is read-only, or a write or fsync
            failed; the checkpoint is rolled back (the message says if that failed too).
    """
    result = CommitResult()
    rows, resizes = _split(tensors)
    if not edits and not tensors and not splices:
        return result
    if len({s.path for s in splices}) != len(splices):
        raise ValueError("one splice per file")
    for rel in [e.path for e in edits] + [t.path for t in tensors] + [s.path for s in splices]:
        _inside(root, rel)  # refuse bad paths before creating anything
    try:
        with locked(root):
            _recover_locked(root)
            _check_fresh(root, edits, rows, resizes, splices)
            _check_space(root, edits, rows, resizes, splices)
            growths = [_plan_growth(_inside(root, rel), g, rel) for rel, g in resizes.items()]
            logger.info(
                "committing %d file edits, %d tensor edits and %d splices to %s",
                len(edits), len(tensors), len(splices), root,
            )  # fmt: skip
            folder = root / STATE_DIR / BACKUPS / _stamp()
            try:
                journal = _begin(
                    root, folder, edits, rows, keep=backup, growths=growths, splices=splices
                )
            except BaseException:
                _discard(folder)  # nothing in the checkpoint changed yet
                raise
            try:
                _apply(root, folder, journal, edits, rows, growths, result)
                for splice in splices:
                    apply_splice(_inside(root, splice.path), splice)
                    result.written.append(splice.path)
                    logger.info("spliced %d bytes into %s", len(splice.after), splice.path)
                _set_state(root, folder, journal, COMPLETE)  # the commit point
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
        _write_journal(root, folder, journal)
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
            hint=f"fix the cause, then run `ftfix repair` or `ftfix undo` on {root}: it rolls "
            f"the repair back from {folder}",
            errno=getattr(exc, "errno", None),
        ) from exc
    logger.warning("%s: write failed; rolled back %s", root, ", ".join(restored) or "nothing")
