"""Errors ftfix raises on purpose: each names a path, the reason, and what to do next."""

from __future__ import annotations

import os

__all__ = [
    "CheckpointNotFoundError",
    "FixDidNotConvergeError",
    "FtfixError",
    "IncompatibleCheckpointsError",
    "InvalidCheckpointError",
    "LockedError",
    "NothingToUndoError",
    "StaleEditError",
    "UnknownCodeError",
    "UnsafePathError",
    "UsageError",
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
            The next action for the user.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, *, hint: str | None = None):
        self.path = os.fspath(path)
        self.reason = reason
        self.hint = hint
        super().__init__(self._text())

    def _text(self) -> str:
        text = f"{self.path}: {self.reason}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps errors picklable across a process pool (the default reduce passes only args).
        return (_rebuild_error, (type(self), self.path, self.reason, self.hint))


def _rebuild_error(cls: type[FtfixError], path: str, reason: str, hint: str | None) -> FtfixError:
    return cls(path, reason, hint=hint)


class CheckpointNotFoundError(FtfixError, FileNotFoundError):
    """A path given to ftfix does not exist (or a Hub id is not in the local cache)."""


class InvalidCheckpointError(FtfixError, ValueError):
    """A folder is not a usable Hugging Face checkpoint, or one of its files cannot be parsed."""


class IncompatibleCheckpointsError(FtfixError, ValueError):
    """The base and fine-tuned checkpoints cannot be compared (e.g. they are the same folder)."""


class UnknownCodeError(FtfixError, LookupError):
    """`--select`, `--ignore` or `explain` named no rule."""


class UsageError(FtfixError, ValueError):
    """Options that cannot be combined (the CLI exits 2)."""


class UnsafePathError(FtfixError, ValueError):
    """A path inside a checkpoint points outside it (`..`, absolute path, or symlink escape)."""


class StaleEditError(FtfixError, RuntimeError):
    """A file changed between planning an edit and writing it."""


class LockedError(FtfixError, RuntimeError):
    """Another ftfix process is writing to the same checkpoint."""


class NothingToUndoError(FtfixError, FileNotFoundError):
    """`undo` found no backup of a previous repair."""


class FixDidNotConvergeError(FtfixError, RuntimeError):
    """A finding survived the fix that claimed to resolve it."""
