"""The data ftfix reports: findings, their fixes, and the edits a fix plans (never applied here)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "Applicability",
    "Edit",
    "FileEdit",
    "Finding",
    "Fix",
    "RuleFailure",
    "RuleSkip",
    "Severity",
    "SpliceEdit",
    "TensorEdit",
    "TensorResizeEdit",
    "TensorRowsEdit",
    "sha256_hex",
]


class Severity(str, Enum):
    """The cost of a finding at inference time.

    `error`: generation is broken (no template, lost generation prompt, a turn end nobody stops
    on). `warning`: probably unintended or heuristic. `info`: for the reader.
    """

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Larger is worse; used for `--fail-on` and sorting."""
        return {"info": 0, "warning": 1, "error": 2}[self.value]


class Applicability(str, Enum):
    """The risk of a fix.

    `safe` only fills a gap or copies from the base byte for byte and is applied by `repair`;
    `unsafe` replaces content or weights and needs `unsafe_fixes=True` (`--unsafe-fixes`);
    `display-only` is shown and never applied.
    """

    SAFE = "safe"
    UNSAFE = "unsafe"
    DISPLAY_ONLY = "display-only"


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileEdit:
    """Replace (or create) a whole small file.

    Args:
        path (`str`): POSIX path relative to the checkpoint folder.
        before (`bytes` or `None`): the content the edit was planned against; `None` creates
            the file.
        after (`bytes`): the new content.
    """

    path: str
    before: bytes | None
    after: bytes

    @property
    def before_sha256(self) -> str | None:
        """sha256 of `before`, or `None` when the edit creates the file."""
        return None if self.before is None else sha256_hex(self.before)


@dataclass(frozen=True)
class TensorRowsEdit:
    """Rewrite some rows of one 2-D tensor in a safetensors file, in place.

    Args:
        path (`str`): the safetensors file, relative to the checkpoint folder.
        tensor (`str`): the tensor name in that file's header.
        rows (`tuple[int, ...]`): row indices, ascending.
        data (`bytes`): the new bytes of those rows, in the tensor's dtype, rows concatenated.
        before_sha256 (`str`): sha256 of the rows' current bytes, checked again before writing.
        reason (`str`): a short description for `--dry-run` (e.g. "mean of trained rows").
    """

    path: str
    tensor: str
    rows: tuple[int, ...]
    data: bytes
    before_sha256: str
    reason: str = ""


@dataclass(frozen=True)
class TensorResizeEdit:
    """Grow one 2-D tensor of a safetensors file by appending rows (its shard is rewritten).

    The fields mirror `TensorRowsEdit`, so dry-run output and reports treat both alike. The
    file is rewritten streamed (never held in memory) and replaced atomically; see
    `ftfix.write.rewrite_shard_with_grown_tensors`.

    Args:
        path (`str`): the safetensors file, relative to the checkpoint folder.
        tensor (`str`): the tensor name in that file's header.
        rows (`tuple[int, ...]`): indices of the appended rows (`old_rows .. new_rows - 1`).
        data (`bytes`): the appended rows' bytes, in the tensor's dtype, rows concatenated.
        before_sha256 (`str`): sha256 of the file's header (length prefix and JSON) when
            planned, checked again before writing.
        reason (`str`): a short description for `--dry-run`.
    """

    path: str
    tensor: str
    rows: tuple[int, ...]
    data: bytes
    before_sha256: str
    reason: str = ""


@dataclass(frozen=True)
class SpliceEdit:
    """Replace one byte range of a large file (a GGUF file's metadata), never its other bytes.

    Same length: patched in place. Another length: the file is rewritten streamed, the bytes
    after the range copied unchanged (they move by the difference). See `ftfix.write.spliced`.

    Args:
        path (`str`): the file, relative to the folder being repaired.
        offset (`int`): where the range starts.
        before (`bytes`): the range's current bytes, checked again before writing.
        after (`bytes`): the new bytes.
        reason (`str`): a short description for `--dry-run`.
    """

    path: str
    offset: int
    before: bytes
    after: bytes
    reason: str = ""


Edit = FileEdit | TensorRowsEdit | TensorResizeEdit | SpliceEdit
TensorEdit = TensorRowsEdit | TensorResizeEdit


@dataclass(frozen=True)
class Fix:
    """A planned repair: data, applied only by `ftfix.write`.

    Args:
        title (`str`): imperative, e.g. "Copy chat template from base".
        applicability (`Applicability`): risk of the fix.
        edits (`tuple[Edit, ...]`): what the fix changes.
    """

    title: str
    applicability: Applicability
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One problem found in the fine-tuned checkpoint.

    Args:
        code (`str`): the rule code, `FTXnnn`.
        name (`str`): the rule name, kebab-case.
        severity (`Severity`): cost at inference time.
        message (`str`): facts with observed against expected values.
        path (`str`, *optional*): POSIX path inside the checkpoint the finding is about.
        fix (`Fix`, *optional*): the planned repair.
        data (`Mapping[str, object]`): JSON-serialisable facts for `--format json`.
    """

    code: str
    name: str
    severity: Severity
    message: str
    path: str | None = None
    fix: Fix | None = None
    data: Mapping[str, object] = field(default_factory=dict)

    @property
    def fixable(self) -> bool:
        """Whether the finding has a fix that `repair` may apply (safe or unsafe)."""
        return self.fix is not None and self.fix.applicability is not Applicability.DISPLAY_ONLY

    def key(self) -> tuple[str, str | None]:
        """Identity used to tell whether the same problem survived a repair."""
        return (self.code, self.path)


@dataclass(frozen=True)
class RuleSkip:
    """A rule that did not run because an input it needs is not available.

    Args:
        code (`str`): the rule code.
        name (`str`): the rule name.
        needs (`str`): what it needed, e.g. "the base model".
        reason (`str`): why that is not available, e.g. "model.safetensors is a Git LFS pointer".
    """

    code: str
    name: str
    needs: str
    reason: str


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised: reported as an internal error of that rule; the others still ran.

    Args:
        code (`str`): the rule code.
        name (`str`): the rule name.
        message (`str`): one line, `ExceptionType: message`.
        traceback (`str`): the formatted traceback (shown with `--debug`).
    """

    code: str
    name: str
    message: str
    traceback: str = ""
