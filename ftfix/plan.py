"""Run the rules against a staged target and turn the fixes they allow into one edit per file."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from .analysis.context import Context, Options
from .findings import Applicability, FileEdit, Finding, TensorEdit
from .io.checkpoint import Checkpoint
from .rules.base import Fixer

__all__ = ["Plan", "build"]

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
    """

    findings: list[Finding] = field(default_factory=list)
    applied: list[Finding] = field(default_factory=list)
    skipped: dict[tuple[str, str | None], str] = field(default_factory=dict)
    file_edits: dict[str, FileEdit] = field(default_factory=dict)
    tensor_edits: list[TensorEdit] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not self.file_edits and not self.tensor_edits

    def diff(self) -> str:
        """Unified diffs of text edits and one line per tensor edit, as `--diff` prints them."""
        chunks = []
        for rel, edit in sorted(self.file_edits.items()):
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
        return "".join(chunks)


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
    base: Checkpoint,
    target: Checkpoint,
    fixers: Sequence[Fixer],
    *,
    apply_fixes: bool,
    unsafe_fixes: bool = False,
    options: Options | None = None,
) -> Plan:
    """Run `fixers` in order; each sees `target` through the edits chosen before it.

    A fix whose edits were computed against content that an earlier fix has since changed is
    rejected as a conflict (reported, not applied). Edits to the same file merge into one.
    """
    plan = Plan()
    ctx = Context(base, target, options or Options())
    staged = target
    for fixer in fixers:
        found = list(fixer.check(ctx.with_target(staged)))
        for finding in found:
            plan.findings.append(finding)
            reason = _allowed(finding, unsafe_fixes) if apply_fixes else "check only"
            if reason is None:
                reason = _conflict(staged, finding)
            if reason is not None:
                plan.skipped[finding.key()] = reason
                continue
            assert finding.fix is not None
            staged = _stage(plan, staged, finding)
            plan.applied.append(finding)
    return plan


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
        else:
            plan.tensor_edits.append(edit)
    return staged.staged(overlay) if overlay else staged
