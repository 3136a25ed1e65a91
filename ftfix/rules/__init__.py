"""The rules, one module each, grouped in folders by code family.

`templates/` FTX00x, `tokenizer/` FTX02x, `weights/` FTX1xx, `stops/` FTX2xx, `adapters/`
FTX3xx, `files/` FTX900-919. Importing a family registers its rules; adding a rule is one module
and one line in its family's `__init__`.
"""

from __future__ import annotations

from . import adapters, files, stops, templates, tokenizer, weights

__all__ = ["adapters", "files", "stops", "templates", "tokenizer", "weights"]
