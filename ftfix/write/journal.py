"""The write-ahead journal: backups, manifest, freshness and free-space checks, validation."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import (
    InvalidCheckpointError,
    RecoveryError,
    StaleEditError,
    UntrustedJournalError,
    WriteFailedError,
)
from ..findings import (
    FileEdit,
    SpliceEdit,
    TensorEdit,
    TensorResizeEdit,
    TensorRowsEdit,
    sha256_hex,
)
from ..io.limits import JOURNAL_LIMIT, TOKENIZER_LIMIT, read_limited
from ..io.safetensors import SafetensorsFile
from .atomic import (
    _BLOCK,
    COMPLETE,
    JOURNAL_FORMAT,
    MANIFEST,
    PENDING,
    STATE_DIR,
    UNDOING,
    _fsync_dir,
    _inside,
    _mkdirs,
    _step,
    atomic_write,
)
from .spliced import range_sha256, splice_entry
from .streamed import GrownShard, _Growth, shard_header_sha256
from .trust import seal, seal_problem

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ journal
def _stamp() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


def _json_bytes(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _split(
    tensors: Sequence[TensorEdit],
) -> tuple[list[TensorRowsEdit], dict[str, list[TensorResizeEdit]]]:
    """Row patches, and tensors to grow grouped by file (one rewrite per file)."""
    rows = [t for t in tensors if isinstance(t, TensorRowsEdit)]
    resizes: dict[str, list[TensorResizeEdit]] = {}
    for tedit in tensors:
        if isinstance(tedit, TensorResizeEdit):
            resizes.setdefault(tedit.path, []).append(tedit)
    return rows, resizes


def _check_fresh(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    resizes: dict[str, list[TensorResizeEdit]] | None = None,
    splices: Sequence[SpliceEdit] = (),
) -> None:
    for splice in splices:
        path = _inside(root, splice.path)
        if range_sha256(path, splice.offset, len(splice.before)) != sha256_hex(splice.before):
            raise StaleEditError(
                path,
                "changed on disk since the repair was planned",
                hint="run ftfix again; nothing was written",
            )
    for edit in edits:
        path = _inside(root, edit.path)
        if os.path.isdir(path):
            raise InvalidCheckpointError(
                path,
                "is a folder where the repair must write a file; nothing was written",
                hint="move the folder away (a file of that name belongs there), then run again",
            )
        current = read_limited(path, TOKENIZER_LIMIT)
        if current != edit.before:
            raise StaleEditError(
                path,
                "changed on disk since the repair was planned",
                hint="run ftfix again; nothing was written",
            )
    for tedit in tensors:
        path = _inside(root, tedit.path)
        raw = SafetensorsFile.open(path).read_raw_rows(tedit.tensor, tedit.rows)
        if sha256_hex(raw) != tedit.before_sha256:
            raise StaleEditError(
                path,
                f"rows of {tedit.tensor!r} changed since the repair was planned",
                hint="run ftfix again; nothing was written",
            )
    for rel, group in (resizes or {}).items():
        path = _inside(root, rel)
        if any(shard_header_sha256(path) != e.before_sha256 for e in group):
            raise StaleEditError(
                path,
                "changed since the repair was planned",
                hint="run ftfix again; nothing was written",
            )


def _blocks(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _check_space(
    root: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    resizes: dict[str, list[TensorResizeEdit]] | None = None,
    splices: Sequence[SpliceEdit] = (),
) -> None:
    """Refuse up front when the backups, temp files and journal cannot fit."""
    needed = 4 * _BLOCK  # the journal, written twice, and its folders
    for splice in splices:
        needed += _blocks(len(splice.before))  # the backup of the range
        if len(splice.before) != len(splice.after) or os.lstat(root / splice.path).st_nlink > 1:
            needed += _blocks(os.stat(root / splice.path).st_size + len(splice.after))
    for edit in edits:
        needed += _blocks(len(edit.after)) + _blocks(len(edit.before or b""))
    for tedit in tensors:
        needed += _blocks(len(tedit.data))
        path = root / tedit.path
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_nlink > 1:
            needed += _blocks(os.stat(path).st_size)  # patched through a private copy
    for rel, group in (resizes or {}).items():
        # The rewrite is a whole temporary copy of the grown file; the backup is its header.
        needed += _blocks(os.stat(root / rel).st_size + sum(len(e.data) for e in group))
        needed += 2 * _BLOCK
    free = shutil.disk_usage(root).free
    if needed > free:
        raise WriteFailedError(
            root,
            f"not enough free disk space: the repair needs {needed} bytes, {free} are free; "
            "nothing was changed",
            hint="free some disk space and run again",
            errno=errno.ENOSPC,
        )


def _begin(
    root: Path,
    folder: Path,
    edits: Sequence[FileEdit],
    tensors: Sequence[TensorRowsEdit],
    *,
    keep: bool,
    growths: Sequence[_Growth] = (),
    splices: Sequence[SpliceEdit] = (),
) -> dict[str, Any]:
    """Back up the originals and write the pending journal, all durable before any change."""
    state = root / STATE_DIR
    _mkdirs(folder)
    files = []
    for index, edit in enumerate(edits):
        path = _inside(root, edit.path)
        info = None
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(path)
        entry: dict[str, Any] = {
            "path": edit.path,
            "before_sha256": edit.before_sha256,
            "after_sha256": sha256_hex(edit.after),
            "backup": None,
            "symlink": os.readlink(path) if info and stat.S_ISLNK(info.st_mode) else None,
            # Permission bits only: a restore never sets setuid, setgid or sticky bits.
            "mode": info.st_mode & 0o777 if info and stat.S_ISREG(info.st_mode) else None,
        }
        if edit.before is not None:
            entry["backup"] = f"files/{index}"
            atomic_write(folder / "files" / str(index), edit.before)
            _step(f"backed up {edit.path}")
        files.append(entry)
    rows = []
    for index, tedit in enumerate(tensors):
        path = _inside(root, tedit.path)
        original = SafetensorsFile.open(path).read_raw_rows(tedit.tensor, tedit.rows)
        atomic_write(folder / "rows" / str(index), original)
        _step(f"backed up rows of {tedit.tensor}")
        rows.append(
            {
                "path": tedit.path,
                "tensor": tedit.tensor,
                "rows": list(tedit.rows),
                "before_sha256": sha256_hex(original),
                "after_sha256": sha256_hex(tedit.data),
                "backup": f"rows/{index}",
                "symlink": os.readlink(path) if path.is_symlink() else None,
            }
        )
    resized = []
    for index, growth in enumerate(growths):
        # A grown file is undone by cutting the new rows out again and putting its original
        # header back, so the header is all the backup it needs (not a copy of the shard).
        path = _inside(root, growth.shard.path)
        atomic_write(folder / "grown" / str(index), growth.shard.header)
        _step(f"backed up the header of {growth.shard.path}")
        entry = growth.shard.to_json(f"grown/{index}")
        entry.update(
            header_sha256=sha256_hex(growth.shard.header),
            size=growth.size,
            before_sha256=None,  # filled in once the rewrite has read the whole file
            after_sha256=None,
            symlink=os.readlink(path) if path.is_symlink() else None,
        )
        resized.append(entry)
    spliced = []
    for index, splice in enumerate(splices):
        # The original range is the whole backup: undo splices it back in.
        path = _inside(root, splice.path)
        atomic_write(folder / "spliced" / str(index), splice.before)
        _step(f"backed up metadata of {splice.path}")
        entry = splice_entry(path, splice)
        entry.update(
            backup=f"spliced/{index}", symlink=os.readlink(path) if path.is_symlink() else None
        )
        spliced.append(entry)
    journal: dict[str, Any] = {
        "format": JOURNAL_FORMAT,
        "state": PENDING,
        "keep": keep,
        "ftfix_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(),
        "files": files,
        "tensors": rows,
        "resized": resized,
        "spliced": spliced,
    }
    _write_journal(root, folder, journal)
    for durable in (folder, folder.parent, state, root):
        _fsync_dir(durable)
    logger.info("journal %s written (%s)", folder.name, PENDING)
    _step("journal written")
    return journal


def _write_journal(root: Path, folder: Path, journal: dict[str, Any]) -> None:
    """Seal the journal to this folder and this user's key, and write it atomically."""
    seal(journal, root, folder)
    atomic_write(folder / MANIFEST, _json_bytes(journal))


def _set_state(root: Path, folder: Path, journal: dict[str, Any], state: str) -> None:
    journal["state"] = state
    _write_journal(root, folder, journal)
    logger.info("journal %s is %s", folder.name, state)


def _discard(folder: Path) -> None:
    """Delete a journal: the manifest first (atomically ends it), then the backups."""
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
        _fsync_dir(folder)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _fsync_dir(folder.parent)


_BACKUP_NAME = re.compile(r"^(files|rows|grown|spliced)/\d+$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _is_sha(value: Any, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    return isinstance(value, str) and bool(_SHA.match(value))


def _valid_entry(entry: Any, key: str) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    backup = entry.get("backup")
    if backup is not None and not (isinstance(backup, str) and _BACKUP_NAME.match(backup)):
        return False
    if entry.get("symlink") is not None and not isinstance(entry["symlink"], str):
        return False
    if key == "files":
        mode = entry.get("mode")
        return (
            (mode is None or (type(mode) is int and 0 <= mode <= 0o777))
            and _is_sha(entry.get("before_sha256"), optional=True)
            and _is_sha(entry.get("after_sha256"))
        )
    if key == "tensors":
        return (
            isinstance(entry.get("tensor"), str)
            and isinstance(entry.get("rows"), list)
            and all(type(r) is int and 0 <= r < 2**40 for r in entry["rows"])
            and isinstance(backup, str)
            and _is_sha(entry.get("before_sha256"))
            and _is_sha(entry.get("after_sha256"))
        )
    if key == "spliced":
        return (
            isinstance(backup, str)
            and all(
                type(entry.get(k)) is int and entry[k] >= 0
                for k in (
                    "offset", "before_length", "after_length", "size_before", "size_after"
                )
            )
            and _is_sha(entry.get("before_sha256"))
            and _is_sha(entry.get("after_sha256"))
        )  # fmt: skip
    spans = entry.get("inserted")
    return (
        isinstance(backup, str)
        and isinstance(spans, list)
        and all(
            isinstance(s, list) and len(s) == 2 and all(type(v) is int and v >= 0 for v in s)
            for s in spans
        )
        and all(_is_sha(entry.get(k)) for k in ("grown_header_sha256", "inserted_sha256"))
        and _is_sha(entry.get("header_sha256"))
        and type(entry.get("size")) is int
        and entry["size"] >= 0
        and all(_is_sha(entry.get(k), optional=True) for k in ("before_sha256", "after_sha256"))
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of `folder` as JSON (no symlink, bounded size); not yet trusted."""
    path = folder / MANIFEST
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedJournalError(
                path, "is not a regular file; ftfix never acts on such a journal"
            )
        data = read_limited(path, JOURNAL_LIMIT, follow_symlinks=False)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "no manifest", str(path))
        journal = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, InvalidCheckpointError) as exc:
        if isinstance(exc, UntrustedJournalError):
            raise
        raise RecoveryError(
            path,
            f"journal of an earlier repair is damaged ({str(exc)[:200]})",
            hint=f"restore the files it lists by hand from {folder}, then delete that folder",
        ) from exc
    if not isinstance(journal, dict):
        raise RecoveryError(path, "journal of an earlier repair is damaged (not an object)")
    return journal


def _trust_problem(root: Path, folder: Path, journal: dict[str, Any]) -> str | None:
    """Why the journal must not be acted on, or `None` (see `trust`)."""
    info = os.lstat(folder / MANIFEST)
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "its manifest belongs to another user"
    return seal_problem(journal, root, folder)


def _load_journal(root: Path, folder: Path) -> dict[str, Any]:
    """Read, authenticate and validate a journal; never guess at a damaged or foreign one.

    Raises:
        `UntrustedJournalError`: this user's ftfix did not write it in this folder.
        `RecoveryError`: it is damaged.
    """
    path = folder / MANIFEST
    journal = _read_manifest(folder)
    problem = _trust_problem(root, folder, journal)
    if problem is not None:
        raise UntrustedJournalError(
            path, f"refusing to act on a repair journal ftfix did not write here: {problem}"
        )

    def damaged(what: str) -> RecoveryError:
        return RecoveryError(
            path,
            f"journal of an earlier repair is damaged ({what})",
            hint=f"restore the files it lists by hand from {folder}, then delete that folder",
        )

    if journal.get("format") not in (1, JOURNAL_FORMAT):
        raise damaged("unknown format")
    if journal.get("state") not in (PENDING, COMPLETE, UNDOING):
        raise damaged(f"unknown state {journal.get('state')!r}")
    journal.setdefault("resized", [])
    journal.setdefault("spliced", [])
    for key in ("files", "tensors", "resized", "spliced"):
        entries = journal.get(key)
        if not isinstance(entries, list):
            raise damaged(f"{key!r} is not a list")
        if not all(_valid_entry(entry, key) for entry in entries):
            raise damaged(f"bad entry in {key!r}")
    return journal


_BACKUP_LIMIT = 4 * 1024 * 1024 * 1024


def backup_path(folder: Path, entry: dict[str, Any]) -> Path:
    """The backup file of a journal entry: a regular file in a real sub-folder of `folder`.

    Raises:
        `UntrustedJournalError`: the backup, or its folder, is a symlink or not a regular file.
    """
    rel = str(entry["backup"])
    if not _BACKUP_NAME.match(rel):
        raise UntrustedJournalError(folder / rel, "is not a backup name ftfix writes")
    kind, name = rel.split("/")
    for path, want in ((folder / kind, stat.S_ISDIR), (folder / kind / name, stat.S_ISREG)):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError as exc:
            raise RecoveryError(path, "backup is missing") from exc
        if not want(mode):
            raise UntrustedJournalError(
                path, "is a symlink or not what ftfix wrote there; refusing to use it as a backup"
            )
    return folder / kind / name


def _backup_bytes(folder: Path, entry: dict[str, Any], *, key: str = "before_sha256") -> bytes:
    """The backed-up original bytes of an entry, checked against the journal's sha256."""
    path = backup_path(folder, entry)
    data = read_limited(path, _BACKUP_LIMIT, follow_symlinks=False)
    if data is None or sha256_hex(data) != entry[key]:
        raise RecoveryError(
            folder / str(entry["backup"]),
            f"backup of {entry['path']} does not match the journal's sha256",
            hint="the backup folder was modified; restore the file by hand",
        )
    return data


def _grown_shard(folder: Path, entry: dict[str, Any]) -> GrownShard:
    """The `GrownShard` of a journal entry (hashes of whole files empty until known)."""
    header = _backup_bytes(folder, entry, key="header_sha256")
    return GrownShard.from_json(
        {**entry, "before_sha256": entry["before_sha256"] or "", "after_sha256": ""}, header
    )
