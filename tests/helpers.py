"""Small assertions shared by tests: render through transformers, edit files, run the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
]
LLAMA3_ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"
CHATML_ASSISTANT_HEADER = "<|im_start|>assistant\n"


def transformers_render(path: Path, *, add_generation_prompt: bool = True) -> str:
    """What transformers' own tokenizer renders for MESSAGES from the folder at `path`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    text = tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    assert isinstance(text, str)
    return text


def set_json_key(path: Path, key: str, value: Any) -> None:
    """Set (or with value None, delete) a top-level key of a JSON file, transformers-formatted."""
    data = json.loads(path.read_text("utf-8"))
    if value is None:
        data.pop(key, None)
    else:
        data[key] = value
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")


def patch_writer(patch: Any, name: str, value: Any) -> None:
    """Replace `name` in every module of `ftfix.write` that refers to it (a test hook or fault)."""
    import importlib
    import pkgutil

    import ftfix.write

    found = False
    for info in pkgutil.iter_modules(ftfix.write.__path__):
        module = importlib.import_module(f"ftfix.write.{info.name}")
        if hasattr(module, name):
            patch.setattr(module, name, value)
            found = True
    assert found, f"ftfix.write has no {name}"
