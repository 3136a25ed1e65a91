"""A read-only look at ftfix's own state folder (`.ftfix/`) in a checkpoint.

Readers (`check`, `repair --dry-run`, the base) never act on a journal; they only need to know
whether one is unfinished, to report it. Everything here uses `lstat`/`O_NOFOLLOW`: a planted
`.ftfix/` may hold symlinks to anywhere.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .limits import JOURNAL_LIMIT, read_limited

__all__ = ["BACKUPS", "MANIFEST", "STATE_DIR", "journal_folders", "unfinished_journals"]

STATE_DIR = ".ftfix"
BACKUPS = "backups"
MANIFEST = "manifest.json"
COMPLETE = "complete"


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def journal_folders(root: Path) -> list[Path]:
    """The journal folders under `root/.ftfix/backups/`, oldest first (real folders only)."""
    state = root / STATE_DIR
    backups = state / BACKUPS
    if not (_is_real_dir(state) and _is_real_dir(backups)):
        return []
    try:
        children = list(backups.iterdir())
    except OSError:
        return []
    return sorted(p for p in children if _is_real_dir(p))


def unfinished_journals(root: Path) -> list[str]:
    """Names of journal folders whose manifest is not `complete` (or cannot be read).

    Such a journal means a repair or undo stopped part-way (or is running now), or that the
    folder came with a `.ftfix/` written elsewhere.
    """
    found = []
    for folder in journal_folders(root):
        try:
            data = read_limited(folder / MANIFEST, JOURNAL_LIMIT, follow_symlinks=False)
        except (OSError, ValueError):
            found.append(folder.name)
            continue
        if data is None:
            continue  # killed while backing up: nothing in the checkpoint was touched
        try:
            journal = json.loads(data)
        except (ValueError, RecursionError):
            found.append(folder.name)
            continue
        if not isinstance(journal, dict) or journal.get("state") != COMPLETE:
            found.append(folder.name)
    return found
