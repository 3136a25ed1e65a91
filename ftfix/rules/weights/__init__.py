"""Embedding-row rules (FTX1xx): rows missing, untrained, initialised, reserved.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    embedding_rows_missing,  # FTX101
    mean_initialized_token_rows,  # FTX103
    reserved_token_rows_untrained,  # FTX104
    untrained_token_rows,  # FTX102
)

__all__ = [
    "embedding_rows_missing",
    "mean_initialized_token_rows",
    "reserved_token_rows_untrained",
    "untrained_token_rows",
]
