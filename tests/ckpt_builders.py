"""Build tiny but real Hugging Face checkpoints on disk, offline and fast.

Every artefact is genuine: tokenizers are built with the `tokenizers` library (and saved through
transformers' `save_pretrained` for the v5 layout), weights are real safetensors files, and
adapters are saved by peft. Nothing here downloads anything.

The merged-checkpoint path imports neither torch nor (for the v4 layout) transformers, so a test
can build dozens of checkpoints in well under a second. torch, transformers' models and peft are
imported lazily, only by the builders that need them (`build_adapter`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Layout = Literal["v5", "v4"]
DType = Literal["float32", "float16", "bfloat16"]
IdSpec = int | list[int] | None

# Version strings written into config files, as the matching transformers release would.
TRANSFORMERS_VERSION = {"v5": "5.23.0", "v4": "4.46.3"}

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

SPECIAL_TOKENS: tuple[str, ...] = (
    "<unk>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|finetune_pad|>",
    # Reserved like Llama-3's: in the vocabulary but never used by a template.
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
)
NEWLINE = "\n"
PUNCTUATION: tuple[str, ...] = (".", ",", "!", "?", "'", ":", ";", "-", '"', "(", ")")
DIGITS: tuple[str, ...] = tuple(str(d) for d in range(10))
WORDS: tuple[str, ...] = (
    "hello", "world", "hi", "there", "user", "assistant", "system", "tool",
    "you", "are", "a", "an", "the", "helpful", "ok", "bye", "i", "am", "is", "it",
    "what", "how", "can", "help", "me", "my", "your", "name", "tell", "about",
    "weather", "today", "thanks", "thank", "good", "fine", "yes", "no", "please", "sure",
    "this", "that", "to", "do", "and", "of", "in", "for", "with", "not",
    "sorry", "know", "think", "answer", "question", "test", "ping", "pong",
    "s", "m", "t", "re", "ve", "ll", "d",
)  # fmt: skip

BASE_VOCAB: tuple[str, ...] = (*SPECIAL_TOKENS, NEWLINE, *PUNCTUATION, *DIGITS, *WORDS)
TOKEN_IDS: Mapping[str, int] = MappingProxyType({tok: i for i, tok in enumerate(BASE_VOCAB)})
BASE_VOCAB_SIZE = len(BASE_VOCAB)

# Conversations whose every word is in the vocabulary (lower-cased by the normalizer).
PROBE_CONVERSATIONS: tuple[tuple[dict[str, str], ...], ...] = (
    (
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
    ),
    (
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "Tell me about the weather."},
    ),
    (
        {"role": "user", "content": "What is your name?"},
        {"role": "assistant", "content": "My name is assistant. Thanks!"},
    ),
)

SPECIALS_LLAMA3: Mapping[str, str | None] = MappingProxyType(
    {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|finetune_pad|>"}
)
# A ChatML fine-tune of the same base: Qwen-style, no BOS, turns end with <|im_end|>.
SPECIALS_CHATML: Mapping[str, str | None] = MappingProxyType(
    {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|finetune_pad|>"}
)

# ---------------------------------------------------------------------------------------------
# Chat templates
# ---------------------------------------------------------------------------------------------

_LLAMA3_GEN_PROMPT = (
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
LLAMA3_TEMPLATE_NO_GEN_PROMPT = (
    "{% for message in messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.first %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
)
LLAMA3_TEMPLATE = LLAMA3_TEMPLATE_NO_GEN_PROMPT + _LLAMA3_GEN_PROMPT

_CHATML_GEN_PROMPT = "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
CHATML_TEMPLATE_NO_GEN_PROMPT = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
)
CHATML_TEMPLATE = CHATML_TEMPLATE_NO_GEN_PROMPT + _CHATML_GEN_PROMPT

# A Qwen2-VL-style ChatML template: image parts become paired vision markers.
VL_MARKERS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_UNSET: Any = object()


def vocab_for(added_tokens: Sequence[str] = ()) -> dict[str, int]:
    """Token -> id for the base vocabulary plus `added_tokens` appended in order."""
    vocab = dict(TOKEN_IDS)
    for tok in added_tokens:
        if tok in vocab:
            raise ValueError(f"added token {tok!r} is already in the vocabulary")
        vocab[tok] = len(vocab)
    return vocab


def _id_of(token: str | None, vocab: Mapping[str, int]) -> int | None:
    if token is None:
        return None
    try:
        return vocab[token]
    except KeyError:
        raise ValueError(f"{token!r} is not in the vocabulary") from None


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def build_backend_tokenizer(
    added_tokens: Sequence[str] = (), *, bos_token: str | None = None, add_bos: bool = False
) -> Tokenizer:
    """The `tokenizers.Tokenizer` behind every built checkpoint (word level, lower-cased)."""
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    base = {tok: i for i, tok in enumerate(BASE_VOCAB)}
    tok = Tokenizer(WordLevel(vocab=base, unk_token="<unk>"))
    # Lower-casing lets probes use ordinary capitalised sentences with a tiny vocabulary.
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # Drop spaces and tabs but keep "\n": templates put meaning in newlines.
            pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
            # Words, single digits, and every other character on its own.
            pre_tokenizers.Split(Regex(r"\n|[a-z]+|\d|[^\sa-z\d]"), behavior="isolated"),
        ]
    )
    # Specials must not be lower-cased or split, hence normalized=False.
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS])
    vocab = vocab_for(added_tokens)
    if added_tokens:
        tok.add_special_tokens(
            [AddedToken(s, special=True, normalized=False) for s in added_tokens]
        )
    if add_bos:
        bos_id = _id_of(bos_token, vocab)
        if bos_token is None or bos_id is None:
            raise ValueError("add_bos=True needs a bos_token")
        # What Llama-3's tokenizer.json does: BOS comes from the post-processor, not the config.
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A {bos_token} $B:1",
            special_tokens=[(bos_token, bos_id)],
        )
    # Guard against a silent id shift if the vocabulary code above ever changes.
    assert tok.get_vocab(with_added_tokens=True) == vocab
    return tok


def _added_token_state(content: str) -> dict[str, Any]:
    # The dict transformers 4 wrote for an AddedToken (keys sorted on output).
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }


def _dump_json(path: Path, data: Mapping[str, Any]) -> None:
    # transformers 4 and 5 both write sorted keys, indent 2, non-ASCII kept, trailing newline.
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def _write_v4_tokenizer(
    path: Path,
    backend: Tokenizer,
    *,
    chat_templates: dict[str, str],
    specials: Mapping[str, str | None],
    added_tokens: Sequence[str],
    added_tokens_json: bool,
) -> None:
    backend.save(str(path / "tokenizer.json"))  # pretty JSON, as transformers 4 saved it

    vocab = vocab_for(added_tokens)
    decoder = {i: _added_token_state(t) for t, i in vocab.items() if t in SPECIAL_TOKENS}
    decoder.update({vocab[t]: _added_token_state(t) for t in added_tokens})
    config: dict[str, Any] = {
        "added_tokens_decoder": decoder,  # int keys: json sorts them numerically, like v4
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    config.update(specials)  # None stays null, as Qwen2's tokenizer_config has "bos_token": null
    if added_tokens:
        config["additional_special_tokens"] = list(added_tokens)
    if list(chat_templates) == ["default"]:
        config["chat_template"] = chat_templates["default"]
    elif chat_templates:
        config["chat_template"] = [{"name": k, "template": v} for k, v in chat_templates.items()]
    _dump_json(path / "tokenizer_config.json", config)

    smap: dict[str, Any] = {}
    for key, value in specials.items():
        if value is not None:
            state = _added_token_state(value)
            del state["special"]  # special_tokens_map entries never carried "special"
            smap[key] = state
    if added_tokens:
        smap["additional_special_tokens"] = list(added_tokens)
    _dump_json(path / "special_tokens_map.json", smap)

    if added_tokens_json and added_tokens:
        _dump_json(path / "added_tokens.json", {t: vocab[t] for t in added_tokens})


def build_tokenizer(
    path: str | os.PathLike[str],
    *,
    chat_template: str | None = LLAMA3_TEMPLATE,
    layout: Layout = "v5",
    bos_token: str | None = SPECIALS_LLAMA3["bos_token"],
    eos_token: str | None = SPECIALS_LLAMA3["eos_token"],
    pad_token: str | None = SPECIALS_LLAMA3["pad_token"],
    unk_token: str | None = "<unk>",
    added_tokens: Sequence[str] = (),
    add_bos: bool = False,
    extra_chat_templates: Mapping[str, str] | None = None,
    added_tokens_json: bool = False,
) -> Path:
    """Write a loadable tokenizer into `path` in the v5 or v4 file layout.

    v5 goes through transformers' own `save_pretrained`; v4 is written directly (no transformers
    import), byte-for-byte in the shape transformers 4.x produced. `added_tokens_json` (v4 only)
    also writes `added_tokens.json`, as slow-capable tokenizers did.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    backend = build_backend_tokenizer(added_tokens, bos_token=bos_token, add_bos=add_bos)
    specials = {
        "bos_token": bos_token,
        "eos_token": eos_token,
        "pad_token": pad_token,
        "unk_token": unk_token,
    }
    vocab = vocab_for(added_tokens)
    for value in specials.values():
        _id_of(value, vocab)  # fail early on a special token outside the vocabulary

    templates: dict[str, str] = {}
    if chat_template is not None:
        templates["default"] = chat_template
    templates.update(extra_chat_templates or {})

    if layout == "v4":
        _write_v4_tokenizer(
            out,
            backend,
            chat_templates=templates,
            specials=specials,
            added_tokens=added_tokens,
            added_tokens_json=added_tokens_json,
        )
        return out
    if layout != "v5":
        raise ValueError(f"unknown layout {layout!r}")

    from transformers import PreTrainedTokenizerFast

    kwargs: dict[str, Any] = dict(specials)
    if templates:
        # A plain string gives chat_template.jinja; a dict also gives additional_chat_templates/.
        kwargs["chat_template"] = (
            templates["default"] if list(templates) == ["default"] else templates
        )
    if added_tokens:
        # What a fine-tune's add_special_tokens({"additional_special_tokens": ...}) records.
        kwargs["extra_special_tokens"] = list(added_tokens)
    PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs).save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def llama_dims(hidden_size: int = 8) -> dict[str, int]:
    """Shape parameters of the tiny Llama for a given hidden size (2 heads, 1 KV head)."""
    if hidden_size % 2:
        raise ValueError("hidden_size must be even (2 attention heads)")
    return {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": hidden_size // 2,
        "max_position_embeddings": 64,
    }


def build_model_config(
    path: str | os.PathLike[str],
    *,
    vocab_size: int,
    tied: bool = False,
    eos_token_id: IdSpec = TOKEN_IDS["<|eot_id|>"],
    bos_token_id: int | None = TOKEN_IDS["<|begin_of_text|>"],
    pad_token_id: int | None = None,
    hidden_size: int = 8,
    dtype: DType = "float32",
    layout: Layout = "v5",
) -> Path:
    """Write a Llama-style `config.json` that transformers can instantiate; return its path."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "mlp_bias": False,
        "model_type": "llama",
        "pad_token_id": pad_token_id,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": tied,
        "transformers_version": TRANSFORMERS_VERSION[layout],
        "use_cache": True,
        "vocab_size": vocab_size,
        **llama_dims(hidden_size),
    }
    if layout == "v5":
        config["dtype"] = dtype
        config["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    else:
        # transformers 4 spelled these differently; v5 still reads both.
        config["torch_dtype"] = dtype
        config["rope_theta"] = 10000.0
        config["rope_scaling"] = None
    file = out / "config.json"
    _dump_json(file, config)
    return file


def build_generation_config(
    path: str | os.PathLike[str],
    *,
    eos_token_id: IdSpec,
    bos_token_id: int | None = None,
    pad_token_id: int | None = None,
    layout: Layout = "v5",
    **sampling: Any,
) -> Path:
    """Write `generation_config.json` (None values omitted, like GenerationConfig does)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
        **sampling,
    }
    data = {k: v for k, v in data.items() if v is not None}
    data["transformers_version"] = TRANSFORMERS_VERSION[layout]
    file = out / "generation_config.json"
    _dump_json(file, data)
    return file


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------

_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}


def shard_groups(
    tensors: Sequence[tuple[str, Sequence[int]]], *, max_bytes: int = 5 * 10**9, itemsize: int = 2
) -> list[list[tuple[str, Sequence[int]]]]:
    """Split tensors into shards as transformers does (default `max_shard_size`, 5 GB)."""
    groups: list[list[tuple[str, Sequence[int]]]] = [[]]
    size = 0
    for name, dims in tensors:
        nbytes = itemsize * int(np.prod(dims, dtype=np.int64))
        if groups[-1] and size + nbytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append((name, dims))
        size += nbytes
    return groups


def write_sparse_safetensors(
    path: str | os.PathLike[str],
    tensors: Sequence[tuple[str, Sequence[int]]],
    *,
    dtype: str = "BF16",
) -> dict[str, int]:
    """A safetensors file whose tensor data is a hole: only the header is written, then the file
    is extended to its full size (sparse, so a 16 GB shard costs a few kB of disk).

    Returns each tensor's absolute data offset, for the few tensors a caller fills with `pwrite`.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dims in tensors:
        nbytes = _ST_ITEMSIZE[dtype] * int(np.prod(dims, dtype=np.int64))
        header[name] = {
            "dtype": dtype,
            "shape": list(dims),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    start = 8 + len(raw)
    return {name: start + header[name]["data_offsets"][0] for name, _ in tensors}


def write_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, tuple[str, Sequence[int], bytes]],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a safetensors file from raw little-endian bytes: name -> (dtype, shape, data).

    Needed for BF16, which numpy cannot represent. Layout matches the safetensors library:
    tensors ordered by descending item size then name, header padded with spaces to 8 bytes.
    """
    meta = {"format": "pt"} if metadata is None else dict(metadata)
    order = sorted(tensors, key=lambda n: (-_ST_ITEMSIZE[tensors[n][0]], n))
    header: dict[str, Any] = {"__metadata__": meta} if meta else {}
    offset = 0
    for name in order:
        dtype, shape, data = tensors[name]
        expected = int(np.prod(shape, dtype=np.int64)) * _ST_ITEMSIZE[dtype]
        if len(data) != expected:
            raise ValueError(f"{name}: {len(data)} bytes for {dtype}{list(shape)}, not {expected}")
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + expected],
        }
        offset += expected
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data must start 8-byte aligned
    file = Path(path)
    with file.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in order:
            f.write(tensors[name][2])
    return file


def to_bf16_bytes(array: np.ndarray) -> bytes:
    """Round float32 values to bfloat16 (nearest, ties to even) and return the raw bytes."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def bf16_bytes_to_float32(data: bytes, shape: Sequence[int]) -> np.ndarray:
    """Inverse of `to_bf16_bytes` (exact): widen bfloat16 bits to float32."""
    bits = np.frombuffer(data, dtype="<u2").astype("<u4") << 16
    return bits.view("<f4").reshape(tuple(shape))


def llama_tensor_shapes(
    vocab_size: int, hidden_size: int = 8, *, tied: bool = False, full_model: bool = True
) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of the tiny Llama, in module order.

    Matches `LlamaForCausalLM(config).state_dict()` for `build_model_config` (checked in tests);
    a tied model stores no `lm_head.weight`. Without `full_model` only the embeddings are listed.
    """
    d = llama_dims(hidden_size)
    h, kv = d["hidden_size"], d["num_key_value_heads"] * d["head_dim"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab_size, h)}
    if full_model:
        for i in range(d["num_hidden_layers"]):
            p = f"model.layers.{i}."
            shapes[p + "self_attn.q_proj.weight"] = (d["num_attention_heads"] * d["head_dim"], h)
            shapes[p + "self_attn.k_proj.weight"] = (kv, h)
            shapes[p + "self_attn.v_proj.weight"] = (kv, h)
            shapes[p + "self_attn.o_proj.weight"] = (h, d["num_attention_heads"] * d["head_dim"])
            shapes[p + "mlp.gate_proj.weight"] = (d["intermediate_size"], h)
            shapes[p + "mlp.up_proj.weight"] = (d["intermediate_size"], h)
            shapes[p + "mlp.down_proj.weight"] = (h, d["intermediate_size"])
            shapes[p + "input_layernorm.weight"] = (h,)
            shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes["model.norm.weight"] = (h,)
    if not tied:
        shapes["lm_head.weight"] = (vocab_size, h)
    return shapes


def _init_tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    if name.endswith("norm.weight"):
        return np.ones(shape, dtype=np.float32)  # RMSNorm weights start at one
    # One generator per (seed, tensor): row r of an embedding is the same for every vocab size,
    # so a fine-tune that appended tokens keeps the base rows bit-for-bit.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return rng.normal(0.0, 0.02, size=shape).astype(np.float32)


def build_weights(
    path: str | os.PathLike[str],
    *,
    vocab_size: int,
    hidden_size: int = 8,
    tied: bool = False,
    dtype: DType = "float32",
    shards: int = 1,
    seed: int = 0,
    zero_rows: Sequence[int] = (),
    full_model: bool = False,
    mean_rows: Sequence[int] = (),
    layout: Layout = "v5",
) -> Path:
    """Write `model.safetensors` (or N shards plus `model.safetensors.index.json`).

    Holds `model.embed_tokens.weight` and, unless tied, `lm_head.weight`; with `full_model` every
    tensor of the tiny Llama. Rows in `zero_rows` are exactly 0 (never-trained tokens); rows in
    `mean_rows` are the mean of the other rows (transformers' resize init, never trained).
    Returns the weights file, or the index file when sharded.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    shapes = llama_tensor_shapes(vocab_size, hidden_size, tied=tied, full_model=full_model)
    arrays = {name: _init_tensor(name, shape, seed) for name, shape in shapes.items()}
    special = sorted({*zero_rows, *mean_rows})
    if any(not 0 <= r < vocab_size for r in special):
        raise ValueError(f"row ids {special} out of range for vocab_size {vocab_size}")
    keep = np.setdiff1d(np.arange(vocab_size), special)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name in arrays:
            w = arrays[name]
            w[list(mean_rows)] = w[keep].mean(axis=0)
            w[list(zero_rows)] = 0.0

    names = list(shapes)
    if not 1 <= shards <= len(names):
        raise ValueError(f"shards must be between 1 and {len(names)} for these tensors")
    # Contiguous runs in module order, like transformers' shard splitting.
    groups = [list(g) for g in np.array_split(np.array(names, dtype=object), shards)]
    files = (
        ["model.safetensors"]
        if shards == 1
        else [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    )
    itemsize = _ITEMSIZE[dtype]
    for file, group in zip(files, groups, strict=True):
        _save_tensors(out / file, {n: arrays[n] for n in group}, dtype)
    if shards == 1:
        return out / files[0]

    total_params = sum(int(np.prod(s)) for s in shapes.values())
    metadata: dict[str, int] = {"total_size": total_params * itemsize}
    if layout == "v5":
        metadata["total_parameters"] = total_params  # added by transformers 5
    index = {
        "metadata": metadata,
        "weight_map": {n: f for f, g in zip(files, groups, strict=True) for n in g},
    }
    _dump_json(out / "model.safetensors.index.json", index)
    return out / "model.safetensors.index.json"


def _save_tensors(file: Path, arrays: Mapping[str, np.ndarray], dtype: DType) -> None:
    if dtype == "bfloat16":
        write_safetensors(file, {n: ("BF16", a.shape, to_bf16_bytes(a)) for n, a in arrays.items()})
        return
    from safetensors.numpy import save_file

    save_file({n: a.astype(dtype) for n, a in arrays.items()}, str(file), metadata={"format": "pt"})


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed JSON header of a safetensors file (no tensor data read)."""
    with Path(path).open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(n))
    return header


def read_tensor(path: str | os.PathLike[str], name: str) -> np.ndarray:
    """One tensor as float32 numpy, any of F32/F16/BF16, without torch."""
    header = read_safetensors_header(path)
    info = header[name]
    with Path(path).open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        start, end = info["data_offsets"]
        f.seek(8 + n + start)
        data = f.read(end - start)
    if info["dtype"] == "BF16":
        return bf16_bytes_to_float32(data, info["shape"])
    np_dtype = {"F32": "<f4", "F16": "<f2"}[info["dtype"]]
    return np.frombuffer(data, dtype=np_dtype).reshape(info["shape"]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Whole checkpoints
# ---------------------------------------------------------------------------------------------


def build_merged(
    path: str | os.PathLike[str],
    *,
    layout: Layout = "v5",
    chat_template: str | None = LLAMA3_TEMPLATE,
    tied: bool = False,
    shards: int = 1,
    dtype: DType = "float32",
    added_tokens: Sequence[str] = (),
    generation_eos: IdSpec = TOKEN_IDS["<|eot_id|>"],
    full_model: bool = False,
    zero_rows: Sequence[int] = (),
    mean_rows: Sequence[int] = (),
    config_eos: IdSpec = _UNSET,
    embedding_rows: int | None = None,
    seed: int = 0,
    hidden_size: int = 8,
    sampling: Mapping[str, Any] | None = None,
    **tokenizer_kw: Any,
) -> Path:
    """Write a complete merged checkpoint: tokenizer, config, generation config and weights.

    vocab_size is `len(tokenizer)` unless `embedding_rows` overrides it (a matrix smaller than
    the tokenizer, or padded). `generation_eos=None` writes no generation_config.json.
    `config_eos` defaults to the tokenizer's eos id. Other keywords go to `build_tokenizer`.
    """
    out = Path(path)
    build_tokenizer(
        out, chat_template=chat_template, layout=layout, added_tokens=added_tokens, **tokenizer_kw
    )
    vocab = vocab_for(added_tokens)
    vocab_size = len(vocab) if embedding_rows is None else embedding_rows
    bos_id = _id_of(tokenizer_kw.get("bos_token", SPECIALS_LLAMA3["bos_token"]), vocab)
    if config_eos is _UNSET:
        config_eos = _id_of(tokenizer_kw.get("eos_token", SPECIALS_LLAMA3["eos_token"]), vocab)
    build_model_config(
        out,
        vocab_size=vocab_size,
        tied=tied,
        eos_token_id=config_eos,
        bos_token_id=bos_id,
        hidden_size=hidden_size,
        dtype=dtype,
        layout=layout,
    )
    if generation_eos is not None:
        build_generation_config(
            out, eos_token_id=generation_eos, bos_token_id=bos_id, layout=layout, **(sampling or {})
        )
    build_weights(
        out,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        tied=tied,
        dtype=dtype,
        shards=shards,
        seed=seed,
        zero_rows=zero_rows,
        mean_rows=mean_rows,
        full_model=full_model,
        layout=layout,
    )
    return out


def build_adapter(
    path: str | os.PathLike[str],
    base_path: str | os.PathLike[str],
    *,
    r: int = 2,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    modules_to_save: Sequence[str] = (),
    trainable_token_indices: Sequence[int] | None = None,
    save_tokenizer: bool = True,
    seed: int = 0,
    init_lora_weights: bool = True,
    **tokenizer_kw: Any,
) -> Path:
    """Save a real PEFT LoRA adapter for `base_path` (a `full_model=True` merged checkpoint).

    With `save_tokenizer`, also writes a tokenizer into the adapter folder as trainers do
    (`tokenizer_kw` go to `build_tokenizer`). `init_lora_weights=False` gives a non-identity
    adapter (random B), standing in for a trained one.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM.from_pretrained(str(base_path))
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=list(target_modules),
        modules_to_save=list(modules_to_save) or None,
        trainable_token_indices=(
            None if trainable_token_indices is None else list(trainable_token_indices)
        ),
        init_lora_weights=init_lora_weights,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    out = Path(path)
    peft_model.save_pretrained(str(out))
    if save_tokenizer:
        build_tokenizer(out, **tokenizer_kw)
    return out


def build_trainer_root(
    path: str | os.PathLike[str],
    *,
    steps: Sequence[int] = (10, 20),
    final: bool = False,
    **merged_kw: Any,
) -> Path:
    """Write a Trainer output dir: `checkpoint-N/` merged checkpoints with `trainer_state.json`.

    Each checkpoint gets seed `seed + i` so their weights differ like real saves. With `final`,
    the last step's checkpoint is also written at the root (`trainer.save_model()`).
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(merged_kw.pop("seed", 0))
    for i, step in enumerate(steps):
        ckpt = build_merged(out / f"checkpoint-{step}", seed=seed + i, **merged_kw)
        state = {
            "best_global_step": None,
            "best_metric": None,
            "best_model_checkpoint": None,
            "epoch": step / max(steps),
            "eval_steps": 500,
            "global_step": step,
            "is_hyper_param_search": False,
            "is_local_process_zero": True,
            "is_world_process_zero": True,
            "log_history": [
                {"epoch": s / max(steps), "loss": round(2.0 / (j + 1), 4), "step": s}
                for j, s in enumerate(steps[: i + 1])
            ],
            "logging_steps": min(steps),
            "max_steps": max(steps),
            "num_input_tokens_seen": 0,
            "num_train_epochs": 1,
            "save_steps": min(steps),
            "total_flos": 0.0,
            "train_batch_size": 1,
            "trial_name": None,
            "trial_params": None,
        }
        _dump_json(ckpt / "trainer_state.json", state)
    if final and steps:
        build_merged(out, seed=seed + len(steps) - 1, **merged_kw)
    return out


# ---------------------------------------------------------------------------------------------
# Folder utilities
# ---------------------------------------------------------------------------------------------


def tree_digest(path: str | os.PathLike[str]) -> dict[str, str]:
    """Relative POSIX path -> sha256 hex of every file under `path`.

    A symlink to a file is hashed by what a reader sees through it (its target's bytes). A
    symlink to a directory (or a dangling one) is recorded as `"-> target"` and not followed, so
    the digest never wanders outside `path`.
    """
    root = Path(path)
    digest: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                digest[(here / name).relative_to(root).as_posix()] = "-> " + os.readlink(
                    here / name
                )
        for name in filenames:
            file = here / name
            key = file.relative_to(root).as_posix()
            if file.is_symlink() and not file.exists():
                digest[key] = "-> " + os.readlink(file)  # dangling: nothing to read
            else:
                digest[key] = hashlib.sha256(file.read_bytes()).hexdigest()
    return dict(sorted(digest.items()))


def copy_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy a checkpoint folder (`shutil.copytree`, symlinks resolved); return `dst`."""
    return Path(shutil.copytree(src, dst))
