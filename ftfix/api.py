"""The Python API: check, repair, undo and explain one fine-tuned checkpoint against its base."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from . import registry, write
from .analysis.context import Options
from .errors import (
    CheckpointNotFoundError,
    IncompatibleCheckpointsError,
    InvalidCheckpointError,
    UsageError,
)
from .findings import Severity
from .io.checkpoint import Checkpoint, Kind, resolve_path
from .plan import Plan, build
from .report import Mode, Report

__all__ = ["check", "explain", "repair", "undo"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")


def _open(path: PathLike, *, role: str, writer: bool = False) -> Checkpoint:
    """Open a checkpoint after rolling back whatever an interrupted ftfix run left in it.

    A `writer` (repair, undo) fails at once with `LockedError` when another process is writing
    to the folder; readers go on. Also refuses, as bad input, what cannot be read safely: a
    tokenizer.json that does not load, and a fine-tune whose weights are only pickled (never
    unpickled).
    """
    folder = resolve_path(path, role=role)
    write.recover(folder, writer=writer)
    display = os.fspath(path)
    ckpt = Checkpoint.open(folder, role=role, display=display)
    if ckpt.root != folder and write.recover(ckpt.root, writer=writer):  # a trainer root's
        ckpt = Checkpoint.open(folder, role=role, display=display)  # newest checkpoint-N
    if role == "finetuned" and ckpt.kind in (Kind.MERGED, Kind.ADAPTER):
        pickled = [name for name in _PICKLED if ckpt.exists(name)]
        if pickled and not ckpt.weight_files():
            raise InvalidCheckpointError(
                ckpt.root / pickled[0],
                "pickled PyTorch weights are not supported (ftfix never unpickles files)",
                hint="re-save the model with save_pretrained(..., safe_serialization=True) to "
                "get model.safetensors",
            )
    ckpt.tokenizer()  # parse tokenizer.json now, so a damaged one is bad input, not a crash
    return ckpt


def _open_pair(
    base: PathLike | None, finetuned: PathLike, *, writer: bool = False
) -> tuple[Checkpoint, Checkpoint]:
    target = _open(finetuned, role="finetuned", writer=writer)
    if base is None:
        base = target.declared_base()
        if base is None:
            raise InvalidCheckpointError(
                target.root,
                "no base model given and none declared",
                hint="pass BASE; only a PEFT adapter names its base (base_model_name_or_path)",
            )
        logger.info("using the base declared by %s: %s", target.display, base)
    source = _open(base, role="base")
    if source.root.resolve() == target.root.resolve():
        raise IncompatibleCheckpointsError(
            target.root,
            "base and fine-tuned checkpoint are the same folder",
            hint="pass the base model the fine-tune started from as BASE",
        )
    return source, target


def _options(template: PathLike | str | None, init: str = "mean") -> Options:
    if init not in ("mean", "subtokens"):
        raise UsageError(
            "init", f"unknown row initialisation {init!r}", hint="use mean or subtokens"
        )
    if template is None:
        return Options(init=init)
    text = os.fspath(template)
    path = Path(text)
    if path.is_file():
        try:
            return Options(template=path.read_text("utf-8"), init=init)
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidCheckpointError(path, f"cannot read template: {exc}") from exc
    if "{{" not in text and "{%" not in text:
        # Neither a file nor Jinja: almost certainly a mistyped path, not a template.
        raise CheckpointNotFoundError(text, "template file not found", hint="pass a .jinja file")
    return Options(template=text, init=init)


def _report(
    mode: Mode, base: Checkpoint, target: Checkpoint, plan: Plan, fail_on: Severity | str
) -> Report:
    return Report(
        base=base.display,
        finetuned=target.display,
        mode=mode,
        findings=list(plan.findings),
        applied=list(plan.applied) if mode != "check" else [],
        skipped=dict(plan.skipped),
        diff=plan.diff() if mode != "check" else "",
        fail_on=Severity(fail_on),
    )


def check(
    base: PathLike | None,
    finetuned: PathLike,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    fail_on: Severity | str = Severity.ERROR,
    template: PathLike | str | None = None,
) -> Report:
    """Compare a fine-tuned checkpoint with its base and report what is broken. Writes nothing.

    Args:
        base (`str` or `os.PathLike`): the base model folder (or a Hub id in the local cache);
            `None` for a PEFT adapter uses its `base_model_name_or_path`.
        finetuned (`str` or `os.PathLike`): merged model, PEFT adapter, tokenizer folder, or a
            trainer output folder (its newest `checkpoint-N` is checked).
        select (`Sequence[str]`, *optional*): rule codes, code prefixes (`FTX0`) or names to run.
        ignore (`Sequence[str]`, *optional*): rule codes, prefixes or names to skip.
        fail_on (`Severity` or `str`, *optional*, defaults to `"error"`): lowest severity that
            makes `report.exit_code` 1.
        template (`str` or `os.PathLike`, *optional*): the chat template the model was trained
            with (file path or template text), for checkpoints whose base has none.

    Returns:
        `Report`: `report.ok` is `True` when no error remains.

    Raises:
        `CheckpointNotFoundError`: a path does not exist.
        `InvalidCheckpointError`: a folder is not a checkpoint or a file cannot be parsed.
        `IncompatibleCheckpointsError`: base and fine-tune are the same folder.
        `UnknownCodeError`: `select`/`ignore` names no rule.

    Example:
        >>> report = ftfix.check("meta-llama/Llama-3.2-1B-Instruct", "out/checkpoint-500")
        >>> print(report)
    """
    source, target = _open_pair(base, finetuned)
    fixers = registry.resolve(select, ignore)
    plan = build(source, target, fixers, apply_fixes=False, options=_options(template))
    report = _report("check", source, target, plan, fail_on)
    report.remaining = list(plan.findings)
    return report


def repair(
    base: PathLike | None,
    finetuned: PathLike,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    unsafe_fixes: bool = False,
    dry_run: bool = False,
    backup: bool = True,
    output: PathLike | None = None,
    fail_on: Severity | str = Severity.ERROR,
    template: PathLike | str | None = None,
    init: str = "mean",
) -> Report:
    """Fix what can be fixed safely, then check again.

    Safe fixes are applied; unsafe ones only with `unsafe_fixes=True`. Every write is atomic and
    the originals are backed up under `<finetuned>/.ftfix/backups/` so `ftfix.undo()` restores
    them. A healthy checkpoint is left byte-identical.

    Args:
        base (`str` or `os.PathLike`): the base model folder (or a Hub id in the local cache).
        finetuned (`str` or `os.PathLike`): the checkpoint to repair.
        select (`Sequence[str]`, *optional*): rules to run (codes, prefixes or names).
        ignore (`Sequence[str]`, *optional*): rules to skip.
        unsafe_fixes (`bool`, *optional*, defaults to `False`): also apply fixes that replace
            content the fine-tune changed.
        dry_run (`bool`, *optional*, defaults to `False`): plan and diff only; write nothing.
        backup (`bool`, *optional*, defaults to `True`): keep originals for `undo` (turning it
            off saves disk for large shards but makes the repair irreversible).
        output (`str` or `os.PathLike`, *optional*): write a repaired copy here (hard links for
            untouched files) and leave `finetuned` unchanged.
        fail_on (`Severity` or `str`, *optional*, defaults to `"error"`): lowest severity that
            makes `report.exit_code` 1.
        template (`str` or `os.PathLike`, *optional*): the chat template the model was trained with.
        init (`str`, *optional*, defaults to `"mean"`): how unsafe embedding repairs set rows:
            `"mean"` of trained rows, or `"subtokens"` (mean of the rows of the token's pieces).

    Returns:
        `Report`: `report.remaining` holds what a re-check still finds.

    Raises:
        `CheckpointNotFoundError`, `InvalidCheckpointError`, `IncompatibleCheckpointsError`,
        `UnknownCodeError`: bad input, before anything is written.
        `LockedError`: another repair of the same folder is running.
        `StaleEditError`: a file changed while planning (nothing written).

    Example:
        >>> report = ftfix.repair("Qwen/Qwen2.5-7B-Instruct", "out/")
        >>> report.ok
        True
    """
    source, target = _open_pair(base, finetuned, writer=not dry_run)
    fixers = registry.resolve(select, ignore)
    options = _options(template, init)
    plan = build(
        source, target, fixers, apply_fixes=True, unsafe_fixes=unsafe_fixes, options=options
    )
    report = _report("dry-run" if dry_run else "repair", source, target, plan, fail_on)
    if dry_run:
        applied = {f.key() for f in plan.applied}
        report.remaining = [f for f in plan.findings if f.key() not in applied]
        return report

    root = target.root
    if output is not None:
        root = Path(os.fspath(output))
        tensor_files = sorted({t.path for t in plan.tensor_edits})
        write.copy_tree_for_output(target.root, root, copy=tensor_files)
        report.output = os.fspath(output)
        backup = False
    result = write.commit(root, list(plan.file_edits.values()), plan.tensor_edits, backup=backup)
    report.written = result.written
    report.backup = str(result.backup) if result.backup else None

    after = Checkpoint.open(root, role="finetuned")
    recheck = build(source, after, fixers, apply_fixes=False, options=options)
    report.remaining = list(recheck.findings)
    still = {f.key() for f in recheck.findings}
    for finding in plan.applied:
        if finding.key() in still:
            report.errors.append(
                f"{finding.code} fix did not hold: {finding.path or root} still has the problem"
            )
    return report


def undo(finetuned: PathLike) -> list[str]:
    """Restore exactly what the last repair of `finetuned` changed.

    Returns:
        `list[str]`: relative paths restored.

    Raises:
        `NothingToUndoError`: no backup exists.
        `StaleEditError`: a repaired file changed since (nothing is restored).
    """
    target = _open(finetuned, role="finetuned", writer=True)
    return write.undo(target.root)


def explain(code_or_name: str) -> str:
    """The documentation of a rule, as `ftfix explain` prints it.

    Raises:
        `UnknownCodeError`: no rule has that code or name.
    """
    fixer = registry.get(code_or_name)
    header = f"{fixer.code} {fixer.name} ({fixer.severity.value})"
    return f"{header}\n\n{fixer.documentation()}\n"
