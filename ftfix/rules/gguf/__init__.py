"""GGUF and Ollama rules (FTX5xx): a converted model file checked as llama.cpp and Ollama read it.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    gguf_double_bos,  # FTX501
    gguf_end_of_turn_not_eog,  # FTX500
    gguf_eos_differs,  # FTX504
    gguf_generation_prompt_ignored,  # FTX502
    gguf_template_differs,  # FTX503
    gguf_vocabulary_differs,  # FTX505
    ollama_template_not_recognised,  # FTX506
)

__all__ = [
    "gguf_double_bos",
    "gguf_end_of_turn_not_eog",
    "gguf_eos_differs",
    "gguf_generation_prompt_ignored",
    "gguf_template_differs",
    "gguf_vocabulary_differs",
    "ollama_template_not_recognised",
]
