"""Proof by behaviour: the record `ftfix verify` leaves in a folder, and whether it still holds.

Row statistics are a heuristic; generating is not. When `ftfix verify` measured that a model
stops at the end of its first assistant turn, it records the result in `.ftfix/verified.json`
with a fingerprint of every file it loaded. While those files are unchanged, the stop rules
report an "untrained" end-of-turn row as verified (info) instead of an error.

Fingerprints are cheap to check again: a file up to `HASH_LIMIT` bytes is hashed whole; a larger
one (a multi-gigabyte shard) by its size, modification time and the sha256 of its first
`HASH_LIMIT` bytes (for safetensors, the header and the start of the data).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HASH_LIMIT", "RECORD", "Verified", "fingerprint", "read_verified"]

RECORD = ".ftfix/verified.json"
HASH_LIMIT = 64 * 1024 * 1024
# A verdict counts as proof when this share of the probes stopped on the end of turn.
PROOF_RATE = 0.75


def fingerprint(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` of a file up to `HASH_LIMIT` bytes; `size:mtime:sha256-of-head` above."""
    file = Path(path)
    stat = file.stat()
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        remaining = min(stat.st_size, HASH_LIMIT)
        while remaining:
            chunk = handle.read(min(remaining, 1024 * 1024))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    if stat.st_size <= HASH_LIMIT:
        return "sha256:" + digest.hexdigest()
    return f"head:{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()}"


@dataclass(frozen=True)
class Verified:
    """A verify result that still holds for the folder.

    Args:
        end_of_turn (`str`): the end-of-turn token verify measured.
        stop_rate (`float`): share of probes that ended the first assistant turn with it.
        date (`str`): when verify ran (ISO 8601, UTC).
    """

    end_of_turn: str
    stop_rate: float
    date: str

    def describe(self) -> str:
        """`ftfix verify measured ... on DATE`, for messages."""
        return (
            f"`ftfix verify` measured an end-of-turn stop rate of {self.stop_rate:.2f} on "
            f"{self.date[:10]} with these files"
        )


def read_verified(root: Path, token: str) -> Verified | None:
    """The verify record of the folder at `root` for `token`, while it still holds.

    It holds when it proves the model stops and every file it fingerprinted is unchanged.
    """
    record = root / RECORD
    try:
        data: Any = json.loads(record.read_text("utf-8")) if record.is_file() else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("end_of_turn") != token:
        return None
    rate, files = data.get("end_of_turn_stop_rate"), data.get("files")
    if not isinstance(rate, int | float) or rate < PROOF_RATE or not isinstance(files, dict):
        return None
    if not files or not _unchanged(root, files):
        return None
    return Verified(token, float(rate), str(data.get("date", "")))


def _unchanged(root: Path, files: Mapping[str, Any]) -> bool:
    # Names are relative to the folder for its own files, absolute for the base's.
    for name, expected in files.items():
        path = root / name
        try:
            if not path.is_file() or fingerprint(path) != expected:
                return False
        except OSError:
            return False
    return True
