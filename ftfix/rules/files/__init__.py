"""File rules (FTX900-FTX919): files of the checkpoint that cannot be read.

Each reports the `FileProblem`s the checkpoint found when it was opened; the rules that need
those files are skipped and every other rule runs. A new rule of this family is one module and
one line here.
"""

from __future__ import annotations

from . import (
    git_lfs_pointer,  # FTX900
    missing_shard,  # FTX902
    pickled_weights,  # FTX903
    unreadable_file,  # FTX901
)

__all__ = ["git_lfs_pointer", "missing_shard", "pickled_weights", "unreadable_file"]
