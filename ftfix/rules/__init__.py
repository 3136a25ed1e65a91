"""The rules, imported in code order: adding a rule is one module and one line here."""

from __future__ import annotations

from . import (
    chat_stop_token_not_eos,  # FTX202
    chat_template_broken,  # FTX003
    chat_template_format_changed,  # FTX004
    chat_template_locations_disagree,  # FTX006
    double_bos,  # FTX023
    embedding_rows_missing,  # FTX101
    end_of_turn_not_single_token,  # FTX205
    end_of_turn_untrained,  # FTX206
    eos_token_drift,  # FTX204
    generation_config_missing,  # FTX201
    generation_prompt_lost,  # FTX002
    generation_prompt_missing,  # FTX005
    image_marker_not_single_token,  # FTX025
    mean_initialized_token_rows,  # FTX103
    missing_chat_template,  # FTX001
    missing_tokenizer_file,  # FTX021
    no_bos_added,  # FTX024
    no_chat_template,  # FTX008
    pad_token_is_eos,  # FTX207
    reserved_token_rows_untrained,  # FTX104
    sampling_defaults_lost,  # FTX203
    special_token_mismatch,  # FTX022
    template_marker_not_single_token,  # FTX007
    unbalanced_image_markers,  # FTX026
    untrained_token_rows,  # FTX102
    vocabulary_remapped,  # FTX020
)

__all__ = [
    "chat_stop_token_not_eos",
    "chat_template_broken",
    "chat_template_format_changed",
    "chat_template_locations_disagree",
    "double_bos",
    "embedding_rows_missing",
    "end_of_turn_not_single_token",
    "end_of_turn_untrained",
    "eos_token_drift",
    "generation_config_missing",
    "generation_prompt_lost",
    "generation_prompt_missing",
    "image_marker_not_single_token",
    "mean_initialized_token_rows",
    "missing_chat_template",
    "missing_tokenizer_file",
    "no_bos_added",
    "no_chat_template",
    "pad_token_is_eos",
    "reserved_token_rows_untrained",
    "sampling_defaults_lost",
    "special_token_mismatch",
    "template_marker_not_single_token",
    "unbalanced_image_markers",
    "untrained_token_rows",
    "vocabulary_remapped",
]
