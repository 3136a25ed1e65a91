"""A `transformers.TrainerCallback` that repairs every checkpoint the Trainer saves."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .. import api
from ..errors import FtfixError, is_panic
from ..findings import Severity
from ..io.samples import encode_samples
from ..report import Report
from ..write.records import record_training_samples

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
        record_samples (`int`, *optional*, defaults to 8): at train start, record this many
            training rows as the Trainer will feed them (`input_ids`, `labels` /
            `assistant_masks`, and `messages` when the dataset still has them) into
            `.ftfix/training_samples.jsonl` of the output folder and of each checkpoint, so
            later checks compare them with the saved template (FTX600). 0 records none.
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
        record_samples: int = 8,
        **repair_kwargs: Any,
    ):
        self.base = base
        self.unsafe_fixes = unsafe_fixes
        self.record_samples = record_samples
        self.recorded: bytes | None = None
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

    def _record(self, folder: Path) -> None:
        """Keep the recorded rows in `folder/.ftfix/`; never fail the run over it."""
        if not self.recorded:
            return
        try:
            record_training_samples(folder, self.recorded)
        except (FtfixError, OSError) as exc:
            logger.warning("ftfix: cannot record training rows in %s: %s", folder, exc)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Record a few training rows as the Trainer will feed them."""
        if not state.is_world_process_zero or args.output_dir is None or self.record_samples <= 0:
            return
        dataset = getattr(kwargs.get("train_dataloader"), "dataset", None)
        try:
            rows = _rows(dataset, self.record_samples)
        except Exception as exc:  # an exotic dataset must not stop training
            logger.warning("ftfix: cannot read training rows: %s", exc)
            return
        if rows:
            self.recorded = encode_samples(rows)
            self._record(Path(args.output_dir))

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
            self._record(folder)  # before the repair, whose checks read it
            self._repair(folder)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Repair the output folder if the model was saved there (else its newest checkpoint)."""
        if not state.is_world_process_zero or args.output_dir is None:
            return
        folder = Path(args.output_dir)
        if folder.is_dir() and str(folder) not in self.reports:
            self._record(folder)
            self._repair(folder)


def _plain(value: Any) -> Any:
    """Tensors and arrays as lists; everything else as is."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _rows(dataset: Any, count: int) -> list[dict[str, Any]]:
    """The first `count` rows of a map-style dataset, as JSON-ready dicts with their ids."""
    if dataset is None or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        return []
    rows = []
    for index in range(min(count, len(dataset))):
        row = dataset[index]
        if not isinstance(row, Mapping) or "input_ids" not in row:
            continue
        kept = {
            key: _plain(row[key])
            for key in ("messages", "input_ids", "labels", "assistant_masks", "completion_mask")
            if key in row
        }
        rows.append(kept)
    return rows
