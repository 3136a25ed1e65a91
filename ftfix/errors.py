"""Errors ftfix raises on purpose: each names a path, the reason, and what to do next."""

from __future__ import annotations

import os
from typing import ClassVar

__all__ = [
    "CheckpointNotFoundError",
    "FixDidNotConvergeError",
    "FtfixError",
    "IncompatibleCheckpointsError",
    "InvalidCheckpointError",
    "LockedError",
    "NothingToUndoError",
    "RecoveryError",
    "StaleEditError",
    "UnknownCodeError",
    "UnsafePathError",
    "UntrustedJournalError",
    "UsageError",
    "WriteFailedError",
    "is_panic",
]


class FtfixError(Exception):
    """Base for errors ftfix raises on purpose.

    `str(error)` is `<path>: <reason>`, followed by a `hint: <next action>` line when there is one.
    Each subclass also derives from the matching stdlib exception, so callers who do not know
    ftfix still catch it (`except FileNotFoundError`).

    Args:
        path (`str` or `os.PathLike`):
            The file or folder the problem is about.
        reason (`str`):
            What is wrong, lower case, observed against expected values where there are some.
        hint (`str`, *optional*):
            The next action for the user; defaults to the class's `default_hint`.
    """

    # Every error the CLI prints ends with a hint line; a raise site without a specific one
    # gets its class's general advice.
    default_hint: ClassVar[str | None] = None

    def __init__(self, path: str | os.PathLike[str], reason: str, *, hint: str | None = None):
        self.path = os.fspath(path)
        self.reason = reason
        self.hint = hint if hint is not None else self.default_hint
        super().__init__(self._text())

    def _text(self) -> str:
        # One line each, whatever the folder is called: a newline (or any control character)
        # in a path or reason is shown escaped, never printed raw.
        text = f"{_one_line(self.path)}: {_one_line(self.reason)}"
        if self.hint:
            text += f"\nhint: {_one_line(self.hint)}"
        return text

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps errors picklable across a process pool (the default reduce passes only args).
        return (_rebuild_error, (type(self), self.path, self.reason, self.hint))


def _rebuild_error(cls: type[FtfixError], path: str, reason: str, hint: str | None) -> FtfixError:
    return cls(path, reason, hint=hint)


def _one_line(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_panic(exc: BaseException) -> bool:
    """Whether `exc` is a Rust panic raised through a PyO3 extension (tokenizers, safetensors).

    PyO3's `PanicException` derives from `BaseException`, so `except Exception` misses it; on
    bad data it means "this file is damaged", like any parse error.
    """
    return type(exc).__name__ == "PanicException"


class CheckpointNotFoundError(FtfixError, FileNotFoundError):
    """A path given to ftfix does not exist (or a Hub id is not in the local cache)."""


class InvalidCheckpointError(FtfixError, ValueError):
    """A folder is not a usable Hugging Face checkpoint, or one of its files cannot be parsed."""

    default_hint = "the file is damaged or not what its name says; copy it again from its source"


class IncompatibleCheckpointsError(FtfixError, ValueError):
    """The base and fine-tuned checkpoints cannot be compared (e.g. they are the same folder)."""


class UnknownCodeError(FtfixError, LookupError):
    """`--select`, `--ignore` or `explain` named no rule."""


class UsageError(FtfixError, ValueError):
    """Options that cannot be combined (the CLI exits 2)."""


class UnsafePathError(FtfixError, ValueError):
    """A path inside a checkpoint points outside it (`..`, absolute path, or symlink escape)."""

    default_hint = "ftfix only reads and writes inside the checkpoint folder; fix the path"


class StaleEditError(FtfixError, RuntimeError):
    """A file changed between planning an edit and writing it."""

    default_hint = "run ftfix again"


class LockedError(FtfixError, RuntimeError):
    """Another ftfix process is writing to the same checkpoint."""


class NothingToUndoError(FtfixError, FileNotFoundError):
    """`undo` found no backup of a previous repair."""


class FixDidNotConvergeError(FtfixError, RuntimeError):
    """A finding survived the fix that claimed to resolve it."""


class WriteFailedError(FtfixError, OSError):
    """Writing a repair failed (disk full, read-only folder, I/O error).

    The checkpoint was rolled back to its state before the repair; when even that failed, the
    message says so and the next `ftfix repair` or `ftfix undo` of the folder rolls it back.
    """

    default_hint = "check free disk space and that the folder is writable, then run again"

    def __init__(
        self,
        path: str | os.PathLike[str],
        reason: str,
        *,
        hint: str | None = None,
        errno: int | None = None,
    ):
        super().__init__(path, reason, hint=hint)
        self.errno = errno


class RecoveryError(FtfixError, RuntimeError):
    """An interrupted repair left a journal that cannot be rolled back automatically."""

    default_hint = "restore the files by hand from the backup folder named above"


class UntrustedJournalError(RecoveryError):
    """A `.ftfix/` journal that this user's ftfix did not write in this folder; never acted on."""

    default_hint = (
        "if the folder came with its .ftfix/ (downloaded, cloned, unpacked, copied), delete "
        ".ftfix/ and run again; nothing was changed"
    )
