"""Training-format rules (FTX6xx): what training fed the model against what serving feeds it.

Importing a module registers its rule; a new rule of this family is one module and one line here.
"""

from __future__ import annotations

from . import (
    training_format_differs,  # FTX600
    training_template_differs,  # FTX601
)

__all__ = [
    "training_format_differs",
    "training_template_differs",
]
