"""A `transformers.TrainerCallback` that repairs every checkpoint the Trainer saves."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .. import api
from ..errors import FtfixError, is_panic
from ..findings import Severity
from ..report import Report

__all__ = ["RepairCallback"]

logger = logging.getLogger(__name__)


class RepairCallback(TrainerCallback):
    """Repair each `checkpoint-N` when the Trainer saves it, and the output folder at the end.

    The callback never stops training: an error is logged and kept in `errors`. Reports are
    kept in `reports` (folder -> `Report`). Only the main process repairs.

    Args:
        base (`str` or `os.PathLike`, *optional*): the base model the training started from
            (folder or Hub id); without it, the base the checkpoint names is used, or none (the
            checks that need it are skipped).
        unsafe_fixes (`bool`, *optional*, defaults to `False`): also apply unsafe fixes.
        **repair_kwargs: passed to `ftfix.repair` (`select`, `ignore`, `template`, `backup`).

    Example:
        >>> from ftfix.integrations.transformers import RepairCallback
        >>> trainer = Trainer(..., callbacks=[RepairCallback(base="Qwen/Qwen2.5-0.5B-Instruct")])
    """

    def __init__(
        self,
        base: str | os.PathLike[str] | None = None,
        *,
        unsafe_fixes: bool = False,
        **repair_kwargs: Any,
    ):
        self.base = base
        self.unsafe_fixes = unsafe_fixes
        self.repair_kwargs = repair_kwargs
        self.reports: dict[str, Report] = {}
        self.errors: dict[str, str] = {}

    def _repair(self, folder: Path) -> None:
        try:
            report = api.repair(
                self.base, folder, unsafe_fixes=self.unsafe_fixes, **self.repair_kwargs
            )
        except FtfixError as exc:
            self.errors[str(folder)] = str(exc)
            logger.error("ftfix: %s", exc)
            return
        except BaseException as exc:  # never crash a training run for a post-processing step
            if not isinstance(exc, Exception) and not is_panic(exc):
                raise  # Ctrl-C and exits still stop the run
            self.errors[str(folder)] = f"{type(exc).__name__}: {exc}"
            logger.exception("ftfix failed on %s", folder)
            return
        self.reports[str(folder)] = report
        logger.debug("ftfix %s:\n%s", folder, report.render_text())
        # Training output is busy: one line per checkpoint, plus what still needs attention.
        print(f"ftfix: {folder}: {report.summary().splitlines()[0]}", file=sys.stderr)
        for finding in report.remaining:
            if finding.severity.rank >= Severity.WARNING.rank:
                print(
                    f"ftfix:   {finding.code} {finding.severity.value}: {finding.message}",
                    file=sys.stderr,
                )

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Repair the checkpoint folder the Trainer has just written."""
        if not state.is_world_process_zero:
            return
        if args.output_dir is None:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            self._repair(folder)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Repair the output folder if the model was saved there (else its newest checkpoint)."""
        if not state.is_world_process_zero or args.output_dir is None:
            return
        folder = Path(args.output_dir)
        if folder.is_dir() and str(folder) not in self.reports:
            self._repair(folder)
