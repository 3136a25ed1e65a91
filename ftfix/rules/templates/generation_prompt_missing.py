"""FTX005 generation-prompt-missing."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...analysis.templates import (
    Verdict,
    breakage,
    compare,
    reference,
    reference_renders,
    splice_generation_prompt,
)
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class GenerationPromptMissing(Fixer):
    r"""The fine-tuned chat template ignores `add_generation_prompt`, so no answer is prompted.

    ## What it checks
    The fine-tune's default template is rendered over the probe conversations with and without
    `add_generation_prompt`. The rule fires when the flag changes nothing, although the template
    prints an assistant header before assistant answers (found by rendering two different
    sentinel answers after a user turn and taking what comes before them). It covers templates
    in a format of their own, or of a base model without a template; a template that renders
    exactly like the base's except for the generation prompt is FTX002 instead.
    Role-insensitive templates (a user turn framed exactly like an assistant turn) and headers
    that are only whitespace (Llama 2's `[/INST]` ends the user turn) need no generation prompt.

    ## Why is this bad?
    At inference the prompt ends after the user's turn. The model never sees the
    `<|im_start|>assistant\n` it always saw before answers in training, so it continues the
    user's turn, opens a turn of its own choosing, or answers nothing.

    ## Example
    LLaMA-Factory saved a ChatML template that ends right after `{% endfor %}`:
    `{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content']`
    `+ '<|im_end|>\n' }}{% endfor %}`, with no `{% if add_generation_prompt %}` tail.

    ## Fix
    Splice a generation-prompt branch into the template:
    `{%+ if add_generation_prompt %}{{ '<assistant header>' }}{% endif %}` after everything it
    prints. A template that ends every conversation with some text (Phi-3's `eos_token`) has
    its output captured instead, and with the flag that ending is replaced by the header. The
    spliced template is kept only if rendering proves it: without the flag every probe renders
    as before; with it, each render ends with exactly the assistant header; and in a multi-turn
    conversation the prompt ends exactly where the template puts the next assistant answer.
    It is written to every place the fine-tune stores its default template.
    The header is what every final answer starts with: for a reasoning template that opens a
    block in every final answer (Qwen3's `<think>\n`, closed empty when there is no reasoning)
    the prompt opens it, and `enable_thinking=False` closes it at once as the template closes
    it for answers without reasoning (unless the template reads `enable_thinking` itself); for
    gpt-oss, whose answers and reasoning go to different channels, it stops at
    `<|start|>assistant`. Trailing spaces (`Assistant: `) are left to the model.

    ## Fix safety
    Unsafe: it edits the fine-tune's template. The header is derived from the template's own
    output, not from the training data; review the diff (`ftfix repair --diff --unsafe-fixes`).
    """

    code = "FTX005"
    name = "generation-prompt-missing"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the template ignores the flag but frames assistant turns."""
        source = ctx.target.chat_template()
        if source is None or not has_tokenizer_files(ctx):
            return
        tokens = ctx.target.special_tokens()
        renders = ctx.renders(source, tokens)
        if breakage(renders) is not None or not renders.ignores_generation_prompt():
            return
        ref = reference(ctx)
        if ref is not None and ref.default is not None:
            ref_renders = reference_renders(ctx, ref.default, tokens)
            if compare(renders, ref_renders).verdict is Verdict.GENERATION_PROMPT_LOST:
                return  # identical to the reference but for the prompt: FTX002 restores it
        splice = splice_generation_prompt(source, tokens, ctx.renders)
        header = splice.header.text if splice.header is not None else None
        if header is None or not header.strip():
            return  # role-insensitive, or nothing but whitespace to prompt with
        location = ctx.target.effective_template_location()
        message = (
            "with add_generation_prompt=True the template appends nothing; assistant answers "
            f"follow {header!r}"
        )
        fix = None
        if splice.source is not None:
            templates = {**ctx.target.chat_templates(), "default": splice.source}
            fix = Fix(
                f"Splice a generation prompt {header!r} into the chat template",
                Applicability.UNSAFE,
                tuple(edit_chat_templates(ctx.target, templates)),
            )
        else:
            message += f"; cannot splice a prompt: {splice.reason}"
        yield self.finding(
            message,
            path=location.path if location else None,
            fix=fix,
            data={"assistant_header": header, "splice_failure": splice.reason or None},
        )
