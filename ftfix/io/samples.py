"""Training samples as the trainer fed them: `--trained-on FILE.jsonl` and `.ftfix/` records.

One JSON object a line: `{"messages": [...]}` with the text the trainer produced (`"text"`) or
its token ids (`"input_ids"`), optionally `"labels"` / `"assistant_masks"`. Only the first
`MAX_SAMPLES` usable lines are read: the comparison needs a few rows, not the dataset, and a
dataset dump may be gigabytes.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidCheckpointError
from .limits import JSON_LIMIT, read_limited
from .state import STATE_DIR

__all__ = [
    "MAX_SAMPLES",
    "SAMPLES_FILE",
    "TrainingSample",
    "encode_samples",
    "parse_samples",
    "read_recorded",
    "read_samples",
    "recorded_samples_path",
]

MAX_SAMPLES = 32
#: where `RepairCallback` records training rows, inside a checkpoint's `.ftfix/`.
SAMPLES_FILE = "training_samples.jsonl"
_MAX_LINE = 16 * 1024 * 1024  # one sample; longer lines are skipped, not read into memory
_HINT = (
    'one JSON object a line: {"messages": [...], "text": "..."} or {"messages": [...], '
    '"input_ids": [...]}; see README "Did it train on what it will be served?"'
)


@dataclass(frozen=True)
class TrainingSample:
    """One training row: the conversation and what the trainer made of it.

    Args:
        messages: the conversation (role/content dicts).
        text: the text the trainer tokenized, when known.
        input_ids: the token ids the model was fed, when known.
        where: `file:line` or `file#n`, to name the sample in a finding.
    """

    messages: tuple[Mapping[str, Any], ...]
    text: str | None
    input_ids: tuple[int, ...] | None
    where: str


def _sample(obj: Any, where: str) -> TrainingSample | None:
    """The sample in one decoded line, or `None` when it has no conversation or no result."""
    if not isinstance(obj, dict):
        return None
    messages = obj.get("messages", obj.get("conversations"))
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return None
    text = obj.get("text")
    ids = obj.get("input_ids")
    if isinstance(ids, list) and ids and isinstance(ids[0], list):
        ids = ids[0]  # a batch of one, as tokenizers return it with return_tensors
    good_ids = (
        tuple(ids)
        if isinstance(ids, list) and all(type(i) is int and i >= 0 for i in ids) and ids
        else None
    )
    good_text = text if isinstance(text, str) and text else None
    if good_ids is None and good_text is None:
        return None
    return TrainingSample(tuple(messages), good_text, good_ids, where)


def parse_samples(lines: Iterable[bytes], *, name: str) -> list[TrainingSample]:
    """The usable samples of JSONL `lines` (at most `MAX_SAMPLES`); bad lines are skipped."""
    found: list[TrainingSample] = []
    for number, line in enumerate(lines, start=1):
        if len(found) >= MAX_SAMPLES:
            break
        if not line.strip() or len(line) > _MAX_LINE:
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        sample = _sample(obj, f"{name}:{number}")
        if sample is not None:
            found.append(sample)
    return found


def _lines(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        while True:
            line = handle.readline(_MAX_LINE + 1)
            if not line:
                return
            if len(line) > _MAX_LINE:  # skip the rest of an overlong line
                while line and not line.endswith(b"\n"):
                    line = handle.readline(_MAX_LINE + 1)
                continue
            yield line


def read_samples(path: str | os.PathLike[str]) -> list[TrainingSample]:
    """Read `--trained-on FILE.jsonl`.

    Raises:
        `InvalidCheckpointError`: the file cannot be read or holds no usable sample.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise InvalidCheckpointError(file, "not a file", hint=_HINT)
    try:
        samples = parse_samples(_lines(file), name=file.name)
    except OSError as exc:
        raise InvalidCheckpointError(file, f"cannot read: {exc.strerror or exc}") from exc
    if not samples:
        raise InvalidCheckpointError(
            file, "no line has a conversation with its text or input_ids", hint=_HINT
        )
    return samples


def recorded_samples_path(root: Path) -> Path:
    """The file `RepairCallback` records training rows into, under a checkpoint folder."""
    return root / STATE_DIR / SAMPLES_FILE


def encode_samples(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """JSONL bytes for recorded rows (what `RepairCallback` writes)."""
    return b"".join(json.dumps(dict(r), ensure_ascii=False).encode() + b"\n" for r in rows)


def read_recorded(root: Path) -> list[TrainingSample]:
    """The rows `RepairCallback` recorded in `root/.ftfix/` (none when absent or unreadable).

    The state folder may come with a downloaded checkpoint: symlinks are refused and the file
    is bounded like every other.
    """
    state = root / STATE_DIR
    if not _real_dir(state):
        return []
    try:
        data = read_limited(state / SAMPLES_FILE, JSON_LIMIT, follow_symlinks=False)
    except (OSError, InvalidCheckpointError):
        return []
    if data is None:
        return []
    return parse_samples(data.splitlines(), name=f"{STATE_DIR}/{SAMPLES_FILE}")


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
