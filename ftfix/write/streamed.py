"""Streamed shard rewrites: grow tensors by inserting rows, and cut them out again on undo."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import (
    StaleEditError,
)
from ..findings import TensorResizeEdit, sha256_hex
from ..io.safetensors import SafetensorsFile
from .atomic import _replace_via_temp

logger = logging.getLogger(__name__)

# ------------------------------------------------------ growing a tensor (shape change)
# Written for the embedding rules (FTX101 grows `embed_tokens`/`lm_head` to the tokenizer's
# length). A shape change moves every later tensor, so the shard is rewritten: streamed in
# chunks (never held in memory) into a same-folder temp file, fsynced, then `os.replace`d. The
# record returned (`GrownShard`) is what undo needs: the original header, and where the new rows
# were inserted; removing them again gives the original file byte for byte.
_COPY_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class GrownShard:
    """What `rewrite_shard_with_grown_tensors` did to one file, enough to undo it exactly.

    Args:
        path (`str`): the file, relative to the checkpoint.
        header (`bytes`): the original 8-byte length prefix and JSON header.
        inserted (`tuple[tuple[int, int], ...]`): (offset in the rewritten file, length) of each
            run of appended rows.
        grown_header_sha256 (`str`): sha256 of the rewritten file's prefix and header.
        inserted_sha256 (`str`): sha256 of the inserted bytes, runs concatenated in order.
        before_sha256 (`str`): sha256 of the whole original file.
        after_sha256 (`str`): sha256 of the whole rewritten file.
    """

    path: str
    header: bytes
    inserted: tuple[tuple[int, int], ...]
    grown_header_sha256: str
    inserted_sha256: str
    before_sha256: str
    after_sha256: str

    def to_json(self, backup: str) -> dict[str, Any]:
        """The journal entry; the original header is stored in the file `backup`."""
        return {
            "path": self.path,
            "backup": backup,
            "inserted": [list(span) for span in self.inserted],
            "grown_header_sha256": self.grown_header_sha256,
            "inserted_sha256": self.inserted_sha256,
            "before_sha256": self.before_sha256,
            "after_sha256": self.after_sha256,
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any], header: bytes) -> GrownShard:
        """Read a journal entry back (its header from the backup file)."""
        return cls(
            path=str(entry["path"]),
            header=header,
            inserted=tuple((int(o), int(n)) for o, n in entry["inserted"]),
            grown_header_sha256=str(entry["grown_header_sha256"]),
            inserted_sha256=str(entry["inserted_sha256"]),
            before_sha256=str(entry["before_sha256"]),
            after_sha256=str(entry["after_sha256"]),
        )


def _read_header(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The raw prefix + header bytes and the parsed header (validated by `SafetensorsFile`)."""
    SafetensorsFile.open(path)
    with path.open("rb") as handle:
        prefix = handle.read(8)
        (length,) = struct.unpack("<Q", prefix)
        raw = handle.read(length)
    header: dict[str, Any] = json.loads(raw.decode("utf-8"))
    return prefix + raw, header


def shard_header_sha256(path: Path) -> str:
    """sha256 of a safetensors file's length prefix and JSON header (`TensorResizeEdit`)."""
    return sha256_hex(_read_header(path)[0])


def _copy_span(
    src: Any, dst: Any, start: int, end: int, hashes: Sequence[Any], *, write: bool = True
) -> None:
    """Copy bytes `start:end` of `src` to `dst` in bounded chunks, feeding `hashes`."""
    pos = start
    while pos < end:
        data = os.pread(src.fileno(), min(_COPY_CHUNK, end - pos), pos)
        if not data:
            raise OSError(errno.EIO, "unexpected end of file", src.name)
        for digest in hashes:
            digest.update(data)
        if write:
            dst.write(data)
        pos += len(data)


def _replace_streamed(path: Path, fill: Any) -> None:
    """Replace `path` atomically by a temp file that `fill(handle)` writes through a buffer."""

    def write(fd: int) -> None:
        with os.fdopen(fd, "wb", buffering=_COPY_CHUNK, closefd=False) as handle:
            fill(handle)
            handle.flush()

    _replace_via_temp(path, write, f"rewrote {path.name} into a temp file")


@dataclass(frozen=True)
class _Growth:
    """A planned shard rewrite: everything but the whole-file hashes, known before writing.

    The journal records it before the file is touched, so a crash mid-rewrite can be undone.
    """

    shard: GrownShard  # before_sha256 / after_sha256 are "" until the rewrite has run
    new_raw: bytes
    data_start: int
    size: int
    points: tuple[tuple[int, str], ...]
    inserts: dict[str, bytes]


def _plan_growth(path: Path, edits: Sequence[TensorResizeEdit], rel: str | None) -> _Growth:
    """The new header and where the new rows go; refuses stale or non-appended edits."""
    import hashlib

    raw, header = _read_header(path)
    if any(sha256_hex(raw) != e.before_sha256 for e in edits):
        raise StaleEditError(
            path,
            "changed since the repair was planned",
            hint="run ftfix again; nothing was written",
        )
    data_start = len(raw)
    inserts: dict[str, bytes] = {}
    for edit in edits:
        entry = header.get(edit.tensor)
        if not isinstance(entry, dict) or edit.tensor in inserts:
            raise ValueError(f"{path}: cannot grow {edit.tensor!r} (absent or listed twice)")
        shape = entry["shape"]
        row_bytes = SafetensorsFile.open(path).info(edit.tensor).row_bytes
        old = shape[0]
        appended = tuple(range(old, old + len(edit.rows)))
        if edit.rows != appended or len(edit.data) != len(edit.rows) * row_bytes:
            raise ValueError(f"{path}: rows of {edit.tensor!r} must be appended after row {old}")
        inserts[edit.tensor] = edit.data
    # (insert point in the old data buffer, tensor) in file order
    points = sorted((header[name]["data_offsets"][1], name) for name in inserts)
    new_header: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            new_header[name] = entry
            continue
        begin, end = entry["data_offsets"]
        shift = sum(len(inserts[o]) for point, o in points if point <= begin and o != name)
        grown = len(inserts.get(name, b""))
        updated = dict(entry)
        updated["data_offsets"] = [begin + shift, end + shift + grown]
        if grown:
            updated["shape"] = [entry["shape"][0] + len(_rows_of(edits, name)), *entry["shape"][1:]]
        new_header[name] = updated
    text = json.dumps(new_header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    new_raw = struct.pack("<Q", len(text)) + text
    spans, moved, inserted = [], 0, hashlib.sha256()
    for point, name in points:
        spans.append((len(new_raw) + point + moved, len(inserts[name])))
        moved += len(inserts[name])
        inserted.update(inserts[name])
    shard = GrownShard(
        path=rel or path.name,
        header=raw,
        inserted=tuple(spans),
        grown_header_sha256=sha256_hex(new_raw),
        inserted_sha256=inserted.hexdigest(),
        before_sha256="",
        after_sha256="",
    )
    return _Growth(shard, new_raw, data_start, path.stat().st_size, tuple(points), inserts)


def _stream_growth(path: Path, growth: _Growth) -> GrownShard:
    """Run a planned rewrite: stream the old file and the new rows into place, atomically."""
    import hashlib

    raw, new_raw, data_start, size = (
        growth.shard.header,
        growth.new_raw,
        growth.data_start,
        growth.size,
    )
    if path.stat().st_size != size:
        raise StaleEditError(path, "changed since the repair was planned", hint="run ftfix again")
    needed = size + len(new_raw) - len(raw) + sum(len(d) for d in growth.inserts.values())
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise OSError(errno.ENOSPC, f"need {needed} bytes to rewrite, {free} free", str(path))

    before, after = hashlib.sha256(), hashlib.sha256()

    def fill(handle: Any) -> None:
        before.update(raw)
        after.update(new_raw)
        handle.write(new_raw)
        with path.open("rb") as src:
            pos = data_start
            for point, name in growth.points:
                _copy_span(src, handle, pos, data_start + point, (before, after))
                payload = growth.inserts[name]
                handle.write(payload)
                after.update(payload)
                pos = data_start + point
            _copy_span(src, handle, pos, size, (before, after))

    _replace_streamed(path, fill)
    return replace(growth.shard, before_sha256=before.hexdigest(), after_sha256=after.hexdigest())


def rewrite_shard_with_grown_tensors(
    path: Path, edits: Sequence[TensorResizeEdit], *, rel: str | None = None
) -> GrownShard:
    """Rewrite the safetensors file `path` with tensors grown by the rows of `edits`.

    The new rows go right after each tensor's old rows; later tensors move down. The file is
    streamed in bounded chunks into a same-folder temp file, fsynced and replaced atomically
    (a symlink is replaced by a regular file, never written through); `__metadata__` and the
    header's key order are kept. `commit` journals this before it runs it.

    Args:
        path (`Path`): the file.
        edits (`Sequence[TensorResizeEdit]`): one per tensor to grow, all for this file.
        rel (`str`, *optional*): the path to record (defaults to the file name).

    Returns:
        `GrownShard`: what undo needs to restore the original bytes.

    Raises:
        `StaleEditError`: the header changed since planning.
        `ValueError`: an edit does not append whole rows right after the tensor's last row.
    """
    return _stream_growth(path, _plan_growth(path, edits, rel))


def _rows_of(edits: Sequence[TensorResizeEdit], tensor: str) -> tuple[int, ...]:
    return next(e.rows for e in edits if e.tensor == tensor)


def check_grown_shard(path: Path, grown: GrownShard) -> None:
    """Refuse (`StaleEditError`) unless `path` still has the header and rows the rewrite wrote.

    Reads only the header and the inserted rows. Rows patched in place afterwards (and restored
    before this undo) are checked when the original is rebuilt (`shrink_grown_shard`).
    """
    import hashlib

    try:
        raw, _ = _read_header(path)
    except (OSError, ValueError) as exc:
        raise StaleEditError(path, f"cannot read the grown shard: {exc}") from exc
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for offset, length in grown.inserted:
            _copy_span(handle, None, offset, offset + length, (digest,), write=False)
    if sha256_hex(raw) != grown.grown_header_sha256 or digest.hexdigest() != grown.inserted_sha256:
        raise StaleEditError(
            path,
            "changed since the repair grew it; refusing to undo",
            hint="re-save the model, or restore the shard from your own copy",
        )


def shrink_grown_shard(path: Path, grown: GrownShard) -> None:
    """Undo `rewrite_shard_with_grown_tensors`: drop the inserted rows, restore the header.

    The rebuilt file must hash to `grown.before_sha256`, else nothing is replaced. (After a
    crash right after the rewrite that hash may not be in the journal yet, `""`: the header and
    inserted rows are still checked.)

    Raises:
        `StaleEditError`: the file changed since the rewrite (nothing is replaced).
    """
    import hashlib

    check_grown_shard(path, grown)
    size = path.stat().st_size
    rebuilt = hashlib.sha256()

    def fill(handle: Any) -> None:
        rebuilt.update(grown.header)
        handle.write(grown.header)
        with path.open("rb") as src:
            (length,) = struct.unpack("<Q", os.pread(src.fileno(), 8, 0))
            pos = 8 + length
            for offset, span in grown.inserted:
                _copy_span(src, handle, pos, offset, (rebuilt,))
                pos = offset + span
            _copy_span(src, handle, pos, size, (rebuilt,))
        if grown.before_sha256 and rebuilt.hexdigest() != grown.before_sha256:
            raise StaleEditError(
                path,
                "changed since the repair grew it; refusing to undo",
                hint="re-save the model, or restore the shard from your own copy",
            )

    _replace_streamed(path, fill)
