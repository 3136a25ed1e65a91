"""What the file rules share: turning a checkpoint's recorded problems of one kind into findings."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding
from ...io.problems import ProblemKind
from ..base import Fixer


def problems_of(rule: Fixer, ctx: Context, kind: ProblemKind) -> Iterator[Finding]:
    """One finding per file of `ctx.target` with a problem of `kind`, in path order."""
    for rel, problem in sorted(ctx.target.problems.items()):
        if problem.kind is kind:
            yield rule.finding(
                f"{problem.reason}; hint: {problem.hint}"
                if kind is not ProblemKind.LFS_POINTER
                else problem.reason,
                path=rel,
                data={"kind": kind.value, "reason": problem.reason},
            )
