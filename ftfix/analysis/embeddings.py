"""Locate embedding and output-head rows in any checkpoint and judge which were never trained.

Nothing here loads a model or imports torch: tensors are found from safetensors headers and only
the rows needed are read (the rows of the tokens in scope, and a bounded random sample of
ordinary rows for statistics). The input embedding and the output head are judged separately.

Sources of rows:
- merged checkpoints: one file or shards, tied or untied output head, any float dtype, the common
  tensor names of many architectures, padded vocabularies;
- PEFT adapters on top of a merged base: full copies of the embedding or head (`modules_to_save`,
  `save_embedding_layers`), `trainable_token_indices` rows (peft writes them over the base
  rows), and LoRA on the embedding or head (the low-rank delta is added to the base rows).
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

import numpy as np

from ..errors import InvalidCheckpointError
from ..findings import TensorRowsEdit, sha256_hex
from ..io.checkpoint import Checkpoint, Kind, token_text
from ..io.safetensors import SafetensorsFile, rows_from_float32, rows_to_float32
from ..io.tokenizer import TokenizerView

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "INITS",
    "MAX_LISTED",
    "AdapterRows",
    "EmbeddingAnalysis",
    "Evidence",
    "Layout",
    "RowHome",
    "RowSource",
    "RowStats",
    "SideVerdict",
    "StoredRows",
    "TokenInfo",
    "TokenVerdict",
    "analyse",
    "config_value",
    "head_row_verdict",
    "header_sha256",
    "init_option",
    "locate",
    "piece_ids",
    "row_stats",
    "sample_ids",
    "stored_row_evidence",
    "token_scope",
    "tokenizer_for",
    "unchanged_from_base",
    "weights_view",
]

logger = logging.getLogger(__name__)

FloatRows = np.ndarray[Any, Any]
Side = Literal["input", "output"]
State = Literal["untrained", "initialized"]

INITS = ("mean", "subtokens")

# Tensor names of the input embedding and the output head, most common first. A name not listed
# is still found by its suffix (e.g. a multimodal `model.language_model.embed_tokens.weight`).
INPUT_NAMES = (
    "model.embed_tokens.weight",
    "model.language_model.embed_tokens.weight",
    "language_model.model.embed_tokens.weight",
    "model.text_model.embed_tokens.weight",
    "transformer.wte.weight",
    "model.tok_embeddings.weight",
    "tok_embeddings.weight",
    "gpt_neox.embed_in.weight",
    "transformer.word_embeddings.weight",
    "transformer.embedding.word_embeddings.weight",
    "model.decoder.embed_tokens.weight",
    "backbone.embeddings.weight",
    "embed_tokens.weight",
)
INPUT_SUFFIXES = (
    ".embed_tokens.weight",
    ".wte.weight",
    ".tok_embeddings.weight",
    ".embed_in.weight",
    ".word_embeddings.weight",
)
OUTPUT_NAMES = (
    "lm_head.weight",
    "model.lm_head.weight",
    "language_model.lm_head.weight",
    "embed_out.weight",
    "output.weight",
    "transformer.output_layer.weight",
)
OUTPUT_SUFFIXES = (".lm_head.weight", ".embed_out.weight", ".output_layer.weight")
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# Suffix matches inside these towers are not the language model's vocabulary.
_OTHER_TOWERS = re.compile(r"(vision|visual|image|audio|speech|mtp)", re.I)

# Statistics: at most this many ordinary rows, and at most this many floats held at once.
SAMPLE_ROWS = 2048
MIN_SAMPLE_ROWS = 256
SAMPLE_FLOATS = 4 * 1024 * 1024
SAMPLE_SEED = 20240601
SAMPLE_BLOCK = 16
# A row is "tiny" below the sample's 1% norm quantile AND below a quarter of its median norm
# (the second bound keeps a healthy row that happens to sit in the 1% tail from being reported).
TINY_QUANTILE = 0.01
TINY_FRACTION = 0.25
# A row is "at the mean" within three standard errors of the sampled mean, at most this fraction
# of the median distance of ordinary rows from it, and nearer the mean than the origin (else it
# is a near-zero row, judged as tiny: when the mean itself is near zero they cannot be told apart).
MEAN_FRACTION = 0.2
# Rows closer than this fraction of the median distance are the same row (duplicates, or a row
# equal to the mean of its pieces, or equal to the base's row).
SAME_FRACTION = 0.02
# Candidate tokens listed individually before the rest are summarised.
MAX_LISTED = 16

_ERROR_ROLES = ("added", "template", "end-of-turn", "bos", "eos", "pad")
_ROLE_TEXT = {
    "added": "added by the fine-tune",
    "template": "emitted by the chat template",
    "end-of-turn": "ends assistant turns",
    "bos": "bos",
    "eos": "eos",
    "pad": "pad",
    "unk": "unk",
    "stop": "extra stop id",
    "special": "special",
}


# ------------------------------------------------------------------------------ where rows live
@dataclass(frozen=True)
class RowHome:
    """Where the bytes of one effective row are stored in the fine-tuned checkpoint.

    Args:
        path (`str`): safetensors file relative to the checkpoint.
        tensor (`str`): tensor name in that file.
        row (`int`): row index inside that tensor.
    """

    path: str
    tensor: str
    row: int


class RowSource:
    """The effective rows of one matrix (input embedding or output head), read as float32.

    Args:
        side (`str`): `"input"` or `"output"`.
        name (`str`): the tensor name as transformers knows it (e.g. `lm_head.weight`).
        rows (`int`): number of rows.
        hidden (`int`): row length.
        dtype (`str`): safetensors dtype of the stored rows.
    """

    def __init__(self, side: Side, name: str, rows: int, hidden: int, dtype: str):
        self.side = side
        self.name = name
        self.rows = rows
        self.hidden = hidden
        self.dtype = dtype

    def read(self, ids: Sequence[int]) -> FloatRows:
        """Rows `ids` as a float32 array of shape `(len(ids), hidden)`."""
        raise NotImplementedError

    def homes(self, row: int) -> list[RowHome]:
        """Where to patch row `row` in the fine-tune; `[]` when it is not stored there."""
        raise NotImplementedError

    def describe(self) -> str:
        """`name [rows x hidden] dtype` for messages."""
        return f"{self.name} [{self.rows} x {self.hidden}] {self.dtype}"


class StoredRows(RowSource):
    """Rows of a 2-D tensor stored in one safetensors file (merged checkpoint or adapter copy).

    Args:
        file (`SafetensorsFile`): the file.
        rel (`str`): its path relative to the checkpoint that owns it.
        tensor (`str`): the tensor name in the file.
        owned (`bool`): whether the fine-tuned checkpoint owns the file (so it may be patched).
        aliases (`list[tuple[str, SafetensorsFile, str]]`): further copies patched alongside (a
            tied head that is stored too), as (rel, file, tensor).
    """

    def __init__(
        self,
        side: Side,
        name: str,
        file: SafetensorsFile,
        rel: str,
        tensor: str,
        *,
        owned: bool,
        aliases: Sequence[tuple[str, SafetensorsFile, str]] = (),
    ):
        info = file.info(tensor)
        hidden = int(np.prod(info.shape[1:], dtype=np.int64)) if len(info.shape) > 1 else 1
        super().__init__(side, name, info.shape[0] if info.shape else 0, hidden, info.dtype)
        self.file, self.rel, self.tensor, self.owned = file, rel, tensor, owned
        self.aliases = list(aliases)

    def read(self, ids: Sequence[int]) -> FloatRows:
        """Rows `ids`, reading only their bytes (consecutive rows with one call)."""
        info = self.file.info(self.tensor)
        order = sorted(set(ids))
        runs: list[tuple[int, int]] = []  # (first row, count)
        for row in order:
            if not 0 <= row < self.rows:
                raise IndexError(f"row {row} out of range for {self.name} ({self.rows} rows)")
            if runs and runs[-1][0] + runs[-1][1] == row:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((row, 1))
        chunks = []
        for first, count in runs:  # through the file's reader: a file on the Hub reads by range
            size = count * info.row_bytes
            data = self.file.read_bytes(self.tensor, first * info.row_bytes, size)
            if len(data) != size:
                raise InvalidCheckpointError(self.file.path, f"short read in {self.tensor!r}")
            chunks.append(data)
        values = rows_to_float32(b"".join(chunks), self.dtype, (len(order), self.hidden))
        if list(ids) == order:
            return values
        position = {row: i for i, row in enumerate(order)}
        return values[[position[row] for row in ids]]

    def homes(self, row: int) -> list[RowHome]:
        """This row, and the same row of every alias, when the fine-tune owns the file."""
        if not self.owned:
            return []
        found = [RowHome(self.rel, self.tensor, row)]
        for rel, file, tensor in self.aliases:
            if row < file.info(tensor).shape[0]:
                found.append(RowHome(rel, tensor, row))
        return found


@dataclass(frozen=True)
class _LoraDelta:
    """A LoRA on the embedding or the head, added to the base rows.

    Row i gains `scale * (B @ A[:, i])` (embedding layout: A [r, V], B [H, r]) or
    `scale * (B[i] @ A)` (linear layout: A [r, H], B [V, r]).
    """

    file: SafetensorsFile
    a: str
    b: str
    scale: float
    embedding: bool

    def rows(self, ids: Sequence[int]) -> FloatRows:
        a_info = self.file.info(self.a)
        a = self.file.read_rows(self.a, range(a_info.shape[0]))
        if self.embedding:  # A [r, V], B [H, r]
            b = self.file.read_rows(self.b, range(self.file.info(self.b).shape[0]))
            picked = a[:, list(ids)]
            return np.asarray((b @ picked).T * self.scale, dtype=np.float32)
        b_rows = self.file.read_rows(self.b, list(ids))  # A [r, H], B [V, r]
        return np.asarray((b_rows @ a) * self.scale, dtype=np.float32)


class AdapterRows(RowSource):
    """Effective rows of a PEFT adapter applied to its base.

    Base rows, replaced by a full copy stored in the adapter, then by trainable-token rows (peft
    writes them over the rows with `index_copy`), plus a LoRA delta.
    """

    def __init__(
        self,
        base: StoredRows,
        *,
        copy: StoredRows | None,
        tokens: Mapping[int, tuple[StoredRows, int]],
        lora: _LoraDelta | None,
    ):
        under = copy or base
        super().__init__(base.side, base.name, under.rows, under.hidden, under.dtype)
        self.base, self.copy, self.tokens, self.lora = base, copy, dict(tokens), lora

    def read(self, ids: Sequence[int]) -> FloatRows:
        """Base (or copy) rows with the adapter's replacements and deltas applied."""
        under = self.copy or self.base
        values = np.array(under.read(ids), dtype=np.float32)
        for i, row in enumerate(ids):
            if row in self.tokens:
                holder, index = self.tokens[row]
                values[i] = holder.read([index])[0]
        if self.lora is not None:
            values += self.lora.rows(ids)
        return values

    def homes(self, row: int) -> list[RowHome]:
        """The trainable-token row or the adapter's copy; `[]` when the row lives in the base.

        A LoRA delta on top makes patching meaningless (the delta is added again), so such rows
        have no home either.
        """
        if self.lora is not None:
            return []
        if row in self.tokens:
            holder, index = self.tokens[row]
            return holder.homes(index)
        return self.copy.homes(row) if self.copy is not None else []

    @property
    def stores_rows(self) -> bool:
        """Whether the adapter carries any rows of this matrix."""
        return self.copy is not None or bool(self.tokens) or self.lora is not None


@dataclass
class Layout:
    """Where a checkpoint's input embedding and output head are.

    Args:
        input (`RowSource`, *optional*): the input embedding.
        output (`RowSource`, *optional*): the output head; `None` when tied or missing.
        tied (`bool`): the head is the input embedding.
        head_missing (`bool`): the config unties the head but no head tensor is stored.
        adapter (`bool`): rows come from a PEFT adapter over its base.
        adapter_rows (`bool`): the adapter stores rows of its own (copies or tokens).
        vocab_size (`int`, *optional*): `vocab_size` from the config (text config first).
    """

    input: RowSource | None
    output: RowSource | None
    tied: bool
    head_missing: bool = False
    adapter: bool = False
    adapter_rows: bool = False
    vocab_size: int | None = None

    def sides(self) -> Iterator[RowSource]:
        """The distinct matrices: input, then output unless tied."""
        if self.input is not None:
            yield self.input
        if self.output is not None:
            yield self.output


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    nested = config.get("text_config")
    return nested if isinstance(nested, dict) else {}


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """`key` from a multimodal config's `text_config`, else from the top level."""
    nested = _text_config(config)
    return nested[key] if key in nested else config.get(key)


def _pick(names: Iterable[str], exact: Sequence[str], suffixes: Sequence[str]) -> str | None:
    present = set(names)
    for name in exact:
        if name in present:
            return name
    found = [
        n for n in present if any(n.endswith(s) for s in suffixes) and not _OTHER_TOWERS.search(n)
    ]
    return min(found, key=lambda n: (len(n), n)) if found else None


def _tensor_files(ckpt: Checkpoint) -> dict[str, tuple[str, SafetensorsFile]]:
    """Tensor name -> (file relative path, file) of a checkpoint's safetensors weights."""
    found: dict[str, tuple[str, SafetensorsFile]] = {}
    for rel, file in ckpt.weight_files().items():
        for name in file.tensors:
            found.setdefault(name, (rel, file))
    return found


def _readable(file: SafetensorsFile, tensor: str) -> bool:
    """A 2-D float tensor (quantised or packed tensors cannot be judged row by row)."""
    info = file.info(tensor)
    return len(info.shape) == 2 and info.dtype in _FLOAT_DTYPES


def _merged_layout(ckpt: Checkpoint, *, owned: bool) -> Layout | None:
    tensors = _tensor_files(ckpt)
    if not tensors:
        return None
    in_name = _pick(tensors, INPUT_NAMES, INPUT_SUFFIXES)
    out_name = _pick(tensors, OUTPUT_NAMES, OUTPUT_SUFFIXES)
    if in_name is not None and not _readable(tensors[in_name][1], in_name):
        in_name = None
    if out_name is not None and not _readable(tensors[out_name][1], out_name):
        out_name = None
    config = ckpt.config
    tie_flag = config_value(config, "tie_word_embeddings")
    vocab = config_value(config, "vocab_size")
    vocab_size = vocab if isinstance(vocab, int) and not isinstance(vocab, bool) else None
    if in_name is None:
        return Layout(None, None, tied=False, vocab_size=vocab_size)
    rel, file = tensors[in_name]
    if out_name is None:
        source = StoredRows("input", in_name, file, rel, in_name, owned=owned)
        return Layout(
            source, None, tied=tie_flag is not False, head_missing=tie_flag is False,
            vocab_size=vocab_size,
        )  # fmt: skip
    out_rel, out_file = tensors[out_name]
    return Layout(
        StoredRows("input", in_name, file, rel, in_name, owned=owned),
        StoredRows("output", out_name, out_file, out_rel, out_name, owned=owned),
        tied=False,
        vocab_size=vocab_size,
    )


_ADAPTER_PREFIXES = ("base_model.model.", "base_model.")
_WRAPPER_PARTS = re.compile(r"\.(modules_to_save\.[^.]+|original_module|base_layer)(?=\.)")
_TOKENS_SUFFIX = ".token_adapter.trainable_tokens_delta"


def _model_name(key: str) -> str:
    """An adapter tensor key as the base model names it (peft prefixes and wrappers removed)."""
    for prefix in _ADAPTER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return _WRAPPER_PARTS.sub("", key)


def _adapter_layout(adapter: Checkpoint, base: Checkpoint) -> Layout | None:
    under = _merged_layout(base, owned=False)
    if under is None or under.input is None:
        return under
    assert isinstance(under.input, StoredRows)
    files = adapter.weight_files()
    if not files:
        return Layout(
            AdapterRows(under.input, copy=None, tokens={}, lora=None),
            None
            if under.output is None
            else AdapterRows(_stored(under.output), copy=None, tokens={}, lora=None),
            tied=under.tied,
            head_missing=under.head_missing,
            adapter=True,
            vocab_size=under.vocab_size,
        )
    rel, file = next(iter(files.items()))
    config = adapter.json("adapter_config.json") or {}
    names = {_model_name(k): k for k in file.tensors}
    sides: list[RowSource | None] = []
    stored_any = False
    for base_side in (under.input, under.output):
        if base_side is None:
            sides.append(None)
            continue
        stored = _stored(base_side)
        module = stored.name[: -len(".weight")]
        copy = None
        if stored.name in names and _readable(file, names[stored.name]):
            key = names[stored.name]
            aliases = []
            if under.tied and under.output is None and base_side is under.input:
                head = _pick(names, OUTPUT_NAMES, OUTPUT_SUFFIXES)
                if head is not None and _readable(file, names[head]):
                    aliases.append((rel, file, names[head]))
            copy = StoredRows(base_side.side, stored.name, file, rel, key, owned=True,
                              aliases=aliases)  # fmt: skip
        tokens = _trainable_tokens(config, file, rel, names, module, base_side.side, stored)
        lora = _lora_delta(config, file, names, module)
        stored_any = stored_any or copy is not None or bool(tokens) or lora is not None
        sides.append(AdapterRows(stored, copy=copy, tokens=tokens, lora=lora))
    return Layout(
        sides[0],
        sides[1],
        tied=under.tied,
        head_missing=under.head_missing,
        adapter=True,
        adapter_rows=stored_any,
        vocab_size=under.vocab_size,
    )


def _stored(source: RowSource) -> StoredRows:
    assert isinstance(source, StoredRows)
    return source


def _trainable_tokens(
    config: Mapping[str, Any],
    file: SafetensorsFile,
    rel: str,
    names: Mapping[str, str],
    module: str,
    side: Side,
    base: StoredRows,
) -> dict[int, tuple[StoredRows, int]]:
    key = names.get(module + _TOKENS_SUFFIX)
    spec = config.get("trainable_token_indices")
    if key is None or spec is None:
        return {}
    indices: list[int] | None = None
    if isinstance(spec, list):
        indices = [int(i) for i in spec] if side == "input" else None
    elif isinstance(spec, dict):
        for target, values in spec.items():
            if module == target or module.endswith("." + str(target)):
                indices = [int(i) for i in values]
    if not indices or file.info(key).shape[0] != len(indices):
        return {}
    holder = StoredRows(side, key, file, rel, key, owned=True)
    return {row: (holder, k) for k, row in enumerate(indices) if 0 <= row < base.rows}


def _lora_delta(
    config: Mapping[str, Any], file: SafetensorsFile, names: Mapping[str, str], module: str
) -> _LoraDelta | None:
    pairs = (
        (module + ".lora_embedding_A", module + ".lora_embedding_B", True),
        (module + ".lora_A.weight", module + ".lora_B.weight", False),
    )
    for a, b, embedding in pairs:
        if a in names and b in names:
            rank = file.info(names[a]).shape[0]
            alpha = config.get("lora_alpha", rank)
            leaf = module.rsplit(".", 1)[-1]
            for pattern, value in (config.get("alpha_pattern") or {}).items():
                if module.endswith(str(pattern)) or leaf == pattern:
                    alpha = value
            if not rank or not isinstance(alpha, int | float):
                return None
            scale = float(alpha) / (rank**0.5 if config.get("use_rslora") else rank)
            return _LoraDelta(file, names[a], names[b], scale, embedding)
    return None


def locate(target: Checkpoint, base: Checkpoint | None = None) -> Layout | None:
    """Find the input embedding and output head of `target` (an adapter needs its `base`).

    Returns `None` when the checkpoint holds no safetensors weights to judge (tokenizer-only
    folders, pickled `.bin` weights, an adapter without a merged base).
    """
    if target.kind is Kind.MERGED:
        return _merged_layout(target, owned=True)
    if target.kind is Kind.ADAPTER and base is not None and base.kind is Kind.MERGED:
        return _adapter_layout(target, base)
    return None


# -------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class RowStats:
    """Statistics of a bounded random sample of ordinary rows of one matrix.

    Args:
        sampled (`int`): rows read.
        trained (`int`): rows in the mean (non-zero, finite, not tiny).
        q01 (`float`): 1% quantile of the sampled norms.
        median_norm (`float`): median of the sampled norms.
        mean (`np.ndarray`): mean of the trained sampled rows (float32).
        median_dist (`float`): median distance of trained sampled rows from `mean`.
    """

    sampled: int
    trained: int
    q01: float
    median_norm: float
    mean: FloatRows
    median_dist: float

    @property
    def tiny(self) -> float:
        """Norm below which a row is far below ordinary rows."""
        return min(self.q01, TINY_FRACTION * self.median_norm)

    @property
    def near_mean(self) -> float:
        """Distance from `mean` within which a row sits at the mean.

        Three standard errors of the sampled mean (rows at the mean of *all* rows land there),
        at most `MEAN_FRACTION` of the median distance of ordinary rows.
        """
        spread = 3.0 / float(np.sqrt(max(self.trained, 1)))
        return max(min(MEAN_FRACTION, spread), SAME_FRACTION) * self.median_dist

    @property
    def same(self) -> float:
        """Distance below which two rows are the same row."""
        return SAME_FRACTION * self.median_dist


def sample_ids(population: int, exclude: Iterable[int], limit: int) -> list[int]:
    """A deterministic random sample of at most `limit` ids in `range(population)` not excluded.

    Drawn as whole blocks of `SAMPLE_BLOCK` consecutive ids in random order: neighbouring rows
    are read with one call and lie together on disk, so a cold read costs a few seeks.
    """
    allowed = np.ones(population, dtype=bool)
    excluded = np.fromiter((i for i in exclude if 0 <= i < population), dtype=np.int64)
    allowed[excluded] = False
    if int(allowed.sum()) <= limit:
        return [int(i) for i in np.flatnonzero(allowed)]
    blocks = -(-population // SAMPLE_BLOCK)
    chosen: list[np.ndarray[Any, Any]] = []
    count = 0
    for block in np.random.default_rng(SAMPLE_SEED).permutation(blocks):
        start = int(block) * SAMPLE_BLOCK
        ids = np.flatnonzero(allowed[start : start + SAMPLE_BLOCK]) + start
        chosen.append(ids[: limit - count])
        count += len(chosen[-1])
        if count >= limit:
            break
    return [int(i) for i in np.sort(np.concatenate(chosen))]


def _row_norms(values: FloatRows) -> FloatRows:
    """Euclidean norm of each row, without a temporary copy of the rows."""
    squares: FloatRows = np.einsum("ij,ij->i", values, values, dtype=np.float64)
    return np.sqrt(squares)


def row_stats(
    source: RowSource, population: int, exclude: Iterable[int], *, limit: int | None = None
) -> RowStats | None:
    """Sample ordinary rows of `source` (ids below `population`, not in `exclude`).

    The sample is bounded (`SAMPLE_ROWS` rows and `SAMPLE_FLOATS` floats, or `limit` rows) and
    deterministic, so a second run judges against the same mean. Returns `None` with no
    ordinary row to sample.
    """
    if limit is None:
        limit = max(MIN_SAMPLE_ROWS, min(SAMPLE_ROWS, SAMPLE_FLOATS // max(source.hidden, 1)))
    ids = sample_ids(min(population, source.rows), exclude, limit)
    if not ids:
        return None
    values = source.read(ids)
    norms = _row_norms(values)
    finite = np.isfinite(norms)  # a row with NaN or inf has a non-finite norm
    q01 = float(np.quantile(norms[finite], TINY_QUANTILE)) if finite.any() else 0.0
    median_norm = float(np.median(norms[finite])) if finite.any() else 0.0
    tiny = min(q01, TINY_FRACTION * median_norm)
    keep = finite & (norms > tiny) & (norms > 0)
    if not keep.any():
        keep = finite & (norms > 0)
    if not keep.any():
        return RowStats(len(ids), 0, q01, median_norm, np.zeros(source.hidden, np.float32), 0.0)
    total = np.sum(values, axis=0, dtype=np.float64, where=keep[:, None])
    mean = (total / keep.sum()).astype(np.float32)
    kept = values[keep]
    kept -= mean
    dists = _row_norms(kept)
    return RowStats(len(ids), int(keep.sum()), q01, median_norm, mean, float(np.median(dists)))


# -------------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class TokenInfo:
    """A token in scope and why.

    Args:
        id (`int`): token id.
        content (`str`): the token's text.
        roles (`frozenset[str]`): `added`, `template`, `end-of-turn`, `bos`, `eos`, `pad`, `unk`,
            `stop` (an extra stop id of generation_config.json), `special`.
    """

    id: int
    content: str
    roles: frozenset[str]

    @property
    def must_work(self) -> bool:
        """Added by the fine-tune, emitted by the template, or bos/eos/pad (untrained = error)."""
        return any(role in self.roles for role in _ERROR_ROLES)

    @property
    def stops(self) -> bool:
        """The model must emit this token to end its answer (eos or end of turn)."""
        return "eos" in self.roles or "end-of-turn" in self.roles

    def label(self) -> str:
        """`<|im_end|> (id 128, added by the fine-tune, ends assistant turns)`."""
        roles = [_ROLE_TEXT[r] for r in _ROLE_ORDER if r in self.roles]
        if len(roles) > 1:  # "special" only says something when it is the only reason
            roles = [r for r in roles if r != "special"]
        extra = ", ".join(roles)
        return f"{self.content} (id {self.id}{', ' + extra if extra else ''})"


_ROLE_ORDER = ("added", "template", "end-of-turn", "bos", "eos", "pad", "unk", "stop", "special")


def _listed_specials(config: Mapping[str, Any]) -> list[str]:
    found = []
    for key in ("additional_special_tokens", "extra_special_tokens"):
        value = config.get(key)
        items = value.values() if isinstance(value, dict) else value
        if isinstance(items, list) or isinstance(value, dict):
            for item in items or ():
                text = token_text(item)
                if text is not None:
                    found.append(text)
    return found


def _config_ids(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _source_tokenizer(ctx: Context) -> tuple[Checkpoint, TokenizerView | None]:
    """The checkpoint whose tokenizer the fine-tune is used with (its own, else the base's)."""
    tok = ctx.target.tokenizer()
    if tok is not None or ctx.base_or_none is None:
        return ctx.target, tok
    return ctx.base, ctx.base.tokenizer()


def tokenizer_for(ctx: Context) -> TokenizerView | None:
    """The tokenizer the fine-tune is used with: its own, else (an adapter) the base's."""
    return _source_tokenizer(ctx)[1]


def header_sha256(file: SafetensorsFile) -> str:
    """sha256 of a safetensors file's length prefix and JSON header (for `TensorResizeEdit`)."""
    with file.path.open("rb") as handle:
        prefix = handle.read(8)
        (length,) = struct.unpack("<Q", prefix)
        return sha256_hex(prefix + handle.read(length))


def token_scope(ctx: Context) -> tuple[dict[int, TokenInfo], int | None]:
    """Tokens in scope (added, special, emitted by the template) and `len(tokenizer)`."""
    from .turns import assistant_frame, leading_markers

    owner, tok = _source_tokenizer(ctx)
    roles: dict[int, set[str]] = {}
    contents: dict[int, str] = {}

    def add(token_id: int | None, role: str, content: str | None = None) -> None:
        if token_id is None or token_id < 0:
            return
        roles.setdefault(token_id, set()).add(role)
        if content is not None:
            contents.setdefault(token_id, content)

    length = None
    added_tokens: dict[int, str] = {}
    if tok is not None:
        length = tok.get_vocab_size(with_added_tokens=True)
        for token_id, added in tok.get_added_tokens_decoder().items():
            added_tokens[token_id] = added.content
            if added.special:
                add(token_id, "special", added.content)
        for key, text in owner.special_tokens().items():
            role = key.removesuffix("_token")
            add(tok.token_to_id(text), role if role in ("bos", "eos", "pad", "unk") else "special",
                text)  # fmt: skip
        for text in _listed_specials(owner.tokenizer_config):
            add(tok.token_to_id(text), "special", text)
        for token_id in _added_relative_to_base(ctx, owner, tok, added_tokens):
            add(token_id, "added", tok.id_to_token(token_id))
    extra_stops: list[int] = []
    for name in ("config.json", "generation_config.json"):
        config = ctx.target.json(name) or (owner.json(name) if owner is ctx.base_or_none else None)
        config = config or {}
        for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
            role = key.removesuffix("_token_id")
            ids = _config_ids(config_value(config, key))
            if role == "eos" and name == "generation_config.json" and len(ids) > 1:
                extra_stops += ids  # a list of stop ids: decided once turn ends are known
                continue
            for token_id in ids:
                add(token_id, role)
    source = owner.chat_template() or ctx.options.template
    if source is None and ctx.base_or_none is not None and owner is not ctx.base_or_none:
        source = ctx.base_or_none.chat_template()
    if source is not None and added_tokens:
        specials = owner.special_tokens()
        renders = ctx.renders(source, specials)
        texts = [
            text
            for probe in renders.probes
            for text in (probe.plain, probe.with_prompt)
            if isinstance(text, str)
        ]
        joined = "\n".join(texts)
        for token_id, content in added_tokens.items():
            if content and content in joined:
                add(token_id, "template", content)
        frame = assistant_frame(source, specials)
        if frame is not None:
            lookup = {content: token_id for token_id, content in added_tokens.items()}
            for marker in leading_markers(frame.trailer, set(lookup)):
                add(lookup[marker], "end-of-turn", marker)
    # generation_config.json may list several stop ids (Llama 3.1: end_of_text, eom, eot). The
    # ones the tokenizer, config.json or the template also name must work; the others are extra
    # stops the model may never use (`<|eom_id|>` without tools), not a reason to fail.
    stops = {i for i, r in roles.items() if r & {"eos", "end-of-turn"}}
    for token_id in extra_stops:
        add(token_id, "eos" if token_id in stops or len(stops) == 0 else "stop")
    scope = {}
    for token_id, token_roles in roles.items():
        shown = contents.get(token_id) or (tok.id_to_token(token_id) if tok is not None else None)
        scope[token_id] = TokenInfo(token_id, shown or f"<id {token_id}>", frozenset(token_roles))
    return dict(sorted(scope.items())), length


def _added_relative_to_base(
    ctx: Context, owner: Checkpoint, tok: TokenizerView, added: Mapping[int, str]
) -> list[int]:
    base = ctx.base_or_none
    if base is None or owner is base:
        return []  # without a base, what was added is not known: the specials still count
    if ctx.target.read_bytes("tokenizer.json") == base.read_bytes("tokenizer.json"):
        return []  # the common case, decided without parsing the base's tokenizer
    base_tok = base.tokenizer()
    if base_tok is None:
        return []
    base_len = base_tok.get_vocab_size(with_added_tokens=True)
    found = {token_id for token_id, text in added.items() if base_tok.token_to_id(text) != token_id}
    found.update(range(base_len, tok.get_vocab_size(with_added_tokens=True)))
    return sorted(found)


def piece_ids(tok: TokenizerView, text: str, *, exclude: int | None = None) -> list[int]:
    """Ids of the ordinary pieces `text` splits into, ignoring added tokens and unknown pieces.

    The text goes through the tokenizer's normalizer, pre-tokenizer and model directly, so an
    added token's own entry (which would match the whole text) is bypassed.
    """
    normalized = tok.normalizer.normalize_str(text) if tok.normalizer is not None else text
    if tok.pre_tokenizer is not None:
        pieces = [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str(normalized)]
    else:
        pieces = [normalized]
    unk = getattr(tok.model, "unk_token", None)
    unk_id = tok.token_to_id(unk) if isinstance(unk, str) else None
    ids: list[int] = []
    for piece in pieces:
        try:
            tokens = tok.model.tokenize(piece)
        except Exception:  # a model that cannot split this piece has no pieces to offer
            logger.debug("cannot split %r into pieces", piece, exc_info=True)
            continue
        ids.extend(t.id for t in tokens if t.id not in (unk_id, exclude))
    return ids


# -------------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Evidence:
    """Why a row looks untrained (or initialized but never trained), with its numbers.

    Args:
        kind (`str`): `zero`, `non-finite`, `at-mean`, `tiny-norm`, `duplicate`, `subtoken-mean`,
            `unchanged-untrained-base`.
        state (`str`): `untrained` or `initialized`.
        detail (`str`): the human-readable fact, always starting with "is", e.g. `is all zeros`.
        values (`Mapping[str, object]`): the numbers, for JSON output.
    """

    kind: str
    state: State
    detail: str
    values: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SideVerdict:
    """The verdict on one row of one matrix.

    Args:
        side (`str`): `input`, `output`, or `tied` (one matrix serves both).
        source (`RowSource`): the matrix.
        evidence (`Evidence`, *optional*): `None` when the row looks trained.
    """

    side: str
    source: RowSource
    evidence: Evidence | None

    @property
    def state(self) -> str:
        """`trained`, `initialized` or `untrained`."""
        return "trained" if self.evidence is None else self.evidence.state


@dataclass(frozen=True)
class TokenVerdict:
    """Verdicts on one token's input and output rows."""

    token: TokenInfo
    sides: tuple[SideVerdict, ...]

    def with_state(self, state: str) -> list[SideVerdict]:
        """The sides in `state`."""
        return [s for s in self.sides if s.state == state]

    def describe(self, state: str) -> str:
        """`input row is all zeros; output row is near zero: ...` for the sides in `state`."""
        parts = []
        for verdict in self.with_state(state):
            assert verdict.evidence is not None
            where = "input/output row (tied)" if verdict.side == "tied" else f"{verdict.side} row"
            parts.append(f"{where} {verdict.evidence.detail}")
        return "; ".join(parts)

    def data(self) -> dict[str, object]:
        """Facts for JSON output."""
        return {
            "token": self.token.content,
            "id": self.token.id,
            "roles": sorted(self.token.roles),
            "rows": {
                s.side: {
                    "tensor": s.source.name,
                    "state": s.state,
                    "evidence": None if s.evidence is None else s.evidence.kind,
                    **({} if s.evidence is None else dict(s.evidence.values)),
                }
                for s in self.sides
            },
        }


def _fmt(value: float) -> str:
    return f"{value:.3g}"


class _Judge:
    """Judge candidate rows of one matrix against statistics of its ordinary rows.

    The statistics are sampled when first needed (a base's rows are only sampled when a
    fine-tuned row turns out to be unchanged from the base).
    """

    def __init__(
        self,
        source: RowSource,
        *,
        population: int,
        scope: Mapping[int, TokenInfo],
        tok: TokenizerView | None = None,
        base: _Judge | None = None,
        stats: RowStats | None = None,
        limit: int | None = None,
    ):
        self.source, self.population, self.scope = source, population, scope
        self.tok, self.base = tok, base
        self._stats, self._limit = stats, limit
        self._sampled = stats is not None

    @property
    def stats(self) -> RowStats | None:
        """The sample statistics, or `None` when there is no ordinary row to sample."""
        if not self._sampled:
            self._stats = row_stats(self.source, self.population, self.scope, limit=self._limit)
            self._sampled = True
        return self._stats

    def judge(self, ids: Sequence[int], *, deep: Sequence[bool]) -> list[Evidence | None]:
        """Evidence per id; `deep` asks for the costlier checks (pieces, the base's row)."""
        stats = self.stats
        if not ids or stats is None:
            return [None] * len(ids)
        values = self.source.read(ids)
        found: list[Evidence | None] = [_direct(row, stats) for row in values]
        self._duplicates(ids, values, found, stats)
        for i, token_id in enumerate(ids):
            if found[i] is None and deep[i]:
                # A row the fine-tune left as the base had it is judged as the base's row is
                # (without the pieces check, as the base is); only a changed row can have been
                # initialised from its pieces here. Splitting text into pieces builds the
                # tokenizer (a second for Llama 3), so it is asked only when it can matter.
                if self._unchanged_from_base(token_id, values[i], stats):
                    found[i] = self._from_base(token_id, values[i], stats)
                else:
                    found[i] = self._pieces(token_id, values[i], stats)
        return found

    def _unchanged_from_base(self, token_id: int, row: FloatRows, stats: RowStats) -> bool:
        base = self.base
        if base is None or token_id >= base.source.rows:
            return False
        return float(np.linalg.norm(row - base.source.read([token_id])[0])) <= stats.same

    def _duplicates(
        self, ids: Sequence[int], values: FloatRows, found: list[Evidence | None], stats: RowStats
    ) -> None:
        # Identical rows have identical norms: sort by norm and compare neighbours only.
        norms = np.linalg.norm(values, axis=1)
        groups: list[list[int]] = []
        for pos in (int(p) for p in np.argsort(norms, kind="stable")):
            head = groups[-1][0] if groups else None
            if (
                head is not None
                and norms[pos] - norms[head] <= stats.same
                and np.linalg.norm(values[pos] - values[head]) <= stats.same
            ):
                groups[-1].append(pos)
            else:
                groups.append([pos])
        for group in groups:
            if len(group) < 2:
                continue
            for pos in group:
                if found[pos] is not None:
                    continue
                others = [ids[o] for o in group if o != pos]
                names = [self._name(o) for o in others[:3]]
                more = f" and {len(others) - 3} more" if len(others) > 3 else ""
                found[pos] = Evidence(
                    "duplicate",
                    "untrained",
                    f"is identical to the row of {', '.join(names)}{more}",
                    {"identical_to": others},
                )

    def _name(self, token_id: int) -> str:
        info = self.scope.get(token_id)
        return info.content if info is not None else f"id {token_id}"

    def _pieces(self, token_id: int, row: FloatRows, stats: RowStats) -> Evidence | None:
        info = self.scope.get(token_id)
        if self.tok is None or info is None:
            return None
        pieces = [
            p for p in piece_ids(self.tok, info.content, exclude=token_id) if p < self.source.rows
        ]
        if not pieces:
            return None
        dist = float(np.linalg.norm(row - _weighted_mean(self.source, pieces)))
        if dist > stats.same:
            return None
        return Evidence(
            "subtoken-mean",
            "initialized",
            f"is the mean of the rows of the {len(pieces)} pieces its text splits into",
            {"pieces": pieces, "distance": dist},
        )

    def _from_base(self, token_id: int, row: FloatRows, stats: RowStats) -> Evidence | None:
        base = self.base
        if base is None or not self._unchanged_from_base(token_id, row, stats):
            return None
        evidence = base.judge([token_id], deep=[False])[0]
        if evidence is None:
            return None
        state: State = "initialized" if evidence.state == "initialized" else "untrained"
        return Evidence(
            "unchanged-untrained-base",
            state,
            f"is unchanged from the base, where it {evidence.detail}",
            {"base_evidence": evidence.kind, **dict(evidence.values)},
        )


def _direct(row: FloatRows, s: RowStats) -> Evidence | None:
    """Evidence from the row alone: zero, non-finite, at the mean, or a tiny norm."""
    if not np.isfinite(row).all():
        return Evidence("non-finite", "untrained", "is not finite (NaN or infinite values)")
    norm = float(np.linalg.norm(row))
    if norm == 0.0:
        return Evidence("zero", "untrained", "is all zeros", {"norm": 0.0})
    dist = float(np.linalg.norm(row - s.mean))
    if s.median_dist > 0 and dist <= s.near_mean and dist < norm:
        return Evidence(
            "at-mean",
            "initialized",
            f"is at the mean of trained rows (distance {_fmt(dist)}; sampled rows are "
            f"{_fmt(s.median_dist)} from it)",
            {"distance_to_mean": dist, "median_distance": s.median_dist},
        )
    if norm < s.tiny:
        return Evidence(
            "tiny-norm",
            "untrained",
            f"is near zero: norm {_fmt(norm)} is below the 1% quantile ({_fmt(s.q01)}) of "
            f"{s.sampled} sampled rows (median {_fmt(s.median_norm)})",
            {"norm": norm, "q01": s.q01, "median_norm": s.median_norm, "sampled": s.sampled},
        )
    return None


def _weighted_mean(source: RowSource, pieces: Sequence[int]) -> FloatRows:
    """Mean of the rows of `pieces`, a piece that occurs twice counting twice."""
    unique = sorted(set(pieces))
    counts = np.array([pieces.count(p) for p in unique], dtype=np.float64)
    rows = source.read(unique).astype(np.float64)
    return np.asarray((rows * counts[:, None]).sum(axis=0) / counts.sum(), dtype=np.float32)


# -------------------------------------------------------------------------------- analysis
@dataclass
class EmbeddingAnalysis:
    """Everything the embedding rules need about one fine-tune, computed once per run.

    Args:
        layout (`Layout`): where the fine-tune's rows are.
        scope (`dict[int, TokenInfo]`): tokens in scope, by id.
        tokenizer_length (`int`, *optional*): `len(tokenizer)`.
        verdicts (`list[TokenVerdict]`): one per in-scope token that has rows.
        stats (`dict[str, RowStats]`): sample statistics per side (`input`, `output`).
        tokenizer (`TokenizerView`, *optional*): the tokenizer the fine-tune is used with.
    """

    layout: Layout
    scope: dict[int, TokenInfo]
    tokenizer_length: int | None
    verdicts: list[TokenVerdict]
    stats: dict[str, RowStats]
    tokenizer: TokenizerView | None = None

    def init_rows(self, source: RowSource, ids: Sequence[int], init: str) -> FloatRows:
        """Initial values for rows `ids` of `source`.

        `mean`: the mean of trained rows (of this matrix's sample). `subtokens`: the mean of the
        rows of the pieces each token's text splits into, falling back to the mean when the
        text has no known piece.
        """
        stats = self.stats.get(source.side)
        mean = stats.mean if stats is not None else np.zeros(source.hidden, np.float32)
        values = np.repeat(mean[None, :], len(ids), axis=0).astype(np.float32)
        if init != "subtokens" or self.tokenizer is None:
            return values
        skip = set(ids)
        for i, token_id in enumerate(ids):
            info = self.scope.get(token_id)
            content = info.content if info is not None else self.tokenizer.id_to_token(token_id)
            if not content:
                continue
            pieces = [
                p
                for p in piece_ids(self.tokenizer, content, exclude=token_id)
                if p < source.rows and p not in skip
            ]
            if pieces:
                values[i] = _weighted_mean(source, pieces)
        return values

    def row_edits(
        self, source: RowSource, ids: Sequence[int], init: str, *, reason: str
    ) -> list[TensorRowsEdit]:
        """In-place edits giving rows `ids` of `source` their initial values, one per tensor.

        Rows with no home in the fine-tune (they live in an adapter's base) are skipped.
        """
        patchable = [i for i in ids if source.homes(i)]
        if not patchable:
            return []
        values = self.init_rows(source, patchable, init)
        if not np.any(values):
            # No trained row to take a mean from (every row is zero): writing zeros over zeros
            # would be reported as fixed and fail the re-check. No edit, so no fix is offered.
            return []
        grouped: dict[tuple[str, str], list[tuple[int, FloatRows]]] = {}
        for token_id, value in zip(patchable, values, strict=True):
            for home in source.homes(token_id):
                grouped.setdefault((home.path, home.tensor), []).append((home.row, value))
        edits = []
        for (path, tensor), items in sorted(grouped.items()):
            items.sort(key=lambda item: item[0])
            rows = tuple(row for row, _ in items)
            file = _file_for(source, path, tensor)
            data = rows_from_float32(np.stack([v for _, v in items]), file.info(tensor).dtype)
            before = sha256_hex(file.read_raw_rows(tensor, rows))
            edits.append(TensorRowsEdit(path, tensor, rows, data, before, reason))
        return edits


def _file_for(source: RowSource, path: str, tensor: str) -> SafetensorsFile:
    for stored in _stored_parts(source):
        if stored.rel == path and stored.tensor == tensor:
            return stored.file
        for rel, file, name in stored.aliases:
            if rel == path and name == tensor:
                return file
    raise KeyError(f"{path}: {tensor} is not a row source of {source.name}")


def _stored_parts(source: RowSource) -> list[StoredRows]:
    if isinstance(source, StoredRows):
        return [source]
    if isinstance(source, AdapterRows):
        parts = [source.base] + ([source.copy] if source.copy is not None else [])
        parts.extend(holder for holder, _ in source.tokens.values())
        return parts
    return []


def init_option(ctx: Context) -> str:
    """The row initialisation the user asked for (`Options.init`), `mean` by default."""
    init = getattr(ctx.options, "init", "mean")
    return init if init in INITS else "mean"


_CACHE: WeakKeyDictionary[Checkpoint, list[tuple[Checkpoint | None, EmbeddingAnalysis | None]]] = (
    WeakKeyDictionary()
)


def weights_view(verdicts: Sequence[TokenVerdict]) -> list[TokenVerdict]:
    """The verdicts as the weight rules (FTX102, FTX103) report them.

    The output row of a token that ends generation (eos, end of turn) is judged once, by the
    stop chain (FTX206: an error whether zero or only initialized, with the cure), so it is left
    out here; a tied row still counts here for its input role.
    """
    view = []
    for verdict in verdicts:
        if verdict.token.stops:
            sides = tuple(s for s in verdict.sides if s.side != "output")
            verdict = TokenVerdict(verdict.token, sides)
        view.append(verdict)
    return view


def analyse(ctx: Context) -> EmbeddingAnalysis | None:
    """The embedding analysis of `ctx.target` against `ctx.base`, computed once per pair of views.

    Returns `None` when the fine-tune has no rows ftfix can read.
    """
    cached = _CACHE.setdefault(ctx.target, [])
    for base, analysis in cached:
        if base is ctx.base_or_none:
            return analysis
    result = _analyse(ctx)
    cached.append((ctx.base_or_none, result))
    return result


def _base_source(source: RowSource, ctx: Context) -> RowSource | None:
    """The base's matrix under `source` (the adapter's base, or the merged base's same side)."""
    if isinstance(source, AdapterRows):
        return source.base
    base = ctx.base_or_none
    if base is None or base.kind is not Kind.MERGED:
        return None  # without the base's matrix the fine-tune's own rows are judged alone
    base_layout = _merged_layout(base, owned=False)
    if base_layout is None:
        return None
    if source.side == "input":
        return base_layout.input
    return base_layout.output or (base_layout.input if base_layout.tied else None)


def _base_judge(
    source: RowSource, layout: Layout, ctx: Context, scope: Mapping[int, TokenInfo]
) -> _Judge | None:
    """A judge of the base's row under `source` (statistics sampled only if ever needed)."""
    under = _base_source(source, ctx)
    if under is None:
        return None
    base_tok = ctx.base.tokenizer()  # a base matrix above means a base
    length = base_tok.get_vocab_size(with_added_tokens=True) if base_tok else under.rows
    # Only consulted for rows the fine-tune left unchanged: a smaller sample is enough.
    return _Judge(under, population=length, scope=scope, limit=MIN_SAMPLE_ROWS)


def _analyse(ctx: Context) -> EmbeddingAnalysis | None:
    layout = locate(ctx.target, ctx.base_or_none)
    if layout is None or layout.input is None:
        return None
    scope, length = token_scope(ctx)
    _, tok = _source_tokenizer(ctx)
    population = length if length is not None else layout.input.rows
    stats: dict[str, RowStats] = {}
    evidence: dict[str, dict[int, Evidence | None]] = {}
    for source in layout.sides():
        judge = _Judge(
            source,
            population=population,
            scope=scope,
            tok=tok,
            base=_base_judge(source, layout, ctx, scope),
        )
        if judge.stats is None:
            continue
        stats[source.side] = judge.stats
        ids = [token_id for token_id in scope if token_id < source.rows]
        found = judge.judge(ids, deep=[scope[i].must_work for i in ids])
        evidence[source.side] = dict(zip(ids, found, strict=True))
    verdicts = []
    for token_id, info in scope.items():
        sides = []
        for source in layout.sides():
            if source.side in evidence and token_id in evidence[source.side]:
                name = "tied" if layout.tied else source.side
                sides.append(SideVerdict(name, source, evidence[source.side][token_id]))
        if sides:
            verdicts.append(TokenVerdict(info, tuple(sides)))
    return EmbeddingAnalysis(layout, scope, length, verdicts, stats, tok)


def unchanged_from_base(ctx: Context, analysis: EmbeddingAnalysis, ids: Sequence[int]) -> set[int]:
    """The ids whose every row (input and output) equals the base's row, read in one batch."""
    same = set(ids)
    for source in analysis.layout.sides():
        under = _base_source(source, ctx)
        stats = analysis.stats.get(source.side)
        if under is None or stats is None:
            return set()
        present = [i for i in sorted(same) if i < source.rows and i < under.rows]
        if not present:
            return set()
        diff = np.linalg.norm(source.read(present) - under.read(present), axis=1)
        same = {i for i, d in zip(present, diff, strict=True) if d <= stats.same}
    return same


_HEAD_CACHE: WeakKeyDictionary[Checkpoint, dict[str, RowStats | None]] = WeakKeyDictionary()


def stored_row_evidence(ckpt: Checkpoint, rel: str, tensor: str, row: int) -> Evidence | None:
    """Evidence that row `row` of `tensor` (in `ckpt`'s file `rel`) was never trained.

    The row is judged against a bounded sample of the same tensor's ordinary rows (the
    tokenizer's added and special tokens excluded), sampled once per checkpoint and tensor:
    all-zero, non-finite, a norm far below ordinary rows, or at their mean (`initialized`).

    Returns:
        `Evidence`, or `None` when the row looks trained or cannot be judged (a non-float or
        non-2-D tensor, a row past the end).
    """
    file = ckpt.weight_files().get(rel)
    if file is None or tensor not in file.tensors or not _readable(file, tensor):
        return None
    source = StoredRows("output", tensor, file, rel, tensor, owned=False)
    if not 0 <= row < source.rows:
        return None
    per_ckpt = _HEAD_CACHE.setdefault(ckpt, {})
    key = f"{rel}:{tensor}"
    if key not in per_ckpt:
        tok = ckpt.tokenizer()
        length = tok.get_vocab_size(with_added_tokens=True) if tok is not None else source.rows
        specials = tok.get_added_tokens_decoder() if tok is not None else {}
        per_ckpt[key] = row_stats(source, length, specials)
    stats = per_ckpt[key]
    if stats is None:
        return None
    return _direct(source.read([row])[0], stats)


def head_row_verdict(
    ckpt: Checkpoint, token_id: int, *, base: Checkpoint | None = None
) -> SideVerdict | None:
    """The verdict on `token_id`'s output-head row (the embedding row when tied).

    For rules outside the embedding family (stop tokens) that need to know whether the model
    can emit a token at all, without a full analysis: the row is judged against a sample of
    ordinary rows (all-zero, non-finite, far below ordinary norms, or at their mean). An adapter
    needs its merged `base`.

    Returns:
        `SideVerdict` (its `evidence` is `None` when the row looks trained), or `None` when no
        row can be read (no safetensors weights, a non-float tensor, an id past the matrix).
    """
    layout = locate(ckpt, base)
    if layout is None:
        return None
    source = layout.output or (layout.input if layout.tied else None)
    if source is None or not 0 <= token_id < source.rows:
        return None
    per_ckpt = _HEAD_CACHE.setdefault(ckpt, {})
    if source.name not in per_ckpt:
        tok = ckpt.tokenizer() or (base.tokenizer() if base is not None else None)
        length = tok.get_vocab_size(with_added_tokens=True) if tok is not None else source.rows
        specials = tok.get_added_tokens_decoder() if tok is not None else {}
        per_ckpt[source.name] = row_stats(source, length, specials)
    stats = per_ckpt[source.name]
    if stats is None:
        return None
    judge = _Judge(source, population=source.rows, scope={}, stats=stats)
    side = "tied" if layout.tied else "output"
    return SideVerdict(side, source, judge.judge([token_id], deep=[False])[0])
