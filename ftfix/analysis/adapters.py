"""What the adapter rules share: a PEFT LoRA adapter's tensors by module, and the base weights.

Everything here reads safetensors headers (the adapter's; the base's single file or shards) and,
on request, single tensors of the adapter. Never torch, never the whole base.

Names: peft saves `base_model.model.<module>.lora_A.weight`; transformers' own PEFT integration
saves the same keys without `base_model.model.`. A *module* here is the name without that prefix
(`model.layers.0.self_attn.q_proj`), the name the base stores its weight under (`<module>.weight`).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidCheckpointError
from ..io.checkpoint import Checkpoint, Kind
from ..io.safetensors import DTYPE_SIZES, SafetensorsFile, TensorInfo, rows_to_float32

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "MAX_RENAME_BYTES",
    "Adapter",
    "AdapterTensor",
    "BaseWeights",
    "LoraModule",
    "Substitution",
    "all_zero",
    "base_shape_problem",
    "base_weights",
    "expected_rank",
    "find_substitutions",
    "layer_indices",
    "layer_of",
    "open_adapter",
    "renamed_safetensors",
    "shape_problem",
    "zero_save_hint",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
# The key rename is a whole-file FileEdit (backed up whole): fine for adapters (MB), not for a
# multi-GB adapter that saved full embeddings; above this the fix is described, not planned.
MAX_RENAME_BYTES = 512 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024

# An adapter name may remain in the keys (`lora_A.default.weight`, written from a state dict):
# peft loads those too.
_LINEAR = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B)(?:\.[^.]+)?\.weight$")
_EMBEDDING = re.compile(
    r"^(?P<module>.+)\.(?P<part>lora_embedding_A|lora_embedding_B)(?:\.[^.]+)?$"
)
_MAGNITUDE = re.compile(r"^(?P<module>.+)\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$")
_LORA_BIAS = re.compile(r"^(?P<module>.+)\.lora_B(?:\.[^.]+)?\.bias$")
_TOKENS = re.compile(r"^(?P<module>.+)\.token_adapter\.trainable_tokens_delta$")
_OTHER = re.compile(r"^(?P<module>.+)\.(?P<leaf>weight|bias)$")
_INTEGER_DTYPES = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"}

# How multimodal checkpoints saved before transformers 4.52 name what transformers now calls
# `model.language_model.*` (its conversion mapping renames them at load time): a base on disk in
# the old layout still answers to the new names.
_LEGACY_LAYOUT = (
    (re.compile(r"^language_model\.model\."), "model.language_model."),
    (re.compile(r"^language_model\.lm_head\."), "lm_head."),
    (re.compile(r"^(vision_tower|multi_modal_projector)\."), r"model.\1."),
)


@dataclass(frozen=True)
class AdapterTensor:
    """One tensor of the adapter file.

    Args:
        key (`str`): the tensor's name in the file.
        module (`str`): the base module it belongs to (peft's prefix removed).
        part (`str`): `lora_A`, `lora_B`, `lora_embedding_A`, `lora_embedding_B`, `magnitude`,
            `lora_bias`, `tokens` (trainable-token deltas) or `full` (a whole saved module,
            `modules_to_save`).
        info (`TensorInfo`): dtype, shape and offsets.
        suffix (`str`): what follows the module in the key (`.lora_A.weight`).
    """

    key: str
    module: str
    part: str
    info: TensorInfo
    suffix: str = ""  # what follows the module in the key (`.lora_A.weight`)


@dataclass
class LoraModule:
    """The LoRA tensors of one base module."""

    module: str
    a: AdapterTensor | None = None
    b: AdapterTensor | None = None
    embedding: bool = False


@dataclass
class Adapter:
    """A PEFT adapter folder: its config and the tensors of `adapter_model.safetensors`.

    Args:
        config (`dict`): `adapter_config.json`.
        file (`SafetensorsFile`): the weights (from the staged bytes when a fix rewrote them).
        size (`int`): the weight file's size in bytes.
        prefix (`str`): `base_model.model.` when peft saved the keys with it, else `""`.
        tensors (`list[AdapterTensor]`): every tensor, in file order.
    """

    config: dict[str, Any]
    file: SafetensorsFile
    size: int
    prefix: str
    tensors: list[AdapterTensor] = field(default_factory=list)

    @property
    def is_lora(self) -> bool:
        """Whether the adapter is LoRA (other PEFT methods are not judged)."""
        return str(self.config.get("peft_type", "LORA")).upper() == "LORA"

    def lora_modules(self) -> dict[str, LoraModule]:
        """LoRA A/B pairs by module, in file order."""
        found: dict[str, LoraModule] = {}
        for tensor in self.tensors:
            if tensor.part not in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"):
                continue
            entry = found.setdefault(tensor.module, LoraModule(tensor.module))
            entry.embedding = tensor.part.startswith("lora_embedding")
            if tensor.part.endswith("A"):
                entry.a = tensor
            else:
                entry.b = tensor
        return found

    def modules(self) -> list[str]:
        """Every base module the adapter's tensors attach to, in file order, once each."""
        return list(dict.fromkeys(t.module for t in self.tensors))

    def extra_trainables(self) -> list[AdapterTensor]:
        """Tensors that change the model without LoRA's B x A (saved modules, DoRA, biases)."""
        return [t for t in self.tensors if t.part in ("full", "tokens", "magnitude", "lora_bias")]


def _classify(rest: str) -> tuple[str, str]:
    for pattern, part in ((_LINEAR, None), (_EMBEDDING, None)):
        match = pattern.match(rest)
        if match:
            return match["module"], part or match["part"]
    for pattern, part in (
        (_MAGNITUDE, "magnitude"),
        (_LORA_BIAS, "lora_bias"),
        (_TOKENS, "tokens"),
    ):
        match = pattern.match(rest)
        if match:
            return match["module"], part
    match = _OTHER.match(rest)
    if match:
        return match["module"], "full"
    return rest, "full"


def open_adapter(ckpt: Checkpoint) -> Adapter | None:
    """The adapter of `ckpt`, or `None` when it is not a PEFT adapter with readable safetensors.

    A staged rewrite of the weights (a key rename planned by an earlier fix) is read from memory;
    otherwise only the file's header is read.
    """
    if ckpt.kind is not Kind.ADAPTER or not ckpt.exists(ADAPTER_WEIGHTS):
        return None
    try:
        config = ckpt.json(ADAPTER_CONFIG) or {}
        path = ckpt.root / ADAPTER_WEIGHTS
        if ckpt.is_staged(ADAPTER_WEIGHTS):
            data = ckpt.read_bytes(ADAPTER_WEIGHTS) or b""
            file, size = SafetensorsFile.from_bytes(path, data), len(data)
        else:
            source = ckpt.remote.get(ADAPTER_WEIGHTS)  # on the Hub: read by range requests
            file = SafetensorsFile.open(path, source=source)
            size = source.size if source is not None else path.stat().st_size
    except (InvalidCheckpointError, OSError):
        return None  # an unreadable file is reported once, by the checkpoint-integrity rules
    names = list(file.tensors)
    prefix = PEFT_PREFIX if names and all(n.startswith(PEFT_PREFIX) for n in names) else ""
    adapter = Adapter(config, file, size, prefix)
    for name in sorted(names, key=lambda n: file.tensors[n].start):
        rest = name[len(prefix) :] if name.startswith(prefix) else name
        module, part = _classify(rest)
        suffix = rest[len(module) :]  # every pattern anchors the module at the start
        adapter.tensors.append(AdapterTensor(name, module, part, file.tensors[name], suffix))
    return adapter


def expected_rank(config: Mapping[str, Any], module: str) -> int | None:
    """The rank peft gives `module`: its `rank_pattern` entry, else `r` (`None` if unknown)."""
    pattern = config.get("rank_pattern")
    if isinstance(pattern, dict):
        for key, value in pattern.items():
            try:
                # peft's matching: the pattern is the whole name or a dotted suffix of it.
                if re.match(rf"(.*\.)?({key})$", module) and isinstance(value, int):
                    return value
            except re.error:
                continue
    r = config.get("r")
    return r if isinstance(r, int) and not isinstance(r, bool) else None


def zero_save_hint(ckpt: Checkpoint) -> str:
    """How to get real weights back from a sharded (ZeRO-3 / FSDP) save of `ckpt`."""
    step = next((d for d in ckpt.subfolders() if re.fullmatch(r"global_step\d+", d)), None)
    recover = ""
    if step is not None and ckpt.exists("zero_to_fp32.py"):
        recover = (
            f"; DeepSpeed's own checkpoint is still here ({step}/): "
            "`python zero_to_fp32.py . recovered/ --safe_serialization` rebuilds the full "
            "weights from it"
        )
    return (
        "re-save with the parameters gathered: DeepSpeed ZeRO-3 needs "
        "`stage3_gather_16bit_weights_on_model_save: true` (accelerate: `zero3_save_16bit_model`) "
        "and a save through `trainer.save_model()`; FSDP needs `fsdp_state_dict_type: "
        f"FULL_STATE_DICT`{recover}"
    )


# ---------------------------------------------------------------------------------- the base
@dataclass(frozen=True)
class BaseWeights:
    """The base model's weight names, shapes and dtypes, from its safetensors headers.

    `shapes` holds each name as stored and as transformers names it after loading (multimodal
    checkpoints in the pre-4.52 layout), and `lm_head.weight` for a tied model.
    """

    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, str]
    runtime: frozenset[str] = frozenset()  # the names transformers gives the weights today

    def module_names(self) -> list[str]:
        """Names of the modules that hold a `weight` (or a packed `qweight`)."""
        names = []
        for name in self.shapes:
            for leaf in (".weight", ".qweight"):
                if name.endswith(leaf):
                    names.append(name[: -len(leaf)])
        return list(dict.fromkeys(names))

    def has(self, module: str) -> bool:
        """Whether the base has `module`: its weight, bias, or GPTQ/AWQ packed `qweight`."""
        return any(f"{module}.{leaf}" in self.shapes for leaf in ("weight", "bias", "qweight"))

    def weight_shape(self, module: str) -> tuple[int, ...] | None:
        """The shape of `module.weight`, or `None` when absent or stored quantized (packed)."""
        name = f"{module}.weight"
        if name not in self.shapes or self.dtypes.get(name) in _INTEGER_DTYPES:
            return None
        return self.shapes[name]


def _canonical(name: str) -> str:
    for pattern, replacement in _LEGACY_LAYOUT:
        name = pattern.sub(replacement, name, count=1)
    return name


def base_weights(ckpt: Checkpoint | None) -> BaseWeights | None:
    """The weights of a merged base, or `None` when it has none readable (headers only)."""
    if ckpt is None or ckpt.kind is not Kind.MERGED:
        return None
    try:
        files = ckpt.weight_files()
    except (InvalidCheckpointError, OSError):
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    runtime: set[str] = set()
    for file in files.values():
        for name, info in file.tensors.items():
            runtime.add(_canonical(name))
            for alias in (name, _canonical(name)):
                shapes.setdefault(alias, info.shape)
                dtypes.setdefault(alias, info.dtype)
    if not shapes:
        return None
    if "lm_head.weight" not in shapes:  # tied: the output layer is the embedding
        embed = next((n for n in shapes if n.endswith("embed_tokens.weight")), None)
        if embed is not None:
            shapes["lm_head.weight"] = shapes[embed]
            dtypes["lm_head.weight"] = dtypes[embed]
            runtime.add("lm_head.weight")
    return BaseWeights(shapes, dtypes, frozenset(runtime))


def shape_problem(
    config: Mapping[str, Any], lora: LoraModule, base: BaseWeights | None
) -> str | None:
    """What is wrong with one module's LoRA shapes, or `None` (A: [r, in], B: [out, r])."""
    a, b = lora.a, lora.b
    if a is None or b is None:
        has, lacks = ("lora_B", "lora_A") if a is None else ("lora_A", "lora_B")
        return f"has {has} but no {lacks}"
    for t in (a, b):
        if 0 in t.info.shape or not t.info.shape:
            return f"{t.part} has shape {list(t.info.shape)} (no elements)"
    if len(a.info.shape) < 2 or len(b.info.shape) < 2:
        flat = a if len(a.info.shape) < 2 else b
        return f"{flat.part} is {len(flat.info.shape)}-D {list(flat.info.shape)}, not a matrix"
    rank_a = a.info.shape[0]
    rank_b = b.info.shape[1]
    if rank_a != rank_b:
        return (
            f"{a.part} {list(a.info.shape)} and {b.part} {list(b.info.shape)} disagree on the "
            f"rank ({rank_a} vs {rank_b})"
        )
    rank = expected_rank(config, lora.module)
    if rank is not None and rank_a != rank and not config.get("use_qalora"):
        source = "rank_pattern" if rank != config.get("r") else "r"
        return f"rank is {rank_a} but adapter_config.json {source} says {rank}"
    return None if base is None else base_shape_problem(config, lora, base, lora.module)


def base_shape_problem(
    config: Mapping[str, Any], lora: LoraModule, base: BaseWeights, module: str
) -> str | None:
    """How `lora`'s A/B shapes disagree with the base's `module.weight`, or `None`.

    Unknown (absent, packed-quantized or non-matrix weights) counts as no disagreement.
    """
    a, b = lora.a, lora.b
    shape = base.weight_shape(module)
    if a is None or b is None or shape is None or len(shape) != 2:
        return None
    if len(a.info.shape) != 2 or len(b.info.shape) != 2:
        return None
    if lora.embedding:
        want_in, want_out = shape  # Embedding weight [num, dim]; A [r, num], B [dim, r]
    elif config.get("fan_in_fan_out"):
        want_in, want_out = shape  # Conv1D stores [in, out]
    else:
        want_out, want_in = shape
    got_in, got_out = a.info.shape[1], b.info.shape[0]
    if (got_in, got_out) != (want_in, want_out):
        return (
            f"maps {got_in} -> {got_out} features but the base's {module}.weight "
            f"{list(shape)} maps {want_in} -> {want_out}"
        )
    return None


# ------------------------------------------------------------------------- prefix substitution
@dataclass(frozen=True)
class Substitution:
    """Replace the leading `old` of a module name by `new` (either may be empty)."""

    old: str
    new: str

    def apply(self, name: str) -> str:
        """`name` with its prefix replaced (`name` must start with `old`)."""
        return self.new + name[len(self.old) :]

    def describe(self) -> str:
        """`model.layers.` -> `model.language_model.layers.`."""
        return f"`{self.old or '(nothing)'}` -> `{self.new or '(nothing)'}`"


def _common_tail(a: list[str], b: list[str]) -> int:
    count = 0
    while count < min(len(a), len(b)) and a[-1 - count] == b[-1 - count]:
        count += 1
    return count


def find_substitutions(
    unresolved: Sequence[str],
    base: BaseWeights,
    fits: Mapping[str, Callable[[str], bool]] | None = None,
    *,
    taken: Iterable[str] = (),
) -> list[Substitution]:
    """Prefix substitutions that make every `unresolved` module a module of `base`.

    Candidates come from aligning the first unresolved module with each base module on their
    longest common dotted tail (at least two parts, e.g. `self_attn.q_proj`); a candidate is kept
    when it resolves all of them (and `fits[module](new_name)`, when given, accepts the shapes)
    onto modules the adapter does not already have (`taken`).
    The survivors are reduced to those giving distinct renames, shortest prefix first; when
    the base is stored in a legacy layout and exactly one survivor gives the names transformers
    uses today, only that one is returned (peft loads both; today's names load everywhere).
    """
    if not unresolved:
        return []
    first = unresolved[0].split(".")
    candidates: set[Substitution] = set()
    for module in base.module_names():
        parts = module.split(".")
        tail = _common_tail(first, parts)
        if tail < 2 or (tail == len(first) and tail == len(parts)):
            continue
        old = ".".join(first[: len(first) - tail])
        new = ".".join(parts[: len(parts) - tail])
        candidates.add(Substitution(old + "." if old else "", new + "." if new else ""))
    kept: dict[tuple[str, ...], Substitution] = {}
    occupied = set(taken)
    for sub in sorted(candidates, key=lambda s: (len(s.old), len(s.new), s.old, s.new)):
        renamed = []
        for module in unresolved:
            if not module.startswith(sub.old):
                break
            new_name = sub.apply(module)
            check = fits.get(module) if fits else None
            if new_name in occupied or not base.has(new_name):
                break
            if check is not None and not check(new_name):
                break
            renamed.append(new_name)
        else:
            kept.setdefault(tuple(renamed), sub)
    current = [
        sub
        for names, sub in kept.items()
        if all(f"{name}.weight" in base.runtime or f"{name}.bias" in base.runtime for name in names)
    ]
    return current if len(kept) > 1 and len(current) == 1 else list(kept.values())


def renamed_safetensors(data: bytes, renames: Mapping[str, str]) -> bytes:
    """The bytes of safetensors file `data` with tensors renamed; the tensor data is unchanged.

    The header keeps its entry order and `__metadata__`, and is padded with spaces to a multiple
    of 8 bytes as safetensors writes it; offsets are relative to the data, so they stay valid.
    """
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length].decode("utf-8"))
    renamed = {renames.get(key, key): value for key, value in header.items()}
    if len(renamed) != len(header):
        raise ValueError("renaming would merge two tensors")
    text = json.dumps(renamed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


# ---------------------------------------------------------------------------------- reading
def all_zero(file: SafetensorsFile, info: TensorInfo) -> bool:
    """Whether every value of a float tensor is zero (+0 or -0), reading it in 4 MiB chunks."""
    size = info.end - info.start
    step = _CHUNK - _CHUNK % DTYPE_SIZES.get(info.dtype, 1)
    for start in range(0, size, step):
        chunk = file.read_bytes(info.name, start, step)
        try:
            values = rows_to_float32(chunk, info.dtype, (-1,))
        except ValueError:  # not a float dtype: compare raw bytes
            if chunk.strip(b"\0"):
                return False
            continue
        if np.any(values != 0):
            return False
    return True


def layer_of(module: str) -> tuple[str, int, str] | None:
    """`(stack, index, leaf)` of a module inside a numbered layer stack (the first number).

    `model.layers.3.mlp.experts.7.up_proj` -> `("model.layers", 3, "mlp.experts.7.up_proj")`.
    """
    parts = module.split(".")
    for i, part in enumerate(parts[1:-1], start=1):
        if part.isdigit():
            return ".".join(parts[:i]), int(part), ".".join(parts[i + 1 :])
    return None


def layer_indices(names: Iterable[str]) -> dict[str, set[int]]:
    """Layer indices seen per stack among module names."""
    found: dict[str, set[int]] = {}
    for name in names:
        where = layer_of(name)
        if where is not None:
            found.setdefault(where[0], set()).add(where[1])
    return found
