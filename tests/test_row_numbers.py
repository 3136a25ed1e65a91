"""Numbers checked against values computed here, not against ftfix's own computation.

The mean that initialises rows is recomputed with plain numpy from the file's rows; zero rows and
rows being re-initialised must not leak into it. The safetensors reader's boundaries (last row,
one past it, a tensor ending at or one byte past the end of the file) and the row sample's limit
are each pinned.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from ckpt_builders import BASE_VOCAB_SIZE, TOKEN_IDS, write_safetensors
from test_embeddings import EMBED, EOT, HEADER, get_rows

import ftfix
from ftfix.analysis import embeddings as emb
from ftfix.errors import InvalidCheckpointError
from ftfix.io.safetensors import SafetensorsFile

UNUSED_ZERO = TOKEN_IDS["<|reserved_special_token_0|>"]  # untrained, unused: must not count


def test_repair_initialises_rows_to_the_mean_of_trained_rows(make_checkpoint):
    """Rows set by `--unsafe-fixes` equal numpy's mean of the other, non-zero rows."""
    broken = [EOT, HEADER]
    base = make_checkpoint("base", zero_rows=[UNUSED_ZERO])
    ft = make_checkpoint("ft", zero_rows=[*broken, UNUSED_ZERO])
    rows = get_rows(ft, EMBED, range(BASE_VOCAB_SIZE))
    norms = np.linalg.norm(rows, axis=1)
    # Ordinary tokens only: added/special tokens are what is judged, not the reference.
    added = {t["id"] for t in json.loads((ft / "tokenizer.json").read_text())["added_tokens"]}
    trained = [i for i in range(BASE_VOCAB_SIZE) if norms[i] > 0 and i not in added]
    assert set(broken) <= added and UNUSED_ZERO in added
    expected = rows[trained].astype(np.float64).mean(axis=0)
    leaked = rows[[*trained, *broken]].astype(np.float64).mean(axis=0)
    assert not np.allclose(expected, leaked, rtol=1e-3)  # the test can tell them apart

    report = ftfix.repair(base, ft, select=["FTX102"], unsafe_fixes=True)
    assert report.applied, report.render_text()
    after = get_rows(ft, EMBED, broken)
    np.testing.assert_allclose(after, np.stack([expected] * len(broken)), rtol=1e-5, atol=1e-6)


class _Rows(emb.RowSource):
    """An in-memory matrix as a row source."""

    def __init__(self, values: np.ndarray):
        super().__init__("input", "embed", values.shape[0], values.shape[1], "F32")
        self.values = values

    def read(self, ids):
        return self.values[list(ids)]


@pytest.mark.parametrize(
    ("untrained", "scale"),
    [(range(20), 0.0), (range(1), 1e-6)],
    ids=["zero-rows", "near-zero-row-below-the-1%-quantile"],
)
def test_row_stats_mean_skips_untrained_rows(untrained, scale):
    """The mean is over ordinary rows only: zero rows, and rows far below the rest, stay out."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 16)).astype(np.float32)
    values[list(untrained)] *= scale
    stats = emb.row_stats(_Rows(values), 200, exclude=[])
    assert stats is not None and stats.sampled == 200
    expected = np.delete(values, list(untrained), axis=0).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(stats.mean, expected, rtol=1e-5, atol=1e-6)


def test_row_stats_excludes_what_it_is_told_to():
    """Excluded ids (the tokens under judgement) never enter the sample or the mean."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(64, 8)).astype(np.float32)
    values[[3, 5]] = 1000.0  # huge rows: leaking them would move the mean far
    stats = emb.row_stats(_Rows(values), 64, exclude=[3, 5])
    expected = np.delete(values, [3, 5], axis=0).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(stats.mean, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("population", "limit"), [(1000, 100), (5000, 2048), (17, 16), (150, 100), (101, 100)]
)
def test_sample_ids_respects_the_limit(population, limit):
    """At most `limit` distinct, sorted ids, all in range and none excluded."""
    exclude = set(range(0, population, 7))
    ids = emb.sample_ids(population, exclude, limit)
    allowed = population - len(exclude)
    assert len(ids) == min(limit, allowed)
    assert ids == sorted(set(ids))
    assert all(0 <= i < population and i not in exclude for i in ids)
    assert emb.sample_ids(population, exclude, limit) == ids  # deterministic


def test_sample_ids_takes_everything_under_the_limit():
    """A population no larger than the limit is sampled whole."""
    assert emb.sample_ids(10, [2], 9) == [0, 1, 3, 4, 5, 6, 7, 8, 9]


# ------------------------------------------------------------------ safetensors boundaries
def _tensor_file(tmp_path, rows=4, cols=3):
    data = np.arange(rows * cols, dtype=np.float32).tobytes()
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"w": ("F32", (rows, cols), data)})
    return path


def test_last_row_reads_and_one_past_it_raises(tmp_path):
    """Row `rows - 1` is the last readable row; row `rows` is out of range."""
    file = SafetensorsFile.open(_tensor_file(tmp_path))
    last = np.frombuffer(file.read_raw_rows("w", [3]), dtype=np.float32)
    assert last.tolist() == [9.0, 10.0, 11.0]
    with pytest.raises(IndexError):
        file.info("w").row_offset(4)
    with pytest.raises(IndexError):
        file.info("w").row_offset(-1)


def test_tensor_ending_at_the_end_of_the_file_is_valid(tmp_path):
    """Data that ends exactly at the last byte is accepted."""
    path = _tensor_file(tmp_path)
    assert SafetensorsFile.open(path).info("w").end == path.stat().st_size


def test_tensor_ending_one_byte_past_the_file_is_refused(tmp_path):
    """Data declared to end one byte after the end of the file is a clear error."""
    path = _tensor_file(tmp_path)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 1)
    with pytest.raises(InvalidCheckpointError, match="past the end of the file"):
        SafetensorsFile.open(path)


def _raw_safetensors(path, header: dict, buffer: bytes) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + buffer)


def test_tensors_overlapping_by_one_byte_are_refused(tmp_path):
    """Two tensors sharing one byte of the data buffer: a clear error, not a silent alias."""
    path = tmp_path / "t.safetensors"
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [7, 11]},
    }
    _raw_safetensors(path, header, bytes(11))
    with pytest.raises(InvalidCheckpointError, match="overlap"):
        SafetensorsFile.open(path)
    header["b"]["data_offsets"] = [8, 12]  # adjacent, not overlapping: fine
    _raw_safetensors(path, header, bytes(12))
    assert set(SafetensorsFile.open(path).tensors) == {"a", "b"}
