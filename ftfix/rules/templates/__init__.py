"""Chat-template rules (FTX00x): present, compiles, prompts, markers, locations.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    chat_template_broken,  # FTX003
    chat_template_format_changed,  # FTX004
    chat_template_locations_disagree,  # FTX006
    generation_prompt_lost,  # FTX002
    generation_prompt_missing,  # FTX005
    missing_chat_template,  # FTX001
    no_chat_template,  # FTX008
    template_marker_not_single_token,  # FTX007
)

__all__ = [
    "chat_template_broken",
    "chat_template_format_changed",
    "chat_template_locations_disagree",
    "generation_prompt_lost",
    "generation_prompt_missing",
    "missing_chat_template",
    "no_chat_template",
    "template_marker_not_single_token",
]
