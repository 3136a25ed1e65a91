"""Undo the last repair from its backup, refusing when the files changed since."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import (
    NothingToUndoError,
    WriteFailedError,
)
from .atomic import COMPLETE, MANIFEST, UNDOING
from .journal import _discard, _load_journal, _set_state
from .lock import locked
from .recovery import _do_restore, _journal_folders, _plan_restore, _recover_locked

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- undo
def _latest_backup(root: Path) -> tuple[Path, dict[str, Any]]:
    for folder in reversed(_journal_folders(root)):
        if os.path.lexists(folder / MANIFEST):
            journal = _load_journal(root, folder)
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
    is marked `undoing` first, so an undo killed part-way is finished by the next repair or undo.
    Shards the repair grew are shrunk back to their original bytes, after their rows.

    Returns:
        `list[str]`: the relative paths restored.

    Raises:
        `NothingToUndoError`: no backup exists.
        `StaleEditError`: a file changed since the repair.
        `LockedError`: a repair is running.
        `WriteFailedError`: a write failed part-way (the next repair or undo finishes it).
    """
    with locked(root):
        _recover_locked(root)
        folder, journal = _latest_backup(root)
        todo = _plan_restore(root, folder, journal, strict=True)
        _set_state(root, folder, journal, UNDOING)
        try:
            restored = _do_restore(root, folder, todo)
        except OSError as exc:
            raise WriteFailedError(
                exc.filename or root,
                f"undo stopped part-way: {exc.strerror or exc}",
                hint=f"fix the cause, then run `ftfix undo` on {root} again: it finishes the undo "
                f"from {folder}",
                errno=exc.errno,
            ) from exc
        _discard(folder)
    return restored
