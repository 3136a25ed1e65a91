"""Stop-token rules (FTX2xx): generation config, end of turn, eos, pad, sampling.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    base_looks_swapped,  # FTX209
    chat_stop_token_not_eos,  # FTX202
    end_of_turn_not_single_token,  # FTX205
    end_of_turn_untrained,  # FTX206
    eos_token_drift,  # FTX204
    generation_config_invalid,  # FTX208
    generation_config_missing,  # FTX201
    pad_token_is_eos,  # FTX207
    sampling_defaults_lost,  # FTX203
)

__all__ = [
    "base_looks_swapped",
    "chat_stop_token_not_eos",
    "end_of_turn_not_single_token",
    "end_of_turn_untrained",
    "eos_token_drift",
    "generation_config_invalid",
    "generation_config_missing",
    "pad_token_is_eos",
    "sampling_defaults_lost",
]
