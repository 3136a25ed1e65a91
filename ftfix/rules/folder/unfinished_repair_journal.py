"""FTX920 unfinished-repair-journal."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.state import BACKUPS, STATE_DIR, unfinished_journals
from ...registry import register
from ..base import Fixer


@register
class UnfinishedRepairJournal(Fixer):
    """The folder holds the journal of a repair or undo that did not finish.

    ## What it checks
    Whether `.ftfix/backups/` of the fine-tuned checkpoint (or of the base) holds a journal
    that is not marked complete: ftfix was killed while writing, is writing right now, or the
    folder came with a `.ftfix/` folder made elsewhere (uploaded to the Hub or committed to git
    by mistake, or planted).

    ## Why is this bad?
    A repair killed part-way may have left some files new and others old. `check` never acts
    on a journal (a journal is instructions to write, and `check` writes nothing), so it only
    reports it; loading the folder as it is may load a half-repaired model.

    ## Example
    `ftfix repair base out/` was killed by the out-of-memory killer while patching rows; the
    next `ftfix check base out/` reports `.ftfix/backups/20260101T120000000000Z-1a2b3c`.

    ## Fix
    `ftfix repair` (or `ftfix undo`) on the fine-tuned folder rolls the interrupted repair back
    first, from a journal this user's ftfix wrote in this folder; a journal from anywhere else
    is refused, never acted on: delete `.ftfix/` if the folder came with it.

    ## Fix safety
    No fix is planned: rolling back is the writer's job, under its lock.
    """

    code = "FTX920"
    name = "unfinished-repair-journal"
    severity = Severity.ERROR
    needs = frozenset()  # judged from the folder alone

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per checkpoint with an unfinished journal."""
        for role, ckpt in (("fine-tuned checkpoint", ctx.target), ("base", ctx.base_or_none)):
            if ckpt is None:
                continue
            names = unfinished_journals(ckpt.root)
            if not names:
                continue
            where = f"{STATE_DIR}/{BACKUPS}/{names[-1]}"
            action = (
                "run `ftfix repair` or `ftfix undo` on it to roll it back (only a journal "
                "this user's ftfix wrote in this folder is acted on), or delete .ftfix/ if the "
                "folder came with it"
                if ckpt is ctx.target
                else "ftfix never writes to the base; delete its .ftfix/ if it came with the "
                "folder, or run `ftfix repair` on it as a fine-tune to roll it back"
            )
            yield self.finding(
                f"the {role} holds {len(names)} unfinished repair journal(s) ({where}); its "
                f"files may be half-written: {action}",
                path=where if ckpt is ctx.target else None,
                data={"journals": names, "checkpoint": role},
            )
