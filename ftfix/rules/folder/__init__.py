"""Folder rules (FTX92x-93x): what the checkpoint folder itself holds besides the model.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    unfinished_repair_journal,  # FTX920
    unloadable_file,  # FTX922
)

__all__ = [
    "unfinished_repair_journal",
    "unloadable_file",
]
