"""Tokenizer-file rules (FTX02x): vocabulary, files, special tokens, BOS, image markers.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    double_bos,  # FTX023
    image_marker_not_single_token,  # FTX025
    missing_tokenizer_file,  # FTX021
    no_bos_added,  # FTX024
    special_token_mismatch,  # FTX022
    unbalanced_image_markers,  # FTX026
    vocabulary_remapped,  # FTX020
)

__all__ = [
    "double_bos",
    "image_marker_not_single_token",
    "missing_tokenizer_file",
    "no_bos_added",
    "special_token_mismatch",
    "unbalanced_image_markers",
    "vocabulary_remapped",
]
