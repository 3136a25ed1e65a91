"""Copy a checkpoint for `-o OUT`, so a repair leaves the input untouched."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .atomic import STATE_DIR, _is_tmp, _kept_mode

logger = logging.getLogger(__name__)


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
                os.chmod(target, _kept_mode(source))  # keep a 0600 file 0600
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
