"""FTX207 pad-token-is-eos."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.stops import GENERATION_CONFIG, stop_setup, token_name, untrained_output_row
from ...findings import Finding, Severity
from ...io.checkpoint import TOKENIZER_CONFIG, Checkpoint, Kind
from ...registry import register
from ..base import Fixer


def _tokenizer_of(ctx: Context) -> Checkpoint:
    names = (TOKENIZER_CONFIG, "tokenizer.json")
    if any(ctx.target.exists(n) for n in names) or ctx.base_or_none is None:
        return ctx.target
    return ctx.base_or_none


@register
class PadTokenIsEos(Fixer):
    """The padding token is the token the model must emit to stop.

    ## What it checks
    Whether the tokenizer's `pad_token`, or `pad_token_id` in `config.json` or
    `generation_config.json`, is the stop token: the end-of-turn token of the chat template, or
    the tokenizer's `eos_token` when there is no template. A pad equal to an eos that is not the
    turn end (Phi-3's `<|endoftext|>` next to `<|end|>`) is harmless and not reported.

    ## Why is this bad?
    Data collators mask padding out of the labels by id. With `pad_token == eos_token`, every
    eos in the training data is masked too: the model is never trained to stop and rambles at
    inference. The finding is an error when, in addition, the token's output row is untrained
    (all zero).

    ## Example
    A training script set `tokenizer.pad_token = tokenizer.eos_token` on a Llama 3 Instruct
    fine-tune, so `pad_token` and `eos_token` are both `<|eot_id|>`.

    ## Fix
    None automatic (the weights are already trained). For the next run use a dedicated pad token
    (Llama 3's `<|finetune_right_pad_id|>`, Qwen's `<|endoftext|>`) or a collator that keeps eos
    in the labels, and check the model stops (`ftfix verify`).

    ## Fix safety
    No fix is offered: changing the pad token now does not retrain eos.
    """

    code = "FTX207"
    name = "pad-token-is-eos"
    severity = Severity.WARNING
    needs = frozenset()
    other_severities = (Severity.ERROR,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when pad is the stop token (tokenizer or config ids)."""
        setup = stop_setup(ctx)
        tokenizer = setup.tokenizer if setup is not None else _tokenizer_of(ctx)
        specials = tokenizer.special_tokens()
        stop: str | None
        if setup is not None and setup.token is not None:
            stop, stop_id = setup.token, setup.token_id
        else:
            stop = specials.get("eos_token")
            stop_id = None if stop is None else tokenizer.token_id(stop)
        if stop is None:
            return
        places = []
        if specials.get("pad_token") == stop:
            own = tokenizer is ctx.target
            places.append(TOKENIZER_CONFIG if own else f"the base's {TOKENIZER_CONFIG}")
        if stop_id is not None:
            target = ctx.target
            if target.kind is Kind.MERGED and target.config.get("pad_token_id") == stop_id:
                places.append("config.json")
            if (target.generation_config or {}).get("pad_token_id") == stop_id:
                places.append(GENERATION_CONFIG)
        if not places:
            return
        row = None
        if stop_id is not None and ctx.target.kind is not Kind.TOKENIZER:
            row = untrained_output_row(ctx.target, stop_id, base=ctx.base_or_none)
        what = "eos_token" if stop == specials.get("eos_token") else "end-of-turn token"
        message = (
            f"pad token is {token_name(stop, stop_id)}, the {what} the model must emit to stop "
            f"(in {', '.join(places)}); a collator that masks padding never trained it"
        )
        if row is not None:
            message += f", and its output row ({row.describe()}) is {row.reason}"
        yield self.finding(
            message,
            path=places[0] if not places[0].startswith("the base") else None,
            severity=Severity.ERROR if row is not None else Severity.WARNING,
            data={"pad_token": stop, "pad_token_id": stop_id, "places": places},
        )
