"""Training rows as trainers produce them, and a real Qwen2.5 tokenizer folder to check them in.

The Qwen2.5 tokenizer is transformers' own, built from `../shared/realworld/qwen2.5-14b-instruct`
(vocab.json + merges.txt + tokenizer_config.json, the real files) and saved with
`save_pretrained`, so tokenizer.json and the chat template are what a fine-tune folder holds.
Building it takes ~10 s: `qwen25_tokenizer_dir` does it once per session.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld"
QWEN25 = SHARED / "qwen2.5-14b-instruct"

Message = Mapping[str, str]

CONVERSATIONS: tuple[tuple[dict[str, str], ...], ...] = (
    (
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ),
    (
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ),
    (
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ),
)

# The default system prompt of LLaMA-Factory's `qwen` template up to 0.9.2 (0.9.3 took Qwen2.5's):
# the Python template trains with it; Qwen2.5's Jinja template injects its own.
LF_QWEN_DEFAULT_SYSTEM = "You are a helpful assistant."
QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


_BUILT: dict[str, Path] = {}


def qwen25_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the real Qwen2.5 tokenizer.json, tokenizer_config.json and template.

    Built once per test session (call it from a session fixture); skips without the data.
    """
    if not QWEN25.is_dir():
        pytest.skip(f"{QWEN25} not present")
    transformers = pytest.importorskip("transformers")
    if "qwen25" not in _BUILT:
        out = tmp_path_factory.mktemp("qwen25-tokenizer")
        transformers.AutoTokenizer.from_pretrained(str(QWEN25)).save_pretrained(str(out))
        _BUILT["qwen25"] = out
    return _BUILT["qwen25"]


def copy_folder(src: Path, dst: Path) -> Path:
    """A writable copy of a fixture folder."""
    shutil.copytree(src, dst)
    return dst


def load_tokenizer(folder: Path) -> Any:
    """transformers' tokenizer of `folder` (what TRL formats training data with)."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(str(folder))


def trl_rows(tokenizer: Any, conversations: Sequence[Sequence[Message]]) -> list[dict[str, Any]]:
    """Rows as TRL's SFTTrainer makes them: the tokenizer's own chat template, text and ids."""
    rows: list[dict[str, Any]] = []
    for i, messages in enumerate(conversations):
        text = tokenizer.apply_chat_template(list(messages), tokenize=False)
        row: dict[str, Any] = {"messages": list(messages)}
        if i % 2:
            row["text"] = text
        else:
            encoded = tokenizer.apply_chat_template(list(messages), tokenize=True)
            ids = encoded["input_ids"] if isinstance(encoded, Mapping) else encoded
            row["input_ids"] = list(ids)
        rows.append(row)
    return rows


def chatml_text(messages: Sequence[Message], *, default_system: str | None) -> str:
    """The ChatML text a trainer's Python template writes (LLaMA-Factory / ms-swift style)."""
    parts = []
    if messages[0]["role"] != "system" and default_system is not None:
        parts.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
    for m in messages:
        parts.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
    return "".join(parts)


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One JSON object a line."""
    path.write_text("".join(json.dumps(dict(r)) + "\n" for r in rows), "utf-8")
    return path


def edit_template(folder: Path, old: str, new: str) -> None:
    """Replace one exact snippet of the saved chat template (an edit made after training)."""
    path = folder / "chat_template.jinja"
    source = path.read_text("utf-8")
    assert source.count(old) >= 1, old
    path.write_text(source.replace(old, new), "utf-8")
