"""FTX206 end-of-turn-untrained."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...analysis.context import Context
from ...analysis.embeddings import AdapterRows, StoredRows, analyse
from ...analysis.stops import (
    StopSetup,
    stop_setup,
    token_name,
    trains_output_row,
    untrained_output_row,
)
from ...analysis.verified import read_verified
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer, Need

CURE = (
    "train lm_head and embed_tokens (modules_to_save or trainable_token_indices, then serve "
    "merged) or map the end of turn onto a token the model already emits; `ftfix verify` "
    "measures whether it stops"
)


@dataclass(frozen=True)
class _Row:
    token: str
    token_id: int
    where: str
    reason: str
    path: str | None
    state: str


@register
class EndOfTurnUntrained(Fixer):
    """The output row of the end-of-turn (or eos) token was never trained: the model cannot emit it.

    ## What it checks
    The `lm_head` row (the input embedding when the weights are tied) of the token the chat
    template ends assistant turns with, and of the eos token. A row that is all zero, tiny, or
    still at its initialisation (the mean of trained rows that `resize_token_embeddings` gives
    new tokens, a copy of its input-side init, or a base row that was itself never trained) was
    never trained. For a PEFT adapter the adapter's own `lm_head` (`modules_to_save`, or the
    copy peft saves after a resize) is read; a token whose output row `trainable_token_indices`
    trains counts as trained; otherwise the base's row is what the adapter runs with.

    Behaviour outranks row statistics: when `ftfix verify` measured that the model ends its
    first assistant turn with the token, and none of the files it loaded changed since, the
    finding is info ("verified").

    ## Why is this bad?
    The stop chain ends here: every config can list the token as eos, but a model that cannot
    emit it never stops. The most common LoRA mistake: ChatML tokens added with the default
    mean resizing and `lm_head` frozen. The row stays at the mean, the model gives the token an
    average logit, and it writes fake turns until `max_new_tokens` (measured: a tiny Llama
    trained 3,000 LoRA steps this way stopped on 0/64 prompts, P(`<|im_end|>`) 0.002; with
    `modules_to_save=["embed_tokens", "lm_head"]` it stopped on 64/64 from step 100).

    ## Example
    LoRA (`q_proj`, `v_proj`) on Qwen2.5-0.5B base after `add_special_tokens` of `<|im_start|>`
    and `<|im_end|>` and `resize_token_embeddings`: the `lm_head` row of `<|im_end|>` is at the
    mean of trained rows.

    ## Fix
    None automatic, and no config change helps. Retrain with the embedding and output rows
    trainable (`modules_to_save=["embed_tokens", "lm_head"]`, or
    `trainable_token_indices=[<id>]` in PEFT) and serve the merged model (vLLM, SGLang and
    llama.cpp do not load those parts of an adapter), or end turns with a token the model
    already emits and make that the eos. Then run `ftfix verify BASE FINETUNED`.

    ## Fix safety
    No fix is offered: the weights must be trained.
    """

    code = "FTX206"
    name = "end-of-turn-untrained"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})
    other_severities = (Severity.INFO,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding per stop token whose output row was never trained."""
        if ctx.target.kind is Kind.TOKENIZER:
            return
        setup = stop_setup(ctx)
        for row in _untrained_stop_rows(ctx, setup):
            verified = read_verified(ctx.target.root, row.token)
            name = token_name(row.token, row.token_id)
            data = {
                "end_of_turn": row.token,
                "end_of_turn_id": row.token_id,
                "row": row.where,
                "state": row.state,
                "in_base": row.path is None,
                "verified": verified is not None,
            }
            if verified is not None:
                yield self.finding(
                    f"the output row of {name} ({row.where}) {row.reason}, but "
                    f"{verified.describe()}: verified",
                    path=row.path,
                    severity=Severity.INFO,
                    data={**data, "stop_rate": verified.stop_rate, "verified_on": verified.date},
                )
                continue
            yield self.finding(
                f"the output row of {name} ({row.where}) {row.reason}: the model cannot emit "
                f"it, so no stop token config helps; {CURE}",
                path=row.path,
                data=data,
            )


def _untrained_stop_rows(ctx: Context, setup: StopSetup | None) -> Iterator[_Row]:
    """Output rows of the end of turn and the eos that are untrained or only initialized."""
    seen: set[int] = set()
    analysis = analyse(ctx)
    end_id = None if setup is None else setup.token_id
    if analysis is not None:
        for verdict in analysis.verdicts:
            token = verdict.token
            if not (token.stops or token.id == end_id):
                continue
            if (
                ctx.target.kind is Kind.ADAPTER
                and ctx.base_or_none is not None
                and trains_output_row(ctx.target, ctx.base_or_none, token.id)
            ):
                continue
            for side in verdict.sides:
                if side.side not in ("output", "tied") or side.evidence is None:
                    continue
                source = side.source
                stored = source.copy if isinstance(source, AdapterRows) else source
                if isinstance(source, AdapterRows) and token.id in source.tokens:
                    stored = source.tokens[token.id][0]
                if isinstance(stored, StoredRows):
                    where = f"{stored.tensor} in {stored.rel}"
                    path = stored.rel if stored.owned else None
                else:
                    where, path = f"{source.name} of the base", None
                reason = side.evidence.detail
                if side.evidence.state == "initialized":
                    reason += ": initialized, never trained"
                seen.add(token.id)
                yield _Row(token.content, token.id, where, reason, path, side.evidence.state)
                break
    if setup is None or end_id is None or end_id in seen or setup.token is None:
        return
    row = untrained_output_row(ctx.target, end_id, base=ctx.base_or_none)
    if row is not None:
        yield _Row(
            setup.token,
            end_id,
            row.describe(),
            f"is {row.reason}",
            None if row.in_base else row.path,
            "untrained",
        )
