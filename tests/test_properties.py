"""Property tests: JSON edits are minimal, and commit/undo round-trips any small set of files.

Hypothesis runs a bounded set of examples (a few seconds), freshly random each run so the suite
keeps exploring; a failure prints the `@reproduce_failure` blob to replay it. No example database
is kept in the checkout.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from ckpt_builders import tree_digest, write_safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftfix import write
from ftfix.analysis.edits import edit_json
from ftfix.findings import FileEdit, TensorRowsEdit, sha256_hex
from ftfix.io.checkpoint import Checkpoint, Kind
from ftfix.io.safetensors import SafetensorsFile
from ftfix.write import STATE_DIR

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=False,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ------------------------------------------------------------------------ JSON edits
keys = st.text(alphabet=string.ascii_letters + string.digits + "_-é中", min_size=1, max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=12)  # quotes, backslashes, control characters, non-ASCII
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
objects = st.dictionaries(keys, values, min_size=1, max_size=7)
formats = st.fixed_dictionaries(
    {
        "indent": st.sampled_from([2, 4, None]),
        "sort_keys": st.booleans(),
        "ensure_ascii": st.booleans(),
        "newline": st.booleans(),
    }
)


def _dump(value: dict, fmt: dict) -> bytes:
    text = json.dumps(
        value, indent=fmt["indent"], sort_keys=fmt["sort_keys"], ensure_ascii=fmt["ensure_ascii"]
    )
    return (text + ("\n" if fmt["newline"] else "")).encode("utf-8")


def _member(key: str, value: object, fmt: dict) -> str:
    """How one top-level `"key": value` member is written in a file of format `fmt`."""
    whole = json.dumps({key: value}, indent=fmt["indent"], ensure_ascii=fmt["ensure_ascii"])
    if fmt["indent"] is None:
        return whole[1:-1]
    return "\n".join(whole.split("\n")[1:-1])


@st.composite
def json_edits(draw):
    """A JSON file (object, format) and top-level updates/removals to apply to it."""
    original = draw(objects)
    if draw(st.booleans()):
        original = dict(sorted(original.items()))
    fmt = draw(formats)
    present = sorted(original)
    changed = draw(st.lists(st.sampled_from(present), unique=True, max_size=3))
    updates = {key: draw(values) for key in changed}
    updates.update(draw(st.dictionaries(keys, values, max_size=2)))
    removable = [k for k in present if k not in updates]
    remove: tuple[str, ...] = ()
    if removable:
        remove = tuple(draw(st.lists(st.sampled_from(removable), unique=True, max_size=2)))
    return original, fmt, updates, remove


def _target(rel: str, data: bytes) -> Checkpoint:
    # A view whose only file is `rel` (planned bytes, never on disk): edit_json reads it there.
    return Checkpoint(Path("/nonexistent"), Kind.TOKENIZER, overlay={rel: data})


@SETTINGS
@given(json_edits())
def test_json_edits_are_minimal(case):
    """Only the changed keys differ; the rest keep their bytes, order and the file's format."""
    original, fmt, updates, remove = case
    before = _dump(original, fmt)
    parsed = json.loads(before)  # what the file holds (sort_keys may have reordered it)
    edit = edit_json(_target("config.json", before), "config.json", updates, remove=remove)

    expected = {k: v for k, v in parsed.items() if k not in remove}
    expected.update(updates)
    if expected == parsed:
        assert edit is None  # nothing changes: the file is not rewritten at all
        return
    assert edit is not None and edit.before == before
    after_text = edit.after.decode("utf-8")
    after = json.loads(after_text)
    assert after == expected
    kept = [k for k in parsed if k in after]
    assert [k for k in after if k in kept] == kept  # existing keys keep their order
    added = [k for k in after if k not in parsed]
    if len(parsed) > 1 and list(parsed) == sorted(parsed):
        assert list(after) == sorted(after)  # a sorted file stays sorted
    else:
        assert added == [k for k in updates if k not in parsed]  # new keys go last
    for key in kept:
        if after[key] == parsed[key] and json.dumps(after[key]) == json.dumps(parsed[key]):
            assert _member(key, parsed[key], fmt) in after_text, key  # same bytes as before
    assert after_text.endswith("\n") == fmt["newline"]
    if fmt["indent"] is not None and len(after) > 0:
        assert after_text.startswith("{\n" + " " * fmt["indent"] + '"')
    # Applying the same edit again changes nothing.
    again = edit_json(_target("config.json", edit.after), "config.json", updates, remove=remove)
    assert again is None


# ------------------------------------------------------------------- commit and undo
NAMES = ["a.json", "b.txt", "c.jinja", "sub/d.json", "sub/deeper/e.txt", "new/f.txt", "g.bin"]
contents = st.binary(max_size=300)


@st.composite
def file_sets(draw):
    """Files on disk (some symlinked to blobs outside), and edits to some of them."""
    existing = draw(st.dictionaries(st.sampled_from(NAMES), contents, max_size=len(NAMES)))
    links = draw(st.lists(st.sampled_from(sorted(existing) or ["-"]), unique=True, max_size=2))
    targets = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=5))
    edits = {}
    for rel in targets:
        after = draw(contents)
        if existing.get(rel) == after:
            after += b"!"
        edits[rel] = after
    return existing, [rel for rel in links if rel in existing], edits, draw(st.booleans())


def _snapshot(root: Path) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """File digests, folders, and symlink targets: the whole visible state of the folder."""
    folders = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())
    links = {str(p.relative_to(root)): os.readlink(p) for p in root.rglob("*") if p.is_symlink()}
    return tree_digest(root), folders, links


@pytest.fixture
def fast_fsync(monkeypatch):
    """Real fsyncs cost milliseconds each; durability is not the property tested here."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@SETTINGS
@given(file_sets())
def test_commit_then_undo_round_trips_any_file_set(fast_fsync, case):
    """Commit writes exactly the edits; undo restores every byte, folder and symlink."""
    existing, links, edits, backup = case
    with tempfile.TemporaryDirectory() as tmp:
        root, blobs = Path(tmp) / "ckpt", Path(tmp) / "blobs"
        root.mkdir()
        blobs.mkdir()
        for rel, data in existing.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if rel in links:
                blob = blobs / rel.replace("/", "_")
                blob.write_bytes(data)
                path.symlink_to(blob)
            else:
                path.write_bytes(data)
        before = _snapshot(root)
        blob_state = tree_digest(blobs)
        planned = [FileEdit(rel, existing.get(rel), after) for rel, after in edits.items()]

        result = write.commit(root, planned, backup=backup)
        assert sorted(result.written) == sorted(edits)
        digests = tree_digest(root)
        for rel, data in existing.items():
            if rel not in edits:
                assert digests[rel] == sha256_hex(data)  # untouched files keep their bytes
        for rel, after in edits.items():
            assert (root / rel).read_bytes() == after and not (root / rel).is_symlink()
        assert tree_digest(blobs) == blob_state  # never written through a symlink
        assert not list(root.rglob("*.ftfix-tmp"))
        if not backup:
            assert not (root / STATE_DIR).exists()
            return
        assert write.recover(root) == []  # a completed repair leaves nothing to recover
        assert sorted(write.undo(root)) == sorted(edits)
        assert _snapshot(root) == before
        assert tree_digest(blobs) == blob_state


@st.composite
def row_patches(draw):
    """A small tensor, and sets of its rows rewritten with random bytes."""
    rows, cols = draw(st.integers(2, 12)), draw(st.integers(1, 6))
    # Edits alternate between tensors "a" and "b"; rows of one tensor are never edited twice
    # (ftfix plans one edit per row), so draw disjoint row sets per tensor instead of discarding.
    count = draw(st.integers(1, 3))
    free = {"a": list(range(rows)), "b": list(range(rows))}
    patches = []
    for i in range(count):
        pool = free["ab"[i % 2]]
        if not pool:
            break
        picked = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1, max_size=len(pool)))
        patches.append(tuple(sorted(picked)))
        pool[:] = [r for r in pool if r not in picked]
    seed = draw(st.integers(0, 2**16))
    dtype = draw(st.sampled_from(["F32", "F16", "BF16"]))
    return rows, cols, patches, seed, dtype


@SETTINGS
@given(row_patches())
def test_row_patches_round_trip(fast_fsync, case):
    """Rows patched in place (several edits, several tensors) are undone byte for byte."""
    rows, cols, patches, seed, dtype = case
    rng = np.random.default_rng(seed)
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tensors = {
            name: (dtype, (rows, cols), rng.bytes(rows * cols * size)) for name in ("a", "b")
        }
        write_safetensors(root / "model.safetensors", tensors)
        original = (root / "model.safetensors").read_bytes()
        file = SafetensorsFile.open(root / "model.safetensors")
        planned = []
        for i, picked in enumerate(patches):
            name = "ab"[i % 2]
            data = rng.bytes(len(picked) * cols * size)
            before = sha256_hex(file.read_raw_rows(name, picked))
            planned.append(TensorRowsEdit("model.safetensors", name, picked, data, before))
        distinct = {(e.tensor, r) for e in planned for r in e.rows}
        assert len(distinct) == sum(len(e.rows) for e in planned)  # the strategy's promise
        write.commit(root, [], planned)
        patched = SafetensorsFile.open(root / "model.safetensors")
        for edit in planned:
            assert patched.read_raw_rows(edit.tensor, edit.rows) == edit.data
        write.undo(root)
        assert (root / "model.safetensors").read_bytes() == original
        assert sorted(p.name for p in root.iterdir()) == ["model.safetensors"]
