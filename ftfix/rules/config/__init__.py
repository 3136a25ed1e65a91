"""Config rules (FTX40x): config.json and headers left in training or merge state.

Also files that only some transformers versions load (tokenizer_class).

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    architectures_changed,  # FTX403
    dtype_mismatch,  # FTX404
    quantization_config_unused,  # FTX401
    remote_code_missing,  # FTX407
    tied_head_differs,  # FTX406
    tokenizer_class_unloadable,  # FTX408
    use_cache_disabled,  # FTX402
    weight_keys_prefixed,  # FTX409
    weights_upcast,  # FTX405
)

__all__ = [
    "architectures_changed",
    "dtype_mismatch",
    "quantization_config_unused",
    "remote_code_missing",
    "tied_head_differs",
    "tokenizer_class_unloadable",
    "use_cache_disabled",
    "weight_keys_prefixed",
    "weights_upcast",
]
