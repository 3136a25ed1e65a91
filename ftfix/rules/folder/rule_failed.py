"""FTX921 rule-failed."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer


@register
class RuleFailed(Fixer):
    """A rule could not check this checkpoint: a value in it broke the library that reads it.

    ## What it checks
    Nothing by itself. When another rule raises on the folder's content (an id of `-1` or
    `2**64` handed to the tokenizer, a lone surrogate in a token, a panic inside a Rust
    extension), the run records this finding with the rule's code and the error, and goes on
    with the other rules, instead of stopping with a traceback.

    ## Why is this bad?
    The value that broke ftfix breaks the libraries that load the model too (tokenizers and
    transformers read the same files the same way), and the rule that failed checked nothing:
    what it looks for may be wrong as well.

    ## Example
    `generation_config.json` says `"eos_token_id": -1`; mapping the id to a token raises
    `OverflowError` in tokenizers.

    ## Fix
    None automatic: correct the value the message names (copy the file from the base if it was
    not meant to change), then run `ftfix check` again.

    ## Fix safety
    No fix is offered: ftfix cannot tell what the broken value was meant to be.
    """

    code = "FTX921"
    name = "rule-failed"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield nothing: the run reports other rules' failures under this code."""
        return iter(())

    def failed(self, rule: Fixer, exc: BaseException) -> Finding:
        """The finding for `rule` raising `exc` on this checkpoint."""
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        return self.finding(
            f"{rule.code} {rule.name} could not check this checkpoint: "
            f"{type(exc).__name__}: {text}",
            data={"rule": rule.code, "error": type(exc).__name__, "message": text},
        )
