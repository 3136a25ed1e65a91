"""FTX103 mean-initialized-token-rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ...analysis.context import Context
from ...analysis.embeddings import MAX_LISTED, StoredRows, TokenVerdict, analyse, weights_view
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer, Need


@register
class MeanInitializedTokenRows(Fixer):
    """Rows of tokens the fine-tune must read or emit were initialized but never trained.

    ## What it checks
    The same tokens as FTX102 (added by the fine-tune, emitted by the chat template, ending
    assistant turns, bos/eos/pad), with no untrained row but a row that sits at the mean of
    trained rows (transformers' `resize_token_embeddings` mean init, or ftfix's own FTX102
    repair), equals the mean of the rows of the pieces its text splits into (`init="subtokens"`),
    or is unchanged from a base row that was itself only initialized. Input embedding and output
    head are judged separately.

    ## Why is this bad?
    Such a row gives the model something sensible to read, but the model never learned the
    token: it may read it as an average token and rarely, or never, emit it. For an
    end-of-turn or eos token this decides whether generation stops; a frozen mean row may or
    may not have been learned around during fine-tuning. Only generating tells.

    ## Example
    After `ftfix repair --unsafe-fixes` set the zero rows of `<|im_end|>` to the mean, a check
    reports `<|im_end|> (id 128257, added by the fine-tune, ends assistant turns): input row is
    at the mean of trained rows ...: initialized but never trained`.

    ## Fix
    None. Only training teaches the model a token: train `embed_tokens`/`lm_head`
    (`modules_to_save`) or the token's rows (`trainable_token_indices`), serve the merged model
    (vLLM, SGLang and llama.cpp do not load those parts of an adapter), and run `ftfix verify`
    to see whether the model answers and stops.

    ## Fix safety
    None: nothing is changed.
    """

    code = "FTX103"
    name = "mean-initialized-token-rows"
    severity = Severity.WARNING
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one warning per token whose rows are initialized but never trained."""
        analysis = analyse(ctx)
        if analysis is None:
            return
        found = [
            v
            for v in weights_view(analysis.verdicts)
            if v.token.must_work and not v.with_state("untrained") and v.with_state("initialized")
        ]
        source = analysis.layout.input
        path = source.rel if isinstance(source, StoredRows) else None
        for verdict in found[:MAX_LISTED]:
            yield self.finding(_message([verdict]), path=path, data={"tokens": [verdict.data()]})
        if len(found) > MAX_LISTED:
            rest = found[MAX_LISTED:]
            yield self.finding(_message(rest), path=path, data={"tokens": [v.data() for v in rest]})


def _message(verdicts: Sequence[TokenVerdict]) -> str:
    if len(verdicts) == 1:
        verdict = verdicts[0]
        message = (
            f"{verdict.token.label()}: {verdict.describe('initialized')}: initialized but never "
            "trained, so the model can read it but has not learned it"
        )
    else:
        names = ", ".join(v.token.label() for v in verdicts[:5])
        more = f" and {len(verdicts) - 5} more" if len(verdicts) > 5 else ""
        message = (
            f"{len(verdicts)} more tokens have rows initialized but never trained: {names}{more}"
        )
    if any(v.token.stops for v in verdicts):
        message += (
            "; it ends turns, so run `ftfix verify` to see whether the model learned to stop "
            "around the frozen row"
        )
    return message
