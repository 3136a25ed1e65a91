"""What config.json and the safetensors headers say about a merged model, read without loading it.

Shared by the config rules (FTX40x) and the runtime models: the dtype the tensors are stored in,
whether any tensor is quantised, the weight keys and their wrapper prefixes, the embedding and
output-head tensors, and the `auto_map` code files a `trust_remote_code` load imports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..io.checkpoint import Checkpoint, Kind

__all__ = [
    "CONFIG",
    "DTYPE_NAMES",
    "GENERIC_FAST_TOKENIZER",
    "TRANSFORMERS5_ONLY_TOKENIZERS",
    "WRAPPER_PREFIXES",
    "ArchitectureDrift",
    "HeadPair",
    "architecture_drift",
    "auto_map_files",
    "config_dtypes",
    "head_pair",
    "human_bytes",
    "quantized_tensors",
    "sampled_rows_differ",
    "stored_dtype",
    "weight_bytes",
    "weight_keys",
]

CONFIG = "config.json"

# The class transformers 5 writes for any tokenizer backed by tokenizer.json; transformers 4
# has no class of that name ("Tokenizer class TokenizersBackend does not exist").
TRANSFORMERS5_ONLY_TOKENIZERS = frozenset({"TokenizersBackend"})
# The generic class every transformers version loads tokenizer.json with.
GENERIC_FAST_TOKENIZER = "PreTrainedTokenizerFast"

# safetensors dtype code -> the name transformers writes in `dtype` / `torch_dtype`.
DTYPE_NAMES: Mapping[str, str] = {
    "F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64",
}  # fmt: skip
_FLOATS = frozenset(DTYPE_NAMES)

# Tensor name endings only quantised checkpoints store: bitsandbytes 4-bit (absmax, quant_map,
# quant_state), bitsandbytes 8-bit (SCB), GPTQ / AWQ (qweight, qzeros, scales, g_idx), FP8
# (weight_scale, weight_scale_inv, input_scale), compressed-tensors (weight_packed).
_QUANT_SUFFIXES = (
    ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".SCB", ".weight_format",
    ".qweight", ".qzeros", ".g_idx", ".weight_scale", ".weight_scale_inv", ".input_scale",
    ".weight_packed", ".weight_zero_point",
)  # fmt: skip
_QUANT_MARKERS = (".quant_state.",)
_QUANT_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F8_E8M0"})

# Prefixes wrappers leave on every key: torch.compile (`_orig_mod.`), DataParallel / DDP
# (`module.`), and a PEFT model saved whole with `save_pretrained` of the wrapper's state dict.
WRAPPER_PREFIXES = ("_orig_mod.", "module.", "base_model.model.")

_EMBED_SUFFIXES = (
    "embed_tokens.weight", "tok_embeddings.weight", "wte.weight", "word_embeddings.weight",
)  # fmt: skip
_HEAD_SUFFIXES = ("lm_head.weight", "embed_out.weight")


def weight_keys(ckpt: Checkpoint) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """Tensor name -> (file, dtype, shape) for every tensor of a merged model's safetensors.

    Empty when the weights cannot be read (an LFS pointer, a missing shard): FTX90x reports
    those, and a base without readable weights is compared as a base without weights.
    """
    if ckpt.kind is not Kind.MERGED or ckpt.weights_problem() is not None:
        return {}
    found: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for rel, file in ckpt.weight_files().items():
        for name, info in file.tensors.items():
            found[name] = (rel, info.dtype, info.shape)
    return found


def weight_bytes(ckpt: Checkpoint) -> Counter[str]:
    """Bytes stored per safetensors dtype code (`{"BF16": 2_000_000, ...}`)."""
    total: Counter[str] = Counter()
    if ckpt.kind is not Kind.MERGED or ckpt.weights_problem() is not None:
        return total
    for file in ckpt.weight_files().values():
        for info in file.tensors.values():
            total[info.dtype] += info.end - info.start
    return total


def stored_dtype(ckpt: Checkpoint) -> str | None:
    """The floating dtype holding most of the weight bytes, as transformers names it.

    `None` when the folder stores no floating-point tensors (or no weights at all).
    """
    floats = {dtype: n for dtype, n in weight_bytes(ckpt).items() if dtype in _FLOATS}
    if not floats:
        return None
    return DTYPE_NAMES[max(floats, key=lambda d: (floats[d], d))]


def config_dtypes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The dtype keys config.json declares (`dtype` for transformers 5, `torch_dtype` for 4)."""
    return {key: config[key] for key in ("dtype", "torch_dtype") if key in config}


def quantized_tensors(ckpt: Checkpoint, *, limit: int = 3) -> list[str]:
    """Up to `limit` tensor names that only a quantised checkpoint stores."""
    found: list[str] = []
    for name, (_, dtype, _shape) in sorted(weight_keys(ckpt).items()):
        quantised = (
            dtype in _QUANT_DTYPES
            or name.endswith(_QUANT_SUFFIXES)
            or any(marker in name for marker in _QUANT_MARKERS)
            # A 2-D integer matrix where a float weight belongs (bitsandbytes 8-bit, packed ints)
            or (dtype in ("I8", "U8", "I32") and name.endswith(".weight"))
        )
        if quantised:
            found.append(name)
            if len(found) >= limit:
                break
    return found


def human_bytes(n: int) -> str:
    """`1.5 GB`, `320 MB`, `12 KB`, `7 bytes` (decimal units, as the Hub shows sizes)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class HeadPair:
    """The input embedding and the stored output head of a merged model.

    Args:
        embed (`str`): the embedding tensor's name.
        head (`str`, *optional*): the output head's name, `None` when none is stored.
        embed_file (`str`): the file holding the embedding.
        head_file (`str`, *optional*): the file holding the head.
    """

    embed: str
    head: str | None
    embed_file: str
    head_file: str | None


def head_pair(ckpt: Checkpoint) -> HeadPair | None:
    """The embedding and (if stored) head tensors, or `None` without an embedding."""
    keys = weight_keys(ckpt)
    embeds = sorted(n for n in keys if n.endswith(_EMBED_SUFFIXES))
    if not embeds:
        return None
    heads = sorted(n for n in keys if n.endswith(_HEAD_SUFFIXES) or n == "output.weight")
    embed = min(embeds, key=len)
    head = min(heads, key=len) if heads else None
    return HeadPair(embed, head, keys[embed][0], keys[head][0] if head else None)


def sampled_rows_differ(ckpt: Checkpoint, pair: HeadPair, *, samples: int = 64) -> int | None:
    """The first of up to `samples` evenly spaced rows where head and embedding differ.

    Reads only those rows (a few KB), so a 150k-token vocabulary costs what a 16-token one does.
    `None` when every sampled row is byte-identical, or the shapes differ (then: row 0).
    """
    if pair.head is None or pair.head_file is None:
        return None
    files = ckpt.weight_files()
    embed_file, head_file = files[pair.embed_file], files[pair.head_file]
    embed, head = embed_file.info(pair.embed), head_file.info(pair.head)
    if embed.shape != head.shape or embed.dtype != head.dtype:
        return 0
    rows = embed.shape[0] if embed.shape else 0
    step = max(1, rows // samples)
    for row in range(0, rows, step):
        if embed_file.read_raw_rows(pair.embed, [row]) != head_file.read_raw_rows(pair.head, [row]):
            return row
    return None


def auto_map_files(*configs: Mapping[str, Any]) -> list[str]:
    """The `.py` files `auto_map` entries of these configs name, in order, without duplicates.

    `"modeling_x.XForCausalLM"` names `modeling_x.py`; a tokenizer's `[slow, fast]` pair names
    up to two; `"org/repo--modeling_x.X"` lives in another repository and is not the folder's.
    """
    names: list[str] = []
    for config in configs:
        auto_map = config.get("auto_map")
        if not isinstance(auto_map, Mapping):
            continue
        for value in auto_map.values():
            for ref in _refs(value):
                if "--" in ref or "." not in ref:
                    continue
                module = ref.rsplit(".", 1)[0]
                rel = module.replace(".", "/") + ".py"
                if rel not in names:
                    names.append(rel)
    return names


def _refs(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        yield from (v for v in value if isinstance(v, str))


_HEADED = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass(frozen=True)
class ArchitectureDrift:
    """config.json names another class than the base while the weights are the base class's.

    Args:
        found (`list[str]`): the fine-tune's `architectures` (empty when missing).
        expected (`list[str]`): the base's.
        why (`str`): the evidence that the weights are the base class's, for messages.
    """

    found: list[str]
    expected: list[str]
    why: str


def architecture_drift(target: Checkpoint, base: Checkpoint) -> ArchitectureDrift | None:
    """The drift of `architectures` from the base's, when the weight keys show it is only a name.

    Same model_type, and either the very tensor names of the base's weights or, without those,
    an output head or `model.`-prefixed keys next to a base class with a head.
    """
    base_config = base.json(CONFIG)
    if target.kind is not Kind.MERGED or base_config is None:
        return None
    expected = _names(base_config.get("architectures"))
    found = _names(target.config.get("architectures"))
    if not expected or found == expected:
        return None
    if target.config.get("model_type") != base_config.get("model_type"):
        return None  # another model family altogether: not a drifted name
    keys = set(weight_keys(target))
    if not keys:
        return None
    base_keys = set(weight_keys(base)) if base.kind is Kind.MERGED else set()
    if base_keys:
        if keys != base_keys:
            return None
        return ArchitectureDrift(found, expected, "the stored weight keys are the base's")
    headed = any(k.endswith("lm_head.weight") for k in keys) or all(
        k.startswith("model.") for k in keys
    )
    if not (headed and expected[0].endswith(_HEADED)):
        return None
    why = "the stored weights have the base class's layout (output head, model. keys)"
    return ArchitectureDrift(found, expected, why)
