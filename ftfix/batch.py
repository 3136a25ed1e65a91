"""Many checkpoints at once: expand trainer output folders and run each one as its own job."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from .errors import FtfixError, is_panic
from .io.checkpoint import _checkpoint_dirs, _classify
from .report import Report

__all__ = ["BatchResult", "expand_targets", "run_many"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def expand_targets(paths: Sequence[PathLike], *, all_checkpoints: bool = False) -> list[str]:
    """Each path as given, or with `all_checkpoints` every `checkpoint-N` of a trainer folder.

    A trainer output folder without `all_checkpoints` stays one target (its newest checkpoint
    is used when it is opened).
    """
    targets: list[str] = []
    for path in paths:
        folder = Path(os.fspath(path))
        steps = _checkpoint_dirs(folder) if folder.is_dir() else []
        if all_checkpoints and steps:
            targets.extend(str(p) for _, p in steps)
            if _classify(folder) is not None:  # the final model saved at the root as well
                targets.append(str(folder))
        else:
            targets.append(os.fspath(path))
    return targets


class BatchResult:
    """The outcome of one target: a `Report`, or the error that stopped it."""

    def __init__(self, target: str, report: Report | None = None, error: str | None = None):
        self.target = target
        self.report = report
        self.error = error

    @property
    def exit_code(self) -> int:
        """2 for bad input, else the report's exit code."""
        return 2 if self.report is None else self.report.exit_code


def _one(
    func: Callable[..., Report], base: PathLike | None, target: str, kwargs: dict[str, Any]
) -> BatchResult:
    try:
        return BatchResult(target, report=func(base, target, **kwargs))
    except FtfixError as exc:
        return BatchResult(target, error=str(exc))
    except OSError as exc:
        return BatchResult(target, error=f"{exc.filename or target}: {exc.strerror or exc}")
    except BaseException as exc:
        # One bad checkpoint never stops the batch: anything it raises (a Rust panic included,
        # which is no Exception) is its result, as text, so a process pool can pickle it.
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        logger.debug("%s failed", target, exc_info=True)
        return BatchResult(target, error=f"{target}: internal error: {type(exc).__name__}: {exc}")


def run_many(
    func: Callable[..., Report],
    base: PathLike | None,
    targets: Sequence[str],
    *,
    jobs: int = 1,
    progress: bool | None = None,
    **kwargs: Any,
) -> list[BatchResult]:
    """Run `func(base, target, **kwargs)` (`ftfix.check` or `ftfix.repair`) for each target.

    Each checkpoint is independent: with `jobs > 1` they run in a process pool. Bad input in one
    target is recorded in its result and does not stop the others. A progress bar is shown on a
    terminal when there are several targets (`progress=None`), never otherwise.
    """
    from tqdm.auto import tqdm

    work = partial(_one, func, base, kwargs=kwargs)
    show = progress if progress is not None else None
    bar_kwargs = {
        "total": len(targets),
        "unit": "ckpt",
        "disable": show is False or len(targets) < 2,
    }
    if show is None:
        bar_kwargs["disable"] = None if len(targets) > 1 else True  # None: only on a TTY
    results: list[BatchResult] = []
    if jobs <= 1 or len(targets) < 2:
        for target in tqdm(targets, **bar_kwargs):
            results.append(work(target))
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for result in tqdm(pool.map(work, targets), **bar_kwargs):
            results.append(result)
    return results
