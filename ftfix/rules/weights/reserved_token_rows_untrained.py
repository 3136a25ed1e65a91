"""FTX104 reserved-token-rows-untrained."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.embeddings import StoredRows, analyse, unchanged_from_base
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer, Need

_SHOWN = 3
_KINDS = {
    "zero": "all zeros",
    "tiny-norm": "near zero",
    "non-finite": "not finite",
    "duplicate": "duplicated",
    "unchanged-untrained-base": "unchanged from an untrained base row",
}


@register
class ReservedTokenRowsUntrained(Fixer):
    """Special tokens nothing uses have untrained rows (one summary for all of them).

    ## What it checks
    Special tokens of the tokenizer that the fine-tune did not add, the chat template does not
    emit and that are not bos/eos/pad (reserved tokens such as Llama-3's
    `<|reserved_special_token_N|>`, unused tool or vision markers, `unk`, and extra stop ids
    that `generation_config.json` lists but nothing else names, such as Llama 3.1's
    `<|eom_id|>` in a fine-tune without tools), with rows that look
    untrained by the evidence FTX102 uses (all zeros, non-finite, a norm far below ordinary
    rows, duplicated rows). They are reported as one finding with counts per kind of evidence,
    never one line per token; the message says how many are unchanged from the base.

    ## Why is this bad?
    Harmless while nothing uses them. It matters when a later change starts using one (a new
    template, tool calls, a data set that contains the text): the model then reads a token it
    has never seen and cannot emit it. The warning makes that visible before it happens.

    ## Example
    A LoRA fine-tune of Llama-3.1-8B (base), merged: `250 special tokens nothing uses have
    untrained rows (input: 250 near zero; output: 250 near zero; all unchanged from the base):
    <|reserved_special_token_0|> (128002), <|reserved_special_token_1|> (128003),
    <|finetune_right_pad_id|> (128004) and 247 more; harmless until one is used`.

    ## Fix
    None. To use one of these tokens, train its rows (`trainable_token_indices`) while
    fine-tuning on data that contains it. FTX102's repair is only offered for tokens in use:
    initializing the output rows of hundreds of unused tokens would give them real logits.

    ## Fix safety
    None: nothing is changed.
    """

    code = "FTX104"
    name = "reserved-token-rows-untrained"
    severity = Severity.WARNING
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one summary of untrained rows of special tokens nothing uses."""
        analysis = analyse(ctx)
        if analysis is None:
            return
        idle = [v for v in analysis.verdicts if not v.token.must_work and v.with_state("untrained")]
        if not idle:
            return
        kinds: dict[str, Counter[str]] = {}
        for verdict in idle:
            for side in verdict.with_state("untrained"):
                assert side.evidence is not None
                kinds.setdefault(side.side, Counter())[side.evidence.kind] += 1
        inherited = len(unchanged_from_base(ctx, analysis, [v.token.id for v in idle]))
        detail = "; ".join(
            f"{side}: " + ", ".join(f"{n} {_KINDS.get(k, k)}" for k, n in counter.most_common())
            for side, counter in kinds.items()
        )
        shown = ", ".join(f"{v.token.content} ({v.token.id})" for v in idle[:_SHOWN])
        more = f" and {len(idle) - _SHOWN} more" if len(idle) > _SHOWN else ""
        origin = (
            f"{inherited} of them unchanged from the base"
            if inherited != len(idle)
            else "all unchanged from the base"
        )
        source = analysis.layout.input
        yield self.finding(
            f"{len(idle)} special token{'s' if len(idle) != 1 else ''} nothing uses "
            f"{'have' if len(idle) != 1 else 'has'} untrained rows ({detail}; {origin}): "
            f"{shown}{more}; harmless until one is used",
            path=source.rel if isinstance(source, StoredRows) else None,
            data={
                "count": len(idle),
                "unchanged_from_base": inherited,
                "evidence": {side: dict(counter) for side, counter in kinds.items()},
                "token_ids": [v.token.id for v in idle],
            },
        )
