"""safetensors_io: header validation and row reads that touch only the rows asked for."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from ckpt_builders import build_weights, read_tensor

from ftfix.errors import InvalidCheckpointError
from ftfix.io.safetensors import SafetensorsFile, rows_from_float32, rows_to_float32


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_rows_match_the_whole_tensor(tmp_path, dtype):
    """Rows read through pread equal the same rows of the tensor read whole."""
    build_weights(tmp_path, vocab_size=20, dtype=dtype, seed=3)
    file = SafetensorsFile.open(tmp_path / "model.safetensors")
    whole = read_tensor(tmp_path / "model.safetensors", "model.embed_tokens.weight")
    rows = file.read_rows("model.embed_tokens.weight", [0, 7, 19])
    np.testing.assert_array_equal(rows, whole[[0, 7, 19]].astype(np.float32))


def test_bf16_round_trip():
    """Encoding float32 to BF16 and back keeps values representable in BF16 exactly."""
    values = np.array([[1.0, -2.5, 0.0078125, 3.0e-3]], dtype=np.float32)
    data = rows_from_float32(values, "BF16")
    back = rows_to_float32(data, "BF16", values.shape)
    np.testing.assert_allclose(back, values, rtol=1e-2)
    assert (
        rows_to_float32(rows_from_float32(back, "BF16"), "BF16", values.shape).tolist()
        == back.tolist()
    )


def _write_raw(path, header: dict, payload: bytes = b"", header_len: int | None = None) -> None:
    raw = json.dumps(header).encode()
    length = len(raw) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", length) + raw + payload)


@pytest.mark.parametrize(
    ("header", "payload", "header_len", "reason"),
    [
        pytest.param(None, b"", None, "truncated", id="truncated"),
        pytest.param({}, b"", 10**6, "larger than the file", id="header-len-past-eof"),
        pytest.param({}, b"", 200 * 1024 * 1024, "exceeds the 100 MiB limit", id="huge-header"),
        pytest.param({"t": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"x", None,
                     "unsupported dtype", id="unknown-dtype"),
        pytest.param({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"1234", None,
                     "needs 8", id="size-mismatch"),
        pytest.param({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"1234", None,
                     "past the end of the file", id="offset-out-of-bounds"),
        pytest.param({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                     b"12345678", None, "overlap", id="overlapping"),
        pytest.param({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"1234", None,
                     "invalid shape", id="negative-shape"),
    ],
)  # fmt: skip
def test_bad_headers(tmp_path, header, payload, header_len, reason):
    """Each malformed header is rejected with a reason naming the problem."""
    path = tmp_path / "model.safetensors"
    if header is None:
        path.write_bytes(b"\x01\x02")
    else:
        _write_raw(path, header, payload, header_len)
    with pytest.raises(InvalidCheckpointError, match=reason):
        SafetensorsFile.open(path)


def test_header_not_json(tmp_path):
    """A header that is not JSON is reported as such."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b"nope")
    with pytest.raises(InvalidCheckpointError, match="not valid JSON"):
        SafetensorsFile.open(path)
