"""An 8B-shaped Llama checkpoint as sparse files, for reading over HTTP range requests.

Every tensor of Llama-3-8B sits at its real offset in four shards (~16 GB of file size); only
the first rows of `embed_tokens` and `lm_head` hold data (the rows of the test tokenizer's
tokens; the rest of both matrices are padding rows, as in a vocabulary padded to 128256), and
everything else is a hole. The tokenizer is the test suite's small Llama-3-style one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ckpt_builders import (
    LLAMA3_TEMPLATE,
    TOKEN_IDS,
    build_generation_config,
    build_tokenizer,
    shard_groups,
    to_bf16_bytes,
    vocab_for,
    write_sparse_safetensors,
)

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 4096, 14336, 32, 32, 8, 128256


def tensors_8b() -> list[tuple[str, list[int]]]:
    kv = KV_HEADS * (HIDDEN // HEADS)
    found = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        found += [
            (p + "input_layernorm.weight", [HIDDEN]),
            (p + "mlp.down_proj.weight", [HIDDEN, INTER]),
            (p + "mlp.gate_proj.weight", [INTER, HIDDEN]),
            (p + "mlp.up_proj.weight", [INTER, HIDDEN]),
            (p + "post_attention_layernorm.weight", [HIDDEN]),
            (p + "self_attn.k_proj.weight", [kv, HIDDEN]),
            (p + "self_attn.o_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.q_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.v_proj.weight", [kv, HIDDEN]),
        ]
    return [*found, ("model.norm.weight", [HIDDEN]), ("lm_head.weight", [VOCAB, HIDDEN])]


def _rows(n: int, seed: int, zero: tuple[int, ...]) -> bytes:
    values = np.random.default_rng(seed).normal(0, 0.02, size=(n, HIDDEN)).astype(np.float32)
    values[list(zero)] = 0.0
    return to_bf16_bytes(values)


def write_sparse_8b(folder: Path, *, zero_head_rows: tuple[int, ...] = ()) -> int:
    """Write the shards and the index; return the total size of the weight files."""
    groups = shard_groups(tensors_8b())
    names = [f"model-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    n_tokens = len(vocab_for())
    total = 0
    for shard, group in zip(names, groups, strict=True):
        path = folder / shard
        starts = write_sparse_safetensors(path, group)
        fd = os.open(path, os.O_WRONLY)
        try:
            for seed, tensor in enumerate(("model.embed_tokens.weight", "lm_head.weight")):
                if tensor in starts:
                    zero = zero_head_rows if tensor == "lm_head.weight" else ()
                    os.pwrite(fd, _rows(n_tokens, seed, zero), starts[tensor])
        finally:
            os.close(fd)
        total += path.stat().st_size
    index = {
        "metadata": {"total_size": total},
        "weight_map": {t: n for n, g in zip(names, groups, strict=True) for t, _ in g},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return total


def write_config_8b(folder: Path) -> None:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "bos_token_id": TOKEN_IDS["<|begin_of_text|>"],
        "eos_token_id": TOKEN_IDS["<|end_of_text|>"],
        "head_dim": HIDDEN // HEADS,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "max_position_embeddings": 131072,
        "model_type": "llama",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-05,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.57.1",
        "vocab_size": VOCAB,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def build_hub_finetune(folder: Path, *, stops: bool = False, head_trained: bool = False) -> int:
    """A Llama-3 chat fine-tune, 8B-shaped: by default its generation config stops only on
    `<|end_of_text|>` (the stop gap) and the `<|eot_id|>` row of lm_head is zero (untrained)."""
    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer(folder, chat_template=LLAMA3_TEMPLATE)
    write_config_8b(folder)
    eos = (
        [TOKEN_IDS["<|end_of_text|>"], TOKEN_IDS["<|eot_id|>"]]
        if stops
        else TOKEN_IDS["<|end_of_text|>"]
    )
    build_generation_config(folder, eos_token_id=eos, bos_token_id=TOKEN_IDS["<|begin_of_text|>"])
    zero = () if head_trained else (TOKEN_IDS["<|eot_id|>"],)
    return write_sparse_8b(folder, zero_head_rows=zero)


def build_hub_base(folder: Path) -> Path:
    """The local base: the same tokenizer files and config, no weights, a stopping config
    with sampling defaults."""
    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer(folder, chat_template=LLAMA3_TEMPLATE)
    write_config_8b(folder)
    build_generation_config(
        folder,
        eos_token_id=[TOKEN_IDS["<|end_of_text|>"], TOKEN_IDS["<|eot_id|>"]],
        bos_token_id=TOKEN_IDS["<|begin_of_text|>"],
        temperature=0.6,
        top_p=0.9,
        do_sample=True,
    )
    return folder


def variant(source: Path, folder: Path, small_files: dict[str, bytes]) -> Path:
    """A copy of `source` sharing its shards (hard links) with some small files replaced."""
    folder.mkdir(parents=True)
    for item in source.iterdir():
        if item.suffix == ".safetensors":
            os.link(item, folder / item.name)
        else:
            (folder / item.name).write_bytes(item.read_bytes())
    for name, data in small_files.items():
        (folder / name).write_bytes(data)
    return folder
