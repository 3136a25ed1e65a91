"""Run the rules against a staged target and turn the fixes they allow into one edit per file."""

from __future__ import annotations

import difflib
import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .analysis.context import Context, InputMissing, Need, Options
from .analysis.generation_config import new_issues
from .analysis.gguf import GGUFContext, apply_to_prefix, splice_between, staged_metadata
from .analysis.stops import GENERATION_CONFIG
from .errors import InvalidCheckpointError, is_panic
from .findings import (
    Applicability,
    FileEdit,
    Finding,
    RuleFailure,
    RuleSkip,
    Severity,
    SpliceEdit,
    TensorEdit,
)
from .io import jsonfmt
from .io.checkpoint import Checkpoint, Kind
from .rules.base import Fixer, GGUFFixer

__all__ = ["Plan", "build", "build_gguf"]

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    """The findings of one run and the edits chosen to fix them.

    Args:
        findings (`list[Finding]`): everything found, in rule order.
        applied (`list[Finding]`): findings whose fix is in the plan.
        skipped (`dict`): finding key -> why its fix is not in the plan.
        file_edits (`dict[str, FileEdit]`): one edit per file; `before` is the file on disk.
        tensor_edits (`list[TensorEdit]`): row rewrites and (`TensorResizeEdit`) grown tensors.
        skipped_rules (`list[RuleSkip]`): rules not run for want of an input they need.
        failures (`list[RuleFailure]`): rules that raised (the others ran).
        staged (`Checkpoint`, *optional*): the target as the file edits leave it.
    """

    findings: list[Finding] = field(default_factory=list)
    applied: list[Finding] = field(default_factory=list)
    skipped: dict[tuple[str, str | None], str] = field(default_factory=dict)
    file_edits: dict[str, FileEdit] = field(default_factory=dict)
    tensor_edits: list[TensorEdit] = field(default_factory=list)
    skipped_rules: list[RuleSkip] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    splice_edits: dict[str, SpliceEdit] = field(default_factory=dict)
    staged: Checkpoint | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not self.file_edits and not self.tensor_edits and not self.splice_edits

    def diff(self) -> str:
        """Unified diffs of text edits and one line per tensor edit, as `--diff` prints them."""
        chunks = []
        for rel, edit in sorted(self.file_edits.items()):
            if _binary(edit):
                chunks.append(f"~ {rel}: binary file rewritten ({len(edit.after)} bytes)\n")
                continue
            before = (
                (edit.before or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
            )
            after = edit.after.decode("utf-8", errors="replace").splitlines(keepends=True)
            lines = difflib.unified_diff(
                before, after, "/dev/null" if edit.before is None else f"a/{rel}", f"b/{rel}"
            )
            text = "".join(
                line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                for line in lines
            )
            chunks.append(text)
        for tedit in self.tensor_edits:
            rows = ", ".join(map(str, tedit.rows[:8])) + (", ..." if len(tedit.rows) > 8 else "")
            reason = f" ({tedit.reason})" if tedit.reason else ""
            chunks.append(f"~ {tedit.path}: {tedit.tensor} rows [{rows}] rewritten{reason}\n")
        for splice in self.splice_edits.values():
            how = "in place" if len(splice.before) == len(splice.after) else "metadata rewritten"
            chunks.append(
                f"~ {splice.path}: {len(splice.before)} bytes at offset {splice.offset} -> "
                f"{len(splice.after)} bytes ({how}; {splice.reason})\n"
            )
        return "".join(chunks)


def _binary(edit: FileEdit) -> bool:
    """Whether an edit rewrites a binary file (a safetensors header rename), not text."""
    try:
        (edit.before or b"").decode("utf-8")
        edit.after.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"\0" in edit.after


def _allowed(finding: Finding, unsafe_fixes: bool) -> str | None:
    """`None` when the fix may be applied, else the reason it is not."""
    if finding.fix is None:
        return "no fix"
    if finding.fix.applicability is Applicability.DISPLAY_ONLY:
        return "display-only"
    if finding.fix.applicability is Applicability.UNSAFE and not unsafe_fixes:
        return "unsafe (use --unsafe-fixes)"
    if not finding.fix.edits:
        return "no edits"
    return None


def build(
    base: Checkpoint | None,
    target: Checkpoint,
    fixers: Sequence[Fixer],
    *,
    apply_fixes: bool,
    unsafe_fixes: bool = False,
    options: Options | None = None,
    no_base_reason: str = "no base model was given",
) -> Plan:
    """Run `fixers` in order; each sees `target` through the edits chosen before it.

    A rule whose `needs` are not met is skipped (recorded in `plan.skipped_rules`, with
    `no_base_reason` when the base is what is missing); so is one that reads an unreadable file
    or the absent base while running. A rule that raises anything else is recorded in
    `plan.failures` and the others still run.

    A fix whose edits were computed against content that an earlier fix has since changed is
    rejected as a conflict (reported, not applied). Edits to the same file merge into one.

    No fix may create a new problem: a fix that would write a `generation_config.json`
    transformers refuses is rejected, and when fixes are applied the staged result is checked
    again; a safe fix behind an error the checkpoint as it is does not have is taken out of the
    plan (reported as skipped, with the error it would create).
    """
    refused: dict[tuple[str, str | None], str] = {}
    before: set[tuple[str, str | None]] | None = None
    kwargs: dict[str, Any] = {"options": options, "no_base_reason": no_base_reason}
    while True:
        plan = _build(
            base, target, fixers, apply_fixes=apply_fixes, unsafe_fixes=unsafe_fixes,
            refused=refused, **kwargs,
        )  # fmt: skip
        if not apply_fixes or not plan.applied or not plan.file_edits:
            return plan
        if before is None:  # the errors of the checkpoint as it is, with no fix staged
            before = _errors(base, target, fixers, **kwargs)
        created = _created(base, plan, fixers, before, **kwargs)
        if not created:
            return plan
        culprit = _culprit(base, target, fixers, plan, refused, before, unsafe_fixes, **kwargs)
        if culprit is None:  # only unsafe fixes (the user's explicit choice) are involved
            return plan
        refused[culprit.key()] = "would create " + "; ".join(
            f"{f.code} ({f.message})" for f in created
        )


def _errors(
    base: Checkpoint | None,
    target: Checkpoint,
    fixers: Sequence[Fixer],
    **kwargs: Any,
) -> set[tuple[str, str | None]]:
    plan = _build(base, target, fixers, apply_fixes=False, unsafe_fixes=False, refused={}, **kwargs)
    return {f.key() for f in plan.findings if f.severity is Severity.ERROR}


def _created(
    base: Checkpoint | None,
    plan: Plan,
    fixers: Sequence[Fixer],
    before: set[tuple[str, str | None]],
    **kwargs: Any,
) -> list[Finding]:
    """Errors the staged result has that the checkpoint as it is did not have."""
    assert plan.staged is not None
    after = _build(
        base, plan.staged, fixers, apply_fixes=False, unsafe_fixes=False, refused={}, **kwargs
    )
    return [f for f in after.findings if f.severity is Severity.ERROR and f.key() not in before]


def _culprit(
    base: Checkpoint | None,
    target: Checkpoint,
    fixers: Sequence[Fixer],
    plan: Plan,
    refused: Mapping[tuple[str, str | None], str],
    before: set[tuple[str, str | None]],
    unsafe_fixes: bool,
    **kwargs: Any,
) -> Finding | None:
    """The safe fix whose removal leaves no new error; `None` when no safe fix is to blame.

    Only safe fixes are held to "creates no new error": an unsafe fix is applied on request, and
    an error it reveals (a rename that shows layers were always missing) is reported after it.
    """
    user_template = kwargs["options"].template if kwargs.get("options") else None
    safe = [
        f
        for f in plan.applied
        if f.fix
        and f.fix.applicability is Applicability.SAFE
        and any(isinstance(e, FileEdit) for e in f.fix.edits)
        and not _writes_user_template(f, user_template)
    ]
    for finding in reversed(safe):
        trial = _build(
            base, target, fixers, apply_fixes=True, unsafe_fixes=unsafe_fixes,
            refused={**refused, finding.key(): "trial"}, **kwargs,
        )  # fmt: skip
        if not trial.file_edits or not _created(base, trial, fixers, before, **kwargs):
            return finding
    return None


def _writes_user_template(finding: Finding, template: str | None) -> bool:
    """Whether the fix installs the template the user passed with `--template`: their choice.

    What it leads to (FTX005 when it has no generation prompt) is reported and fixed after it,
    as for an unsafe fix; refusing it would leave the user's request undone on every run.
    """
    if template is None or finding.fix is None:
        return False
    forms = (template, json.dumps(template, ensure_ascii=False)[1:-1], json.dumps(template)[1:-1])
    return any(
        isinstance(edit, FileEdit)
        and any(form in edit.after.decode("utf-8", "replace") for form in forms)
        for edit in finding.fix.edits
    )


def _invalid_generation_config(
    base: Checkpoint | None, staged: Checkpoint, finding: Finding
) -> str | None:
    """Why a fix may not write its generation_config.json: transformers would refuse it."""
    assert finding.fix is not None
    for edit in finding.fix.edits:
        if not isinstance(edit, FileEdit) or edit.path != GENERATION_CONFIG:
            continue
        try:
            after = jsonfmt.loads_object(edit.after)
        except ValueError:
            return f"would write an unreadable {edit.path}"
        known = [staged.generation_config, None if base is None else base.generation_config]
        issues = new_issues(after, known)
        if issues:
            return f"would write a {edit.path} transformers refuses: " + "; ".join(
                i.message for i in issues
            )
    return None


def _build(
    base: Checkpoint | None,
    target: Checkpoint,
    fixers: Sequence[Fixer],
    *,
    apply_fixes: bool,
    unsafe_fixes: bool,
    options: Options | None,
    no_base_reason: str,
    refused: Mapping[tuple[str, str | None], str],
) -> Plan:
    plan = Plan()
    ctx = Context(base, target, options or Options())
    staged = target
    for fixer in fixers:
        unmet = _unmet(fixer.needs, ctx, no_base_reason)
        if unmet is not None:
            plan.skipped_rules.append(RuleSkip(fixer.code, fixer.name, *unmet))
            continue
        try:
            found = list(fixer.check(ctx.with_target(staged)))
        except InputMissing as exc:
            why = no_base_reason if exc.need is Need.BASE else "not available"
            plan.skipped_rules.append(RuleSkip(fixer.code, fixer.name, exc.need.describe, why))
            continue
        except InvalidCheckpointError as exc:  # a file it reads cannot be read: reported apart
            rel = _rel(exc.path, ctx)
            why = _one_line(exc.reason)
            if rel in staged.problems:  # the file rules report it; the notice need not repeat
                why = "it cannot be read (reported above)"
            plan.skipped_rules.append(RuleSkip(fixer.code, fixer.name, rel, why))
            continue
        except BaseException as exc:  # one broken rule must not hide what the others find
            _rule_failed(plan, fixer, exc)
            continue
        for finding in found:
            plan.findings.append(finding)
            reason = _allowed(finding, unsafe_fixes) if apply_fixes else "check only"
            if reason is None:
                reason = refused.get(finding.key()) or _conflict(staged, finding)
            if reason is None:
                reason = _invalid_generation_config(base, staged, finding)
            if reason is not None:
                plan.skipped[finding.key()] = reason
                continue
            assert finding.fix is not None
            staged = _stage(plan, staged, finding)
            plan.applied.append(finding)
    plan.staged = staged
    return plan


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def _rel(path: str, ctx: Context) -> str:
    """`path` relative to the checkpoint it belongs to (the base's files say so)."""
    for ckpt, label in ((ctx.target, ""), (ctx.base_or_none, "the base's ")):
        if ckpt is None:
            continue
        try:
            return label + Path(path).resolve().relative_to(ckpt.root.resolve()).as_posix()
        except ValueError:
            continue
    return path


def _unmet(needs: frozenset[Need], ctx: Context, no_base_reason: str) -> tuple[str, str] | None:
    """(what is needed, why it is not available) for the first unmet need, else `None`."""
    for need in sorted(needs, key=list(Need).index):
        if need in (Need.BASE, Need.BASE_WEIGHTS) and ctx.base_or_none is None:
            return Need.BASE.describe, no_base_reason
        why = None
        if need is Need.BASE_WEIGHTS:
            why = _weights_unreadable(ctx.base, "the base") or (
                None
                if ctx.base.kind is Kind.ADAPTER or ctx.base.weight_files()
                else "the base folder holds no safetensors weights"
            )
        elif need is Need.WEIGHTS:
            why = _weights_unreadable(ctx.target, "")
            if why is None and ctx.target.kind is Kind.ADAPTER:
                # An adapter's rows are judged with the base matrices it applies to.
                return _unmet(frozenset({Need.BASE_WEIGHTS}), ctx, no_base_reason)
        elif need is Need.TOKENIZER:
            try:
                ctx.target.tokenizer()
            except InvalidCheckpointError as exc:
                why = f"{_rel(exc.path, ctx)}: {_one_line(exc.reason)}"
        if why is not None:
            return need.describe, why
    return None


def _weights_unreadable(ckpt: Checkpoint, label: str) -> str | None:
    problem = ckpt.weights_problem()
    if problem is None:
        return None
    if not label:
        return f"{problem.path} cannot be read (reported above)"
    return f"{label}'s {problem}"


def _rule_failed(plan: Plan, fixer: Fixer, exc: BaseException) -> None:
    """Record `fixer` raising `exc` as its internal error; re-raise interrupts and exits.

    A Rust panic (PyO3's PanicException) is a BaseException: it is the rule's failure too.
    """
    if not isinstance(exc, Exception) and not is_panic(exc):
        raise exc
    logger.debug("rule %s raised", fixer.code, exc_info=exc)
    message = _one_line(f"{type(exc).__name__}: {exc}")
    trace = "".join(traceback.format_exception(exc))
    plan.failures.append(RuleFailure(fixer.code, fixer.name, message, trace))


def _conflict(staged: Checkpoint, finding: Finding) -> str | None:
    assert finding.fix is not None
    for edit in finding.fix.edits:
        if isinstance(edit, FileEdit) and staged.read_bytes(edit.path) != edit.before:
            return f"conflicts with an earlier fix of {edit.path}"
    return None


def _stage(plan: Plan, staged: Checkpoint, finding: Finding) -> Checkpoint:
    assert finding.fix is not None
    overlay: dict[str, bytes | None] = {}
    for edit in finding.fix.edits:
        if isinstance(edit, FileEdit):
            previous = plan.file_edits.get(edit.path)
            original = previous.before if previous else edit.before
            if original == edit.after:
                plan.file_edits.pop(edit.path, None)
            else:
                plan.file_edits[edit.path] = FileEdit(edit.path, original, edit.after)
            overlay[edit.path] = edit.after
        elif isinstance(edit, SpliceEdit):
            plan.splice_edits[edit.path] = edit
        else:
            plan.tensor_edits.append(edit)
    return staged.staged(overlay) if overlay else staged


def build_gguf(
    ctx: GGUFContext,
    fixers: Sequence[Fixer],
    *,
    apply_fixes: bool,
    unsafe_fixes: bool = False,
) -> Plan:
    """Run the GGUF rules among `fixers` in order, each seeing the metadata staged so far.

    The fixes of one file merge into one `SpliceEdit` against the file on disk (the smallest
    range that differs); a fix planned against metadata an earlier fix has since changed is
    rejected as a conflict.
    """
    plan = Plan()
    original = ctx.prefix
    for fixer in fixers:
        if not isinstance(fixer, GGUFFixer):
            continue
        try:
            found = list(fixer.check_gguf(ctx))
        except BaseException as exc:  # one broken rule must not hide what the others find
            _rule_failed(plan, fixer, exc)
            continue
        for finding in found:
            plan.findings.append(finding)
            reason = _allowed(finding, unsafe_fixes) if apply_fixes else "check only"
            if reason is None:
                assert finding.fix is not None
                splices = [e for e in finding.fix.edits if isinstance(e, SpliceEdit)]
                for splice in splices:
                    end = splice.offset + len(splice.before)
                    if ctx.prefix[splice.offset : end] != splice.before:
                        reason = f"conflicts with an earlier fix of {splice.path}"
                for edit in finding.fix.edits:
                    if isinstance(edit, FileEdit) and edit.path in plan.file_edits:
                        reason = f"conflicts with an earlier fix of {edit.path}"
            if reason is not None:
                plan.skipped[finding.key()] = reason
                continue
            assert finding.fix is not None
            for edit in finding.fix.edits:
                if isinstance(edit, SpliceEdit):
                    prefix = apply_to_prefix(ctx.prefix, edit)
                    ctx.meta = staged_metadata(ctx.meta, prefix)
                    ctx.prefix = prefix
                    merged = splice_between(edit.path, original, prefix, edit.reason)
                    previous = plan.splice_edits.get(edit.path)
                    if previous is not None and previous.reason:
                        merged = SpliceEdit(
                            merged.path,
                            merged.offset,
                            merged.before,
                            merged.after,
                            f"{previous.reason}; {edit.reason}",
                        )
                    plan.splice_edits[edit.path] = merged
                elif isinstance(edit, FileEdit):
                    plan.file_edits[edit.path] = edit
            plan.applied.append(finding)
    return plan
