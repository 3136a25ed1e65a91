"""Chat-template rules (FTX00x, FTX01x): present, compiles, prompts, markers, capabilities.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    chat_capability_lost,  # FTX009
    chat_template_broken,  # FTX003
    chat_template_format_changed,  # FTX004
    chat_template_locations_disagree,  # FTX006
    generation_prompt_lost,  # FTX002
    generation_prompt_missing,  # FTX005
    generation_tags_saved,  # FTX011
    missing_chat_template,  # FTX001
    no_chat_template,  # FTX008
    template_marker_not_single_token,  # FTX007
    thinking_default_changed,  # FTX010
)

__all__ = [
    "chat_capability_lost",
    "chat_template_broken",
    "chat_template_format_changed",
    "chat_template_locations_disagree",
    "generation_prompt_lost",
    "generation_prompt_missing",
    "generation_tags_saved",
    "missing_chat_template",
    "no_chat_template",
    "template_marker_not_single_token",
    "thinking_default_changed",
]
