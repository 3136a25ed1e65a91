"""FTX505 gguf-vocabulary-differs."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext
from ...findings import Finding, Severity
from ...registry import register
from ..base import GGUFFixer


@register
class GgufVocabularyDiffers(GGUFFixer):
    """The GGUF's vocabulary is not the folder's.

    ## What it checks
    Compares the number of tokens in `tokenizer.ggml.tokens` with the folder's tokenizer (the
    `[PAD<id>]` fillers converters append up to the embedding size aside), and the id of every
    control and user-defined token.

    ## Why is this bad?
    A GGUF converted from another checkpoint (or before tokens were added) maps ids to other
    tokens: templates print markers the model reads as something else, and stop ids point at
    the wrong token.

    ## Example
    The fine-tune added `<|tool_call|>` (id 98); the GGUF has 98 tokens.

    ## Fix
    None: convert the folder again (`convert_hf_to_gguf.py`).

    ## Fix safety
    No fix is offered.
    """

    code = "FTX505"
    name = "gguf-vocabulary-differs"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding when sizes or special token ids differ."""
        ref = ctx.reference
        if ref is None or ctx.same_vocabulary():
            return
        tokenizer = ref.tokenizer()
        if tokenizer is None:
            return
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        shown = [f"{i}: {g} vs {r}" for i, g, r in ctx.mismatched_tokens()]
        detail = f"; ids that differ: {', '.join(shown)}" if shown else ""
        severity = Severity.ERROR if ctx.reference_role == "finetuned" else Severity.WARNING
        yield self.finding(
            f"the GGUF has {len(ctx.meta.tokens)} tokens, {ctx.reference_role}'s tokenizer "
            f"{size}{detail}",
            path=None,
            severity=severity,
        )
