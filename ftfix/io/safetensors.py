"""Read safetensors headers and single tensor rows without torch and without reading whole files."""

from __future__ import annotations

import itertools
import json
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from ..errors import InvalidCheckpointError

__all__ = [
    "DTYPE_SIZES",
    "ByteSource",
    "SafetensorsFile",
    "TensorInfo",
    "rows_from_float32",
    "rows_to_float32",
]

# Element sizes of the dtypes safetensors defines; 4-bit and 6-bit float formats are not
# addressable by row here and are rejected as unsupported rather than misread.
DTYPE_SIZES: Mapping[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_FLOAT_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit safetensors itself enforces


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file.

    Args:
        name (`str`): tensor name.
        dtype (`str`): safetensors dtype code, e.g. `BF16`.
        shape (`tuple[int, ...]`): tensor shape.
        start (`int`): absolute file offset of the first byte.
        end (`int`): absolute file offset one past the last byte.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (first dimension) of the tensor."""
        size = DTYPE_SIZES[self.dtype]
        for dim in self.shape[1:]:
            size *= dim
        return size

    def row_offset(self, row: int) -> int:
        """Absolute file offset of row `row`."""
        if not 0 <= row < (self.shape[0] if self.shape else 0):
            raise IndexError(
                f"row {row} out of range for {self.name} with shape {list(self.shape)}"
            )
        return self.start + row * self.row_bytes


class SafetensorsFile:
    """A validated, read-only view of a safetensors file's header.

    Opening reads only the 8-byte length and the JSON header. Every offset is checked against the
    file size, the dtype and the shape, so later row reads cannot run outside a tensor.

    Raises:
        `InvalidCheckpointError`: truncated file, oversized or non-JSON header, unknown dtype,
            offsets out of bounds or overlapping, or sizes that do not match dtype x shape.
    """

    def __init__(
        self,
        path: Path,
        tensors: Mapping[str, TensorInfo],
        metadata: Mapping[str, str],
        *,
        data: bytes | None = None,
        source: ByteSource | None = None,
    ):
        self.path = path
        self.tensors = dict(tensors)
        self.metadata = dict(metadata)
        # The whole file when it was given as bytes (a staged edit not yet on disk).
        self._data = data
        # Where the bytes are when they are not in `path` (a file on the Hub, by range requests).
        self._source = source

    @classmethod
    def from_bytes(cls, path: str | os.PathLike[str], data: bytes) -> SafetensorsFile:
        """Validate a safetensors file held in memory (`path` only names it in messages).

        Raises:
            `InvalidCheckpointError`: as `open`.
        """
        path = Path(path)
        hint = "the file is damaged or not safetensors; re-save it or copy it again from its source"
        if len(data) < 8:
            raise InvalidCheckpointError(
                path, f"truncated safetensors file ({len(data)} bytes, need at least 8)", hint=hint
            )
        (header_len,) = struct.unpack("<Q", data[:8])
        if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
            raise InvalidCheckpointError(
                path, f"safetensors header length {header_len} does not fit the file", hint=hint
            )
        try:
            header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidCheckpointError(
                path, "safetensors header is not valid JSON", hint=hint
            ) from exc
        if not isinstance(header, dict):
            raise InvalidCheckpointError(path, "safetensors header is not a JSON object", hint=hint)
        tensors, metadata = _parse_header(
            path, header, data_start=8 + header_len, size=len(data), hint=hint
        )
        return cls(path, tensors, metadata, data=data)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, source: ByteSource | None = None
    ) -> SafetensorsFile:
        """Read and validate the header of `path` (or of `source`, whose bytes `path` names)."""
        path = Path(path)
        hint = "the file is damaged or not safetensors; re-save it or copy it again from its source"
        try:
            size = path.stat().st_size if source is None else source.size
            with _Reader(path, source) as handle:
                prefix = handle.read(8)
                if len(prefix) < 8:
                    raise InvalidCheckpointError(
                        path,
                        f"truncated safetensors file ({size} bytes, need at least 8)",
                        hint=hint,
                    )
                (header_len,) = struct.unpack("<Q", prefix)
                if header_len > MAX_HEADER_BYTES:
                    raise InvalidCheckpointError(
                        path,
                        f"safetensors header of {header_len} bytes exceeds the 100 MiB limit",
                        hint=hint,
                    )
                if 8 + header_len > size:
                    raise InvalidCheckpointError(
                        path,
                        f"safetensors header length {header_len} is larger than the file "
                        f"({size} bytes)",
                        hint=hint,
                    )
                raw = handle.read(header_len)
        except OSError as exc:
            raise InvalidCheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # ValueError: bad JSON, or an integer of more than 4,300 digits; RecursionError:
            # nesting 100,000 deep.
            raise InvalidCheckpointError(
                path, "safetensors header is not valid JSON", hint=hint
            ) from exc
        if not isinstance(header, dict):
            raise InvalidCheckpointError(path, "safetensors header is not a JSON object", hint=hint)
        return cls(
            path,
            *_parse_header(path, header, data_start=8 + header_len, size=size, hint=hint),
            source=source,
        )

    def _pread(self, length: int, offset: int) -> bytes:
        if self._source is not None:
            return self._source.read(offset, length)
        with self.path.open("rb") as handle:
            return os.pread(handle.fileno(), length, offset)

    def info(self, name: str) -> TensorInfo:
        """The tensor called `name`; `KeyError` if absent."""
        return self.tensors[name]

    def read_rows(self, name: str, rows: Sequence[int]) -> np.ndarray[Any, Any]:
        """Read rows of a tensor as float32, touching only those rows' bytes.

        Args:
            name (`str`): tensor name.
            rows (`Sequence[int]`): row indices.

        Returns:
            `np.ndarray` of shape `(len(rows), *shape[1:])`, dtype float32.
        """
        info = self.tensors[name]
        raw = self.read_raw_rows(name, rows)
        if len(raw) != info.row_bytes * len(rows):
            raise InvalidCheckpointError(self.path, f"short read in tensor {name!r}")
        return rows_to_float32(raw, info.dtype, (len(rows), *info.shape[1:]))

    def read_bytes(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Raw bytes of tensor `name`: `length` bytes from byte `start` of it (default: all).

        Reads only those bytes (one `pread`), never the rest of the file.
        """
        info = self.tensors[name]
        size = info.end - info.start
        start = min(max(start, 0), size)
        length = size - start if length is None else min(max(length, 0), size - start)
        if self._data is not None:
            return self._data[info.start + start : info.start + start + length]
        data = self._pread(length, info.start + start)
        if len(data) != length:
            raise InvalidCheckpointError(self.path, f"short read in tensor {name!r}")
        return data

    def read_raw_rows(self, name: str, rows: Iterable[int]) -> bytes:
        """The bytes of `rows`, concatenated, in the order given.

        Runs of consecutive rows are read at once (one `pread`, or one range request for a
        file on the Hub).
        """
        info = self.tensors[name]
        order = list(rows)
        runs: list[tuple[int, int]] = []  # (first row, count)
        for row in order:
            info.row_offset(row)  # bounds check
            if runs and row == runs[-1][0] + runs[-1][1]:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((row, 1))
        chunks = []
        for first, count in runs:
            data = self._pread(info.row_bytes * count, info.row_offset(first))
            if len(data) != info.row_bytes * count:
                raise InvalidCheckpointError(
                    self.path, f"short read in tensor {name!r} row {first}"
                )
            chunks.append(data)
        return b"".join(chunks)


class ByteSource(Protocol):
    """Bytes of a file kept elsewhere (a file on the Hub): its size and a ranged read."""

    size: int

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset`."""
        ...


class _Reader:
    """Sequential reads from a file or a `ByteSource`, as a context manager."""

    def __init__(self, path: Path, source: ByteSource | None):
        self._path, self._source, self._pos = path, source, 0
        self._handle: BinaryIO | None = None

    def __enter__(self) -> _Reader:
        if self._source is None:
            self._handle = self._path.open("rb")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()

    def read(self, length: int) -> bytes:
        if self._handle is not None:
            return self._handle.read(length)
        assert self._source is not None
        data = self._source.read(self._pos, length)
        self._pos += len(data)
        return data


def _parse_header(
    path: Path, header: dict[str, Any], *, data_start: int, size: int, hint: str
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise InvalidCheckpointError(path, "safetensors __metadata__ is not an object", hint=hint)
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise InvalidCheckpointError(
                path, f"tensor {name!r}: header entry is not an object", hint=hint
            )
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise InvalidCheckpointError(
                path,
                f"tensor {name!r}: unsupported dtype {dtype!r}",
                hint="ftfix reads BOOL, U8-U64, I8-I64, F8, F16, BF16, F32 and F64 tensors",
            )
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise InvalidCheckpointError(
                path, f"tensor {name!r}: invalid shape {shape!r}", hint=hint
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise InvalidCheckpointError(
                path, f"tensor {name!r}: invalid data_offsets {offsets!r}", hint=hint
            )
        nbytes = DTYPE_SIZES[dtype]
        for dim in shape:
            nbytes *= dim
        begin, end = data_start + offsets[0], data_start + offsets[1]
        if end - begin != nbytes:
            raise InvalidCheckpointError(
                path,
                f"tensor {name!r}: data_offsets span {end - begin} bytes but {dtype} x {shape} "
                f"needs {nbytes}",
                hint=hint,
            )
        if end > size:
            raise InvalidCheckpointError(
                path,
                f"tensor {name!r}: data ends at byte {end}, past the end of the file ({size})",
                hint=hint,
            )
        tensors[name] = TensorInfo(name, dtype, tuple(shape), begin, end)
    spans = sorted((t.start, t.end, t.name) for t in tensors.values() if t.end > t.start)
    for (_, prev_end, prev), (start, _, name) in itertools.pairwise(spans):
        if start < prev_end:
            raise InvalidCheckpointError(
                path, f"tensors {prev!r} and {name!r} overlap in the data buffer", hint=hint
            )
    # safetensors itself (and so transformers) refuses a buffer the tensors do not cover
    # exactly, from its first byte to the end of the file ("MetadataIncompleteBuffer").
    covered = data_start
    for start, end, name in spans:
        if start > covered:
            raise InvalidCheckpointError(
                path,
                f"{start - covered} unused bytes before the data of tensor {name!r}: "
                "safetensors refuses the file (incomplete metadata)",
                hint=hint,
            )
        covered = max(covered, end)
    if covered != size:
        raise InvalidCheckpointError(
            path,
            f"{size - covered} bytes after the last tensor's data: safetensors refuses the file "
            "(incomplete metadata)",
            hint=hint,
        )
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def rows_to_float32(data: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Decode raw little-endian tensor bytes to float32 (BF16 by widening its 16 bits)."""
    if dtype == "BF16":
        half = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        return half.view(np.float32).reshape(shape)
    if dtype in _FLOAT_DTYPES:
        return np.frombuffer(data, dtype=_FLOAT_DTYPES[dtype]).astype(np.float32).reshape(shape)
    raise ValueError(f"rows of dtype {dtype} are not floating point")


def rows_from_float32(values: np.ndarray[Any, Any], dtype: str) -> bytes:
    """Encode float32 values as raw little-endian bytes of `dtype` (BF16 rounds to nearest even)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "BF16":
        bits = values.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return rounded.astype("<u2").tobytes()
    if dtype in _FLOAT_DTYPES:
        return values.astype(_FLOAT_DTYPES[dtype]).tobytes()
    raise ValueError(f"cannot write float rows as {dtype}")
