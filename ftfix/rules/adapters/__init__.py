"""Adapter rules (FTX3xx): PEFT adapters that other machines and servers cannot load.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import adapter_base_not_portable  # FTX310

__all__ = ["adapter_base_not_portable"]
