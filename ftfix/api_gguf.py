"""Check and repair a GGUF file: alone, against its base, or against the folder it came from.

`ftfix check BASE model.gguf` compares with the base; `ftfix check FT --gguf model.gguf` with the
Hugging Face folder the file was converted from (its files are the truth, so fixes copying them
are safe). Repairs patch integer metadata in place and rewrite the metadata section for
strings; both are journaled in `.ftfix/` beside the GGUF and undone by `ftfix undo FILE.gguf`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from . import registry, write
from .analysis.context import Options
from .analysis.gguf import GGUFContext
from .errors import UsageError
from .findings import Severity
from .io.checkpoint import Checkpoint, resolve_path
from .io.gguf import read_gguf
from .plan import Plan, build_gguf
from .report import Mode, Report

__all__ = ["check_gguf", "repair_gguf", "undo_gguf"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
MODELFILE = "Modelfile"


def _reference(path: PathLike | None, role: str) -> Checkpoint | None:
    if path is None:
        return None
    folder = resolve_path(path, role=role)
    # A reference is only read: never recovered, never written (issue 19).
    ckpt = Checkpoint.open(folder, role=role, display=os.fspath(path))
    ckpt.tokenizer()
    return ckpt


def _context(
    file: Path, reference: PathLike | None, role: str | None, options: Options
) -> GGUFContext:
    meta = read_gguf(file)
    ref = _reference(reference, role or "base")
    return GGUFContext(
        meta=meta,
        prefix=meta.read_prefix(),
        rel=file.name,
        reference=ref,
        reference_role=role if ref is not None else None,
        options=options,
        has_modelfile=(file.parent / MODELFILE).exists(),
    )


def _split(
    base: PathLike | None, finetuned: PathLike, gguf: PathLike | None
) -> tuple[Path, PathLike | None, str | None]:
    """(GGUF file, reference folder, its role) from the command's paths."""
    if gguf is not None:
        return Path(os.fspath(gguf)), finetuned, "finetuned"
    return Path(os.fspath(finetuned)), base, "base" if base is not None else None


def _report(mode: Mode, file: Path, ref: str | None, plan: Plan, fail_on: Severity | str) -> Report:
    return Report(
        base=ref or "",
        finetuned=os.fspath(file),
        mode=mode,
        findings=list(plan.findings),
        applied=list(plan.applied) if mode != "check" else [],
        skipped=dict(plan.skipped),
        diff=plan.diff() if mode != "check" else "",
        fail_on=Severity(fail_on),
        internal_errors=list(plan.failures),
    )


def check_gguf(
    base: PathLike | None,
    finetuned: PathLike,
    *,
    gguf: PathLike | None = None,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    fail_on: Severity | str = Severity.ERROR,
    options: Options | None = None,
) -> Report:
    """Check a GGUF file (see `ftfix.check`, which calls this for `.gguf` paths)."""
    file, ref, role = _split(base, finetuned, gguf)
    # check never acts on a journal (issue 19): a repair or undo of the file recovers it.
    ctx = _context(file, ref, role, options or Options())
    plan = build_gguf(ctx, registry.resolve(select, ignore), apply_fixes=False)
    report = _report("check", file, None if ref is None else os.fspath(ref), plan, fail_on)
    report.remaining = list(plan.findings)
    return report


def repair_gguf(
    base: PathLike | None,
    finetuned: PathLike,
    *,
    gguf: PathLike | None = None,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    unsafe_fixes: bool = False,
    dry_run: bool = False,
    backup: bool = True,
    output: PathLike | None = None,
    fail_on: Severity | str = Severity.ERROR,
    options: Options | None = None,
) -> Report:
    """Repair a GGUF file in place (or write a repaired copy to `output`, a file path).

    Integer and boolean metadata are patched where they stand; strings (the chat template)
    rewrite the metadata section and stream the tensor data after it unchanged. A `Modelfile`
    is created beside the file (never overwritten).
    """
    file, ref, role = _split(base, finetuned, gguf)
    folder = file.parent
    if not dry_run:
        write.recover(folder, writer=True)
    fixers = registry.resolve(select, ignore)
    ctx = _context(file, ref, role, options or Options())
    plan = build_gguf(ctx, fixers, apply_fixes=True, unsafe_fixes=unsafe_fixes)
    ref_name = None if ref is None else os.fspath(ref)
    report = _report("dry-run" if dry_run else "repair", file, ref_name, plan, fail_on)
    if dry_run:
        applied = {f.key() for f in plan.applied}
        report.remaining = [f for f in plan.findings if f.key() not in applied]
        return report
    target = file
    splices = list(plan.splice_edits.values())
    edits = list(plan.file_edits.values())
    if output is not None:
        target = Path(os.fspath(output))
        if target.exists():
            raise UsageError("--output", f"{target} exists; pass a new file name")
        tmp = target.with_name(target.name + ".ftfix-tmp")
        shutil.copyfile(file, tmp)  # sparse regions of the source stay sparse on most systems
        os.replace(tmp, target)
        splices = [s.__class__(target.name, s.offset, s.before, s.after, s.reason) for s in splices]
        edits = [
            e.__class__(e.path, e.before, e.after.replace(f"./{file.name}".encode(),
                                                         f"./{target.name}".encode()))
            for e in edits
            if not (target.parent / e.path).exists()
        ]  # fmt: skip
        report.output = os.fspath(target)
        backup = False
    result = write.commit(target.parent, edits, (), backup=backup, splices=splices)
    report.written = result.written
    report.backup = str(result.backup) if result.backup else None
    after = _context(target, ref, role, options or Options())
    recheck = build_gguf(after, fixers, apply_fixes=False)
    report.remaining = list(recheck.findings)
    still = {f.key()[0] for f in recheck.findings}
    for finding in plan.applied:
        if finding.code in still:
            report.errors.append(f"{finding.code} fix did not hold: {target} still has the problem")
    return report


def undo_gguf(file: PathLike) -> list[str]:
    """Undo the last repair of the folder holding the GGUF `file`."""
    folder = Path(os.fspath(file)).parent
    write.recover(folder, writer=True)
    return write.undo(folder)
