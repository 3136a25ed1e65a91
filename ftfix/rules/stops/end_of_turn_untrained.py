"""FTX206 end-of-turn-untrained."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.stops import stop_setup, untrained_output_row
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer, Need


@register
class EndOfTurnUntrained(Fixer):
    """The output row of the end-of-turn token was never trained: the model cannot emit it.

    ## What it checks
    The `lm_head` row (the input embedding when the weights are tied) of the token the chat
    template ends assistant turns with. A row that is all zero gives that token the same logit,
    0, in every context, so the model never prefers it. For a PEFT adapter the adapter's own
    `lm_head` (`modules_to_save`) is read; a token whose output row `trainable_token_indices`
    trains (an `lm_head` entry, or the embedding of tied weights) counts as trained; otherwise
    the base's row is what the adapter runs with.

    ## Why is this bad?
    The stop chain ends here: every config can list the token as eos, but a model that cannot
    emit it never stops. Typical when a LoRA is trained on a base model whose chat tokens were
    reserved and never trained (Llama 3 base's `<|eot_id|>`), or when tokens were added with
    zero-initialised rows and `embed_tokens`/`lm_head` were frozen.

    ## Example
    LoRA (`q_proj`, `v_proj`) on Llama-3-8B base with the Llama 3 Instruct template; the base's
    `lm_head` row of `<|eot_id|>` is zero.

    ## Fix
    None automatic, and no config change helps. Retrain with the embedding and output rows
    trainable (`modules_to_save=["embed_tokens", "lm_head"]`, or
    `trainable_token_indices=[<id>]` in PEFT) and serve the merged model (vLLM, SGLang and
    llama.cpp do not load those parts of an adapter), or end turns with a token the model
    already emits and make that the eos.

    ## Fix safety
    No fix is offered: the weights must be trained.
    """

    code = "FTX206"
    name = "end-of-turn-untrained"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the end-of-turn token's output row is untrained."""
        if ctx.target.kind is Kind.TOKENIZER:
            return
        setup = stop_setup(ctx)
        if setup is None or setup.token_id is None:
            return
        row = untrained_output_row(ctx.target, setup.token_id, base=ctx.base_or_none)
        if row is None:
            return
        yield self.finding(
            f"the output row of {setup.describe()} ({row.describe()}) is {row.reason}: the model "
            "cannot emit the end of turn, so no stop token config helps; train lm_head and "
            "embed_tokens (modules_to_save or trainable_token_indices, then serve merged) or end "
            "turns with a trained token",
            path=None if row.in_base else row.path,
            data={
                "end_of_turn": setup.token,
                "end_of_turn_id": setup.token_id,
                "tensor": row.tensor,
                "file": row.path,
                "in_base": row.in_base,
            },
        )
