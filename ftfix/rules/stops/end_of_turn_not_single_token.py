"""FTX205 end-of-turn-not-single-token."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.stops import StopSetup, stop_setup
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer, Need


def _pieces(setup: StopSetup, text: str) -> list[str] | None:
    tokenizer = setup.tokenizer.tokenizer()
    if tokenizer is None:
        return None
    return list(tokenizer.encode(text, add_special_tokens=False).tokens)


@register
class EndOfTurnNotSingleToken(Fixer):
    r"""The chat template does not end assistant turns with one token of the tokenizer.

    ## What it checks
    What the template prints right after an assistant answer (found by rendering two different
    answers). It must start with a token of the tokenizer's added or special tokens, because a
    stop token is a token id:

    - the template ends turns with special-token-shaped text (`<|end|>`, `[/ANSWER]`) that the
      tokenizer does not have as one token, or names a special token (such as its `eos_token`)
      that is missing from `tokenizer.json`: error;
    - the turn ends with plain text (`"\n\n"`, `"### "`) or nothing: warning.

    ## Why is this bad?
    No `eos_token_id` can name a piece of text: if the model learned to end answers with
    `<`, `|`, `end`, `|`, `>` nothing stops it. With plain-text turn ends, generation stops
    only if the model also learned to emit eos there, which the template never shows.

    ## Example
    A template that ends turns with `<|end|>` saved with a tokenizer to which `<|end|>` was
    never added.

    ## Fix
    None automatic. Add the marker as a special token and train its embedding and `lm_head`
    rows (PEFT `modules_to_save` or `trainable_token_indices`), or end turns with a special
    token the tokenizer has; for plain-text turn ends, stop on strings (`stop_strings` in
    transformers, `stop` in vLLM).

    ## Fix safety
    No fix is offered: the remedy is retraining or a serving option.
    """

    code = "FTX205"
    name = "end-of-turn-not-single-token"
    severity = Severity.ERROR
    needs = frozenset({Need.TOKENIZER})
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the turn end is not one token of the tokenizer."""
        setup = stop_setup(ctx)
        if setup is None:
            return
        end = setup.end
        marker = end.token if end.token is not None else end.unknown
        data: dict[str, object] = {"trailer": end.trailer, "position": end.position}
        if marker is not None:
            if end.token is not None and setup.token_id is not None:
                return
            if setup.tokenizer.tokenizer() is None:
                return  # without tokenizer.json (a sentencepiece-only folder) we cannot tell
            pieces = _pieces(setup, marker)
            detail = f"; it encodes as {len(pieces)} tokens {pieces}" if pieces else ""
            data["marker"] = marker
            yield self.finding(
                f"assistant turns end with {marker!r}, which is not one token of the "
                f"tokenizer{detail}",
                data=data,
            )
            return
        eos = setup.tokenizer.special_tokens().get("eos_token")
        shown = end.trailer if len(end.trailer) <= 40 else end.trailer[:40] + "..."
        yield self.finding(
            f"assistant turns end with {shown!r}, not with a special token; generation stops "
            f"only if the model learned to emit eos ({eos}) there, which the template never shows",
            severity=Severity.WARNING,
            data=data,
        )
