"""The rules, imported in code order: adding a rule is one module and one line here."""

from __future__ import annotations

from . import (
    generation_prompt_lost,  # FTX002
    missing_chat_template,  # FTX001
)

__all__ = ["generation_prompt_lost", "missing_chat_template"]
