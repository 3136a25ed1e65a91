"""The rules, one module each, grouped in folders by code family.

`templates/` FTX00x, `tokenizer/` FTX02x, `weights/` FTX1xx, `stops/` FTX2xx, `files/`
FTX900-919, `folder/` FTX920-939. Importing a family registers its rules; adding a rule is one
module and one line in its family's `__init__`.
"""

from __future__ import annotations

from . import files, folder, stops, templates, tokenizer, weights

__all__ = ["files", "folder", "stops", "templates", "tokenizer", "weights"]
