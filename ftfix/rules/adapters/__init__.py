"""Adapter and checkpoint rules (FTX3xx): no-op adapters and checkpoints, unportable bases.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    adapter_base_not_portable,  # FTX310
    adapter_layers_missing,  # FTX302
    adapter_never_trained,  # FTX303
    adapter_targets_missing,  # FTX301
    adapter_tensors_broken,  # FTX300
    deepspeed_weights_not_consolidated,  # FTX305
    merged_identical_to_base,  # FTX304
)

__all__ = [
    "adapter_base_not_portable",
    "adapter_layers_missing",
    "adapter_never_trained",
    "adapter_targets_missing",
    "adapter_tensors_broken",
    "deepspeed_weights_not_consolidated",
    "merged_identical_to_base",
]
