"""ftfix: repair fine-tuned LLM checkpoints after training.

>>> import ftfix
>>> report = ftfix.repair("path/to/base", "out/checkpoint-1200")
>>> print(report)
"""

from __future__ import annotations

from ._version import __version__
from .api import check, explain, repair, undo
from .errors import (
    CheckpointNotFoundError,
    FixDidNotConvergeError,
    FtfixError,
    IncompatibleCheckpointsError,
    InvalidCheckpointError,
    LockedError,
    NothingToUndoError,
    StaleEditError,
    UnknownCodeError,
    UnsafePathError,
    UsageError,
)
from .findings import Applicability, FileEdit, Finding, Fix, Severity, TensorRowsEdit
from .io.checkpoint import Checkpoint, Kind
from .registry import all_fixers
from .report import Report
from .verify import VerifyReport, verify

__all__ = [
    "Applicability",
    "Checkpoint",
    "CheckpointNotFoundError",
    "FileEdit",
    "Finding",
    "Fix",
    "FixDidNotConvergeError",
    "FtfixError",
    "IncompatibleCheckpointsError",
    "InvalidCheckpointError",
    "Kind",
    "LockedError",
    "NothingToUndoError",
    "Report",
    "Severity",
    "StaleEditError",
    "TensorRowsEdit",
    "UnknownCodeError",
    "UnsafePathError",
    "UsageError",
    "VerifyReport",
    "__version__",
    "all_fixers",
    "check",
    "explain",
    "repair",
    "undo",
    "verify",
]
