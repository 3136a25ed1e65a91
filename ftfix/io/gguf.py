"""Read the metadata of a GGUF file (llama.cpp's format); never its tensors.

A GGUF file is a prefix (magic, version, counts, key/value metadata, tensor infos, padding to
the alignment) followed by the tensor data. ftfix reads and edits only the prefix: tensor
offsets are relative to the start of the data, so a rewritten prefix (padded to the same
alignment) leaves every tensor byte where the offsets say.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import CheckpointNotFoundError, InvalidCheckpointError

__all__ = [
    "KEY_ADD_BOS",
    "KEY_BOS",
    "KEY_EOM",
    "KEY_EOS",
    "KEY_EOT",
    "KEY_TEMPLATE",
    "KEY_TOKENS",
    "KEY_TOKEN_TYPE",
    "TOKEN_CONTROL",
    "TOKEN_USER_DEFINED",
    "GGUFField",
    "GGUFMetadata",
    "is_gguf_path",
    "is_padding",
    "parse_gguf",
    "read_gguf",
]

KEY_TEMPLATE = "tokenizer.chat_template"
KEY_TOKENS = "tokenizer.ggml.tokens"
KEY_TOKEN_TYPE = "tokenizer.ggml.token_type"
KEY_BOS = "tokenizer.ggml.bos_token_id"
KEY_EOS = "tokenizer.ggml.eos_token_id"
KEY_EOT = "tokenizer.ggml.eot_token_id"
KEY_EOM = "tokenizer.ggml.eom_token_id"
KEY_ADD_BOS = "tokenizer.ggml.add_bos_token"
# llama.cpp's token types (LLAMA_TOKEN_TYPE_*): control and user-defined tokens are the
# special ones the template prints.
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4

# GGUF value types (GGUFValueType): their scalar struct formats.
STRING, ARRAY, BOOL = 8, 9, 7
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_MAGIC = b"GGUF"
# A GGUF prefix (metadata and tensor infos) above this is not a model file ftfix can handle
# in memory; real ones are a few MB (the token list).
MAX_PREFIX = 512 * 1024 * 1024


def is_padding(token_id: int, text: str) -> bool:
    """A `[PAD<id>]` filler: llama.cpp's converter pads the token list to the embedding size."""
    return text == f"[PAD{token_id}]"


def is_gguf_path(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a GGUF file (by its suffix, or its magic when it is a file)."""
    text = os.fspath(path)
    if text.lower().endswith(".gguf"):
        return True
    if not os.path.isfile(text):  # never open a folder, a FIFO or a device to sniff it
        return False
    try:
        with open(text, "rb") as handle:
            return handle.read(4) == _MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class GGUFField:
    """One key/value of the metadata.

    Args:
        key (`str`): the key, e.g. `tokenizer.ggml.eos_token_id`.
        type (`int`): the GGUF value type (8 string, 9 array, 4 uint32, 7 bool, ...).
        offset (`int`): where the key/value starts in the file.
        size (`int`): its length in bytes (key, type and value).
        value_offset (`int`): where the value starts (for scalars: the bytes to patch).
        item_type (`int`, *optional*): the element type of an array.
        raw (`bytes`): the value's bytes, decoded on first use of `value` (a 280,000-entry
            merges array is never decoded).
    """

    key: str
    type: int
    offset: int
    size: int
    value_offset: int
    item_type: int | None = None
    raw: bytes = field(default=b"", repr=False)

    @cached_property
    def value(self) -> Any:
        """The decoded value (a list for arrays)."""
        return _decode(self.type, self.item_type, self.raw)

    @property
    def scalar_format(self) -> str | None:
        """The struct format of a scalar value, `None` for strings and arrays."""
        return _SCALAR.get(self.type)


@dataclass(frozen=True)
class GGUFMetadata:
    """The metadata of one GGUF file, read without touching tensor data.

    Args:
        path (`Path`): the file.
        version (`int`): the GGUF version.
        fields (`Mapping[str, GGUFField]`): key/values in file order.
        tensor_count (`int`): number of tensors.
        infos_offset (`int`): where the tensor infos start (right after the metadata).
        infos_end (`int`): where they end.
        data_offset (`int`): where tensor data starts (aligned).
        alignment (`int`): the data alignment.
        size (`int`): the file size.
    """

    path: Path
    version: int
    fields: Mapping[str, GGUFField]
    tensor_count: int
    infos_offset: int
    infos_end: int
    data_offset: int
    alignment: int
    size: int

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default`."""
        field = self.fields.get(key)
        return default if field is None else field.value

    def int_value(self, key: str) -> int | None:
        """An integer value (`None` when absent or not an integer)."""
        value = self.get(key)
        return value if type(value) is int else None

    @property
    def architecture(self) -> str | None:
        """`general.architecture`."""
        value = self.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def chat_template(self) -> str | None:
        """`tokenizer.chat_template`, or `None`."""
        value = self.get(KEY_TEMPLATE)
        return value if isinstance(value, str) else None

    def named_templates(self) -> dict[str, str]:
        """`tokenizer.chat_template.<name>` templates (named templates a converter kept)."""
        prefix = KEY_TEMPLATE + "."
        return {
            key[len(prefix) :]: field.value
            for key, field in self.fields.items()
            if key.startswith(prefix) and isinstance(field.value, str)
        }

    @property
    def tokens(self) -> list[str]:
        """`tokenizer.ggml.tokens` (empty when absent)."""
        value = self.get(KEY_TOKENS)
        return list(value) if isinstance(value, list) else []

    @property
    def token_types(self) -> list[int]:
        """`tokenizer.ggml.token_type` (empty when absent)."""
        value = self.get(KEY_TOKEN_TYPE)
        return list(value) if isinstance(value, list) else []

    def token(self, token_id: int | None) -> str | None:
        """The text of a token id, or `None` when out of range."""
        tokens = self.tokens
        if token_id is None or not 0 <= token_id < len(tokens):
            return None
        return tokens[token_id]

    def special_vocabulary(self) -> dict[str, int]:
        """Control and user-defined tokens (what templates print), text -> id.

        `[PAD<id>]` fillers, which converters append up to the embedding size, are left out.
        """
        types = self.token_types
        return {
            text: i
            for i, text in enumerate(self.tokens)
            if i < len(types)
            and types[i] in (TOKEN_CONTROL, TOKEN_USER_DEFINED)
            and not is_padding(i, text)
        }

    def read_prefix(self) -> bytes:
        """The bytes before the tensor data: header, metadata, tensor infos and padding."""
        with self.path.open("rb") as handle:
            data = handle.read(self.data_offset)
        if len(data) != self.data_offset:
            raise InvalidCheckpointError(self.path, "truncated GGUF metadata")
        return data


def _decode(kind: int, item: int | None, raw: bytes) -> Any:
    if kind == STRING:
        return raw[8:].decode("utf-8", errors="replace")
    if kind in _SCALAR:
        value = struct.unpack_from(_SCALAR[kind], raw)[0]
        return bool(value) if kind == BOOL else value
    assert kind == ARRAY
    assert item is not None
    (count,) = struct.unpack_from("<Q", raw, 4)
    if item == STRING:
        out, pos = [], 12
        for _ in range(count):
            (length,) = struct.unpack_from("<Q", raw, pos)
            out.append(raw[pos + 8 : pos + 8 + length].decode("utf-8", errors="replace"))
            pos += 8 + length
        return out
    if item in _SCALAR:
        fmt = _SCALAR[item]
        values = list(struct.unpack_from(f"<{count}{fmt[1]}", raw, 12))
        return [bool(v) for v in values] if item == BOOL else values
    return None  # nested arrays: not used by any key ftfix reads


class _Cursor:
    """Bounds-checked reads from the start of a GGUF file."""

    def __init__(self, data: Any, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def damaged(self, what: str) -> InvalidCheckpointError:
        return InvalidCheckpointError(self.path, f"damaged GGUF metadata: {what}")

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise self.damaged(f"ends inside the metadata (offset {self.pos})")
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def skip(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.data):
            raise self.damaged(f"ends inside the metadata (offset {self.pos})")
        self.pos += size

    def string(self) -> str:
        length = self.take("<Q")
        start = self.pos
        self.skip(length)
        return bytes(self.data[start : self.pos]).decode("utf-8", errors="replace")

    def value(self, kind: int, depth: int = 0) -> None:
        """Skip one value of `kind` (checking its bounds)."""
        if kind == STRING:
            self.skip(self.take("<Q"))
        elif kind in _SCALAR:
            self.skip(struct.calcsize(_SCALAR[kind]))
        elif kind == ARRAY and depth < 2:
            item, count = self.take("<I"), self.take("<Q")
            if item in _SCALAR:
                self.skip(count * struct.calcsize(_SCALAR[item]))
            else:
                if count > len(self.data):
                    raise self.damaged(f"array of {count} items")
                for _ in range(count):
                    self.value(item, depth + 1)
        else:
            raise self.damaged(f"unknown value type {kind} at offset {self.pos}")


def parse_gguf(data: Any, path: Path, size: int) -> GGUFMetadata:
    """Parse the metadata at the start of `data` (the file, mapped, or just its prefix).

    Raises:
        `InvalidCheckpointError`: bad magic, a big-endian or unknown version, or a damaged
            metadata section.
    """
    cur = _Cursor(data, path)
    if bytes(data[:4]) != _MAGIC:
        raise InvalidCheckpointError(path, "not a GGUF file (bad magic)", hint="pass a .gguf file")
    cur.skip(4)
    version = cur.take("<I")
    if version & 0xFFFF == 0:
        raise InvalidCheckpointError(path, "big-endian GGUF files are not supported")
    if version not in (2, 3):
        raise InvalidCheckpointError(path, f"GGUF version {version} is not supported")
    tensor_count, kv_count = cur.take("<Q"), cur.take("<Q")
    if kv_count > 1_000_000 or tensor_count > 10_000_000:
        raise cur.damaged(f"{kv_count} keys, {tensor_count} tensors")
    fields: dict[str, GGUFField] = {}
    for _ in range(kv_count):
        offset = cur.pos
        key = cur.string()
        kind = cur.take("<I")
        value_offset = cur.pos
        item = None
        if kind == ARRAY:
            item = cur.take("<I")
            cur.pos = value_offset
        cur.value(kind)
        fields[key] = GGUFField(
            key, kind, offset, cur.pos - offset, value_offset, item,
            bytes(data[value_offset : cur.pos]),
        )  # fmt: skip
    infos_offset = cur.pos
    for _ in range(tensor_count):
        cur.string()
        dims = cur.take("<I")
        if dims > 8:
            raise cur.damaged(f"tensor with {dims} dimensions")
        cur.skip(8 * dims + 4 + 8)
    infos_end = cur.pos
    alignment = fields["general.alignment"].value if "general.alignment" in fields else 32
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise cur.damaged(f"alignment {alignment!r}")
    data_offset = -(-infos_end // alignment) * alignment
    if data_offset > MAX_PREFIX:
        raise InvalidCheckpointError(path, f"GGUF metadata of {data_offset} bytes: too large")
    return GGUFMetadata(
        path=path,
        version=version,
        fields=fields,
        tensor_count=tensor_count,
        infos_offset=infos_offset,
        infos_end=infos_end,
        data_offset=data_offset,
        alignment=alignment,
        size=size,
    )


def read_gguf(path: str | os.PathLike[str]) -> GGUFMetadata:
    """Read the metadata of the GGUF file at `path` (tensor data is never read).

    The file is memory-mapped and only its metadata pages are touched. The `gguf` package's
    `GGUFReader` reads the same fields (a test compares them) but builds one array view per
    string: 30 s and more on a Llama-3-sized vocabulary with its merges, against well under a
    second here.

    Raises:
        `CheckpointNotFoundError`: the file does not exist.
        `InvalidCheckpointError`: not a GGUF file, a big-endian one, or a damaged header.
    """
    file = Path(os.fspath(path))
    if not file.is_file():
        raise CheckpointNotFoundError(file, "GGUF file not found", hint="check the path")
    try:
        with file.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 24:
                raise InvalidCheckpointError(file, "not a GGUF file (too short)")
            with (
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
                memoryview(mapped) as view,
            ):
                return parse_gguf(view, file, size)
    except OSError as exc:
        raise InvalidCheckpointError(file, f"cannot read: {exc.strerror or exc}") from exc
