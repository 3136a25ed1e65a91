"""FTX002 generation-prompt-lost."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...analysis.templates import Verdict, compare, reference, reference_renders
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class GenerationPromptLost(Fixer):
    r"""The fine-tuned chat template lost the base's generation prompt.

    ## What it checks
    Both templates are rendered, in the same sandbox transformers uses and with the fine-tune's
    special tokens, over the probe conversations (one user turn, system + user, multi-turn,
    assistant last) with and without `add_generation_prompt`. The rule fires when every probe
    renders identically to the base's without the flag, but with the flag the fine-tune's
    template does not append what the base's appends: it appends nothing, or a prompt missing
    what the base's opens.

    ## Why is this bad?
    At inference `apply_chat_template(..., add_generation_prompt=True)` never opens an assistant
    turn (Llama 3's `<|start_header_id|>assistant<|end_header_id|>\n\n`, ChatML's
    `<|im_start|>assistant\n`). The model continues the user's turn or emits an empty or
    truncated answer. Training never shows this, because training renders whole conversations.

    ## Example
    A training script hard-codes a Llama 3 template ending in `{% endfor %}`, without the
    `{% if add_generation_prompt %}...{% endif %}` tail, and saves it over the base template.

    ## Fix
    Restore the base's default template in every place the fine-tune stores one (other named
    templates are kept). With `--template FILE` the template in FILE is the reference instead of
    the base's, both for the comparison and for the fix.

    ## Fix safety
    Safe when the fine-tune's prompt is empty (or not a prompt at all): the two templates are
    shown to render every probe conversation identically except for the generation prompt, so
    restoring the base changes nothing else. A prompt that keeps or extends the base's (the newer
    DeepSeek-R1 template's `<｜Assistant｜><think>\n` after `<｜Assistant｜>`), or a base whose
    prompt is empty, is a change, not a loss: not reported. A non-empty prompt missing what the
    base's opens is reported with an unsafe fix. A template that differs in more than that is
    left to the template-format rules.
    """

    code = "FTX002"
    name = "generation-prompt-lost"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when only the generation prompt differs from the reference's render."""
        ref = reference(ctx)
        base_source = ref.default if ref is not None else None
        target_source = ctx.target.chat_template()
        if base_source is None or target_source is None or base_source == target_source:
            return
        if not has_tokenizer_files(ctx):
            return
        tokens = ctx.target.special_tokens()
        base = reference_renders(ctx, base_source, tokens)
        target = ctx.renders(target_source, tokens)
        comparison = compare(target, base)
        if comparison.verdict is not Verdict.GENERATION_PROMPT_LOST:
            return
        assert ref is not None
        assert comparison.probe is not None
        probe = comparison.probe
        expected = base.by_name()[probe].generation_prompt
        observed = target.by_name()[probe].generation_prompt
        applicability = Applicability.SAFE
        if observed == "":
            what = "appends nothing"
        elif observed is None:
            what = "changes the conversation instead of appending a prompt"
        elif not expected or not expected.strip() or expected.strip() in observed:
            # The fine-tune's prompt keeps (or extends) what the reference's opens, or the
            # reference opens nothing: the prompt changed, it was not lost.
            return
        else:
            # It renders a prompt the model can answer after, only not the reference's: a
            # different choice, never replaced silently.
            what = f"appends {observed!r}, which lacks what the reference opens"
            applicability = Applicability.UNSAFE
        location = ctx.target.effective_template_location()
        templates = {**ctx.target.chat_templates(), "default": base_source}
        yield self.finding(
            f"with add_generation_prompt=True the template {what}; {ref.label} appends"
            f" {expected!r}",
            path=location.path if location else None,
            fix=Fix(
                f"Restore the {ref.noun} chat template",
                applicability,
                tuple(edit_chat_templates(ctx.target, templates)),
            ),
            data={
                "probe": probe,
                "expected_generation_prompt": expected,
                "observed_generation_prompt": observed,
                "probes_compared": list(comparison.shared),
            },
        )
