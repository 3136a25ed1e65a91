"""The rules, one module each, grouped in folders by code family.

`templates/` FTX00x-01x, `tokenizer/` FTX02x, `weights/` FTX1xx, `stops/` FTX2xx, `adapters/`
FTX3xx, `gguf/` FTX5xx (GGUF files), `files/` FTX900-919 (unreadable files), `folder/`
FTX920-939 (folders transformers cannot load), `config/` FTX40x (config.json and headers in
training or merge state), `runtime/` FTX42x (adapters a serving runtime cannot load). Importing
a family registers its rules; adding a rule is one module and one line in its family's
`__init__`.
"""

from __future__ import annotations

from . import (  # one family a line: branches that add families merge cleanly
    adapters,
    config,
    files,
    folder,
    gguf,
    runtime,
    stops,
    templates,
    tokenizer,
    training,
    weights,
)

__all__ = [
    "adapters",
    "config",
    "files",
    "folder",
    "gguf",
    "runtime",
    "stops",
    "templates",
    "tokenizer",
    "training",
    "weights",
]
