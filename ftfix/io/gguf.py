"""Read the metadata of a GGUF file (llama.cpp's format) with the `gguf` package; never tensors.

A GGUF file is a prefix (magic, version, counts, key/value metadata, tensor infos, padding to
the alignment) followed by the tensor data. ftfix reads and edits only the prefix: tensor
offsets are relative to the start of the data, so a rewritten prefix (padded to the same
alignment) leaves every tensor byte where the offsets say.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointNotFoundError, InvalidCheckpointError, UsageError

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


def is_gguf_path(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a GGUF file (by its suffix, or its magic when it is a file)."""
    text = os.fspath(path)
    if text.lower().endswith(".gguf"):
        return True
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
        value (`Any`): the decoded value (a list for arrays).
        offset (`int`): where the key/value starts in the file.
        size (`int`): its length in bytes (key, type and value).
        value_offset (`int`): where the value starts (for scalars: the bytes to patch).
        item_type (`int`, *optional*): the element type of an array.
    """

    key: str
    type: int
    value: Any
    offset: int
    size: int
    value_offset: int
    item_type: int | None = None

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
        """Control and user-defined tokens (what templates print), text -> id."""
        types = self.token_types
        return {
            text: i
            for i, text in enumerate(self.tokens)
            if i < len(types) and types[i] in (TOKEN_CONTROL, TOKEN_USER_DEFINED)
        }

    def read_prefix(self) -> bytes:
        """The bytes before the tensor data: header, metadata, tensor infos and padding."""
        with self.path.open("rb") as handle:
            data = handle.read(self.data_offset)
        if len(data) != self.data_offset:
            raise InvalidCheckpointError(self.path, "truncated GGUF metadata")
        return data


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def read_gguf(path: str | os.PathLike[str]) -> GGUFMetadata:
    """Read the metadata of the GGUF file at `path` (tensor data is never read).

    Raises:
        `CheckpointNotFoundError`: the file does not exist.
        `InvalidCheckpointError`: not a GGUF file, a big-endian one, or a damaged header.
        `UsageError`: the `gguf` package is not installed (`pip install ftfix[gguf]`).
    """
    file = Path(os.fspath(path))
    if not file.is_file():
        raise CheckpointNotFoundError(file, "GGUF file not found", hint="check the path")
    try:
        from gguf import GGUFReader, GGUFValueType
    except ImportError as exc:  # pragma: no cover - the extra is installed in development
        raise UsageError(
            "gguf", "reading GGUF files needs the gguf package", hint="pip install 'ftfix[gguf]'"
        ) from exc
    with file.open("rb") as handle:
        head = handle.read(8)
    if head[:4] != _MAGIC:
        raise InvalidCheckpointError(file, "not a GGUF file (bad magic)", hint="pass a .gguf file")
    try:
        reader = GGUFReader(file, "r")
    except (ValueError, KeyError, IndexError, OSError, OverflowError) as exc:
        raise InvalidCheckpointError(file, f"cannot read GGUF metadata: {exc}") from exc
    try:
        if reader.byte_order != "I" or struct.unpack("<I", head[4:8])[0] & 0xFFFF == 0:
            raise InvalidCheckpointError(file, "big-endian GGUF files are not supported")
        fields: dict[str, GGUFField] = {}
        version = 0
        counts: dict[str, int] = {}
        for name, field in reader.fields.items():
            if name.startswith("GGUF."):
                number = int(field.parts[field.data[0]][0])
                if name == "GGUF.version":
                    version = number
                else:
                    counts[name] = number
                continue
            kind = int(field.types[0]) if field.types else -1
            item = int(field.types[-1]) if kind == GGUFValueType.ARRAY else None
            raw = field.contents()
            value: Any = [_decode(v) for v in raw] if isinstance(raw, list) else _decode(raw)
            if hasattr(value, "item"):
                value = value.item()
            if kind == GGUFValueType.BOOL:
                value = bool(value)
            size = sum(int(p.nbytes) for p in field.parts)
            key_bytes = int(field.parts[0].nbytes + field.parts[1].nbytes)
            fields[name] = GGUFField(
                key=name,
                type=kind,
                value=value,
                offset=int(field.offset),
                size=size,
                value_offset=int(field.offset) + key_bytes + 4,
                item_type=item,
            )
        infos = [t.field for t in reader.tensors]
        last_kv = max((f.offset + f.size for f in fields.values()), default=24)
        infos_offset = int(infos[0].offset) if infos else last_kv
        infos_end = (
            int(infos[-1].offset) + sum(int(p.nbytes) for p in infos[-1].parts)
            if infos
            else infos_offset
        )
        meta = GGUFMetadata(
            path=file,
            version=version,
            fields=fields,
            tensor_count=counts.get("GGUF.tensor_count", len(infos)),
            infos_offset=infos_offset,
            infos_end=infos_end,
            data_offset=int(reader.data_offset),
            alignment=int(reader.alignment),
            size=file.stat().st_size,
        )
    finally:
        mapped = getattr(reader.data, "_mmap", None)
        del reader
        if mapped is not None:
            with contextlib.suppress(BufferError, ValueError):
                mapped.close()
    if meta.data_offset > MAX_PREFIX:
        raise InvalidCheckpointError(
            file, f"GGUF metadata of {meta.data_offset} bytes is too large"
        )
    return meta
