"""Write tiny real GGUF files with `gguf.GGUFWriter` from the test factory's checkpoints.

The vocabulary, special-token ids and tensors come from a checkpoint folder built by
`ckpt_builders` (tokens in id order, control types for special tokens, the safetensors tensors
as float32), so a GGUF is what llama.cpp's converter would write for that folder, only small.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

_FOLDER: Any = object()


def folder_tokens(folder: Path) -> tuple[list[str], list[int]]:
    """Tokens in id order and llama.cpp token types (3 control for special tokens, else 1)."""
    data = json.loads((folder / "tokenizer.json").read_text("utf-8"))
    model_vocab = data["model"]["vocab"]
    vocab: dict[str, int] = (
        {piece: i for i, (piece, _score) in enumerate(model_vocab)}
        if isinstance(model_vocab, list)
        else dict(model_vocab)
    )
    special = set()
    for token in data.get("added_tokens", []):
        vocab[token["content"]] = token["id"]
        if token.get("special"):
            special.add(token["content"])
    tokens = [""] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        tokens[i] = text
    types = [3 if t in special else 1 for t in tokens]
    return tokens, types


def _content(token: Any) -> str | None:
    return token.get("content") if isinstance(token, dict) else token


def write_gguf(
    path: Path,
    folder: Path,
    *,
    template: str | None = _FOLDER,
    eos: str | None = _FOLDER,
    eot: str | None = None,
    bos: str | None = _FOLDER,
    add_bos: bool | None = None,
    extra: Mapping[str, str] | None = None,
    tensors: bool = True,
    pad_tensor_bytes: int = 0,
    pad_to: int | None = None,
) -> Path:
    """Write `path` from `folder`: `_FOLDER` values come from the folder's tokenizer files.

    `pad_tensor_bytes` adds one more (int8) tensor of that size, so a test can make the data
    section large without reading it. `pad_to` appends `[PAD<id>]` tokens up to that size, as
    llama.cpp's converter does up to the embedding size.
    """
    import gguf

    tokens, types = folder_tokens(folder)
    for i in range(len(tokens), pad_to or 0):
        tokens.append(f"[PAD{i}]")
        types.append(5)
    ids = {t: i for i, t in enumerate(tokens)}
    config = json.loads((folder / "tokenizer_config.json").read_text("utf-8"))
    if template is _FOLDER:
        jinja = folder / "chat_template.jinja"
        template = jinja.read_text("utf-8") if jinja.exists() else config.get("chat_template")
    if eos is _FOLDER:
        eos = _content(config.get("eos_token"))
    if bos is _FOLDER:
        bos = _content(config.get("bos_token"))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if bos is not None:
        writer.add_bos_token_id(ids[bos])
    if eos is not None:
        writer.add_eos_token_id(ids[eos])
    if eot is not None:
        writer.add_eot_token_id(ids[eot])
    if add_bos is not None:
        writer.add_add_bos_token(add_bos)
    if template is not None:
        writer.add_chat_template(template)
    for key, value in (extra or {}).items():
        writer.add_string(key, value)
    if tensors and (folder / "model.safetensors").exists():
        weights = folder / "model.safetensors"
        for name, array in sorted(load_file(str(weights)).items()):
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    if pad_tensor_bytes:
        writer.add_tensor("zz_padding", np.zeros(pad_tensor_bytes, dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tensor_bytes(path: Path) -> bytes:
    """Everything after the metadata: the tensor data, which a repair must never change."""
    from ftfix.io.gguf import read_gguf

    meta = read_gguf(path)
    with path.open("rb") as handle:
        handle.seek(meta.data_offset)
        return handle.read()
