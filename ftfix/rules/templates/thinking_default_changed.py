"""FTX010 thinking-default-changed."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.capabilities import thinking_default
from ...analysis.context import Context
from ...analysis.templates import breakage, reference, reference_renders, reference_tokens
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


def _state(thinks: bool) -> str:
    return "thinks" if thinks else "does not think"


@register
class ThinkingDefaultChanged(Fixer):
    r"""The fine-tuned template thinks by default where the base's did not, or the reverse.

    ## What it checks
    Both default templates are rendered after a user turn, with the generation prompt, with
    `enable_thinking` true, false and unset. A template whose true and false renders differ
    has a thinking switch, and its default is the setting the unset render equals. The rule
    fires when both templates have a switch and their defaults differ. With `--template FILE`
    the template in FILE is the reference.

    ## Why is this bad?
    Clients that never pass `enable_thinking` (most OpenAI-compatible ones) get the other
    behaviour: a fine-tune trained without reasoning now opens an empty or endless `<think>`
    block, or a reasoning model answers without thinking. Users report "the merged Qwen3 thinks
    although training used `enable_thinking: false`".

    ## Example
    Qwen3's prompt ends with `<|im_start|>assistant\n` unless `enable_thinking` is false; the
    fine-tune's template appends `<think>\n\n</think>\n\n` unless `enable_thinking` is true.

    ## Fix
    None in the files: the default may be what training wanted. Choose it where the model is
    served: `chat_template_kwargs={"enable_thinking": false}` (vLLM, SGLang, transformers'
    `apply_chat_template(..., enable_thinking=False)`), or restore the base's template by hand.

    ## Fix safety
    None: no fix is offered.
    """

    code = "FTX010"
    name = "thinking-default-changed"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when both templates switch thinking and their defaults differ."""
        ref = reference(ctx)
        base_source = ref.default if ref is not None else None
        source = ctx.target.chat_template()
        if ref is None or base_source is None or source is None or source == base_source:
            return
        if not has_tokenizer_files(ctx):
            return
        tokens = ctx.target.special_tokens()
        theirs = reference_renders(ctx, base_source, tokens)
        if breakage(ctx.renders(source, tokens)) is not None or breakage(theirs) is not None:
            return
        ref_tokens = reference_tokens(ctx, base_source, tokens)
        mine = thinking_default(ctx.shape_renders(source, tokens))
        expected = thinking_default(ctx.shape_renders(base_source, ref_tokens))
        if mine is None or expected is None or mine == expected:
            return
        switch = "false" if mine else "true"
        location = ctx.target.effective_template_location()
        yield self.finding(
            f"with enable_thinking unset the template {_state(mine)}; {ref.label}"
            f" {_state(expected)} by default (serve with"
            f' chat_template_kwargs={{"enable_thinking": {switch}}} to get {ref.label}\'s'
            " behaviour)",
            path=location.path if location else None,
            data={"thinks_by_default": mine, "reference_thinks_by_default": expected},
        )
