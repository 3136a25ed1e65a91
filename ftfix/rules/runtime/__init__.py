"""Runtime rules (FTX42x): adapters and folders a serving runtime cannot load as they are.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    adapter_saves_whole_modules,  # FTX420
    adapter_trainable_tokens,  # FTX421
    lora_on_tied_head,  # FTX423
    lora_rank_above_default,  # FTX422
)

__all__ = [
    "adapter_saves_whole_modules",
    "adapter_trainable_tokens",
    "lora_on_tied_head",
    "lora_rank_above_default",
]
