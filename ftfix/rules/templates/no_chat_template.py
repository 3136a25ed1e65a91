"""FTX008 no-chat-template."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import CHAT_TEMPLATE_FILE
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class NoChatTemplate(Fixer):
    """Neither the fine-tuned checkpoint nor its base model has a chat template.

    ## What it checks
    Every place a template can live (`chat_template.jinja`, `additional_chat_templates/`, the
    `chat_template` key of `tokenizer_config.json`, a processor's `chat_template.json`), in a
    fine-tune that ships its own tokenizer files, when the base has no template either: the
    usual result of fine-tuning a *base* (pre-trained, not instruction-tuned) model into a chat
    model and saving the tokenizer without setting `tokenizer.chat_template`.

    ## Why is this bad?
    `apply_chat_template()` raises "tokenizer.chat_template is not set", and OpenAI-style chat
    endpoints (vLLM, TGI) refuse the model or fall back to a format it never saw. The format the
    model was trained with lives only in the training script.

    ## Example
    Llama-2-7b-hf (no template) fine-tuned on ChatML conversations with TRL; the saved folder
    has no `chat_template.jinja` and no `chat_template` key.

    ## Fix
    With `--template FILE` (`template=` in the API), install the template in FILE, the one the
    model was trained with, in the layout the fine-tune uses (`chat_template.jinja` for
    transformers 5 folders, the `tokenizer_config.json` key for transformers 4 folders).
    Without it there is nothing to restore: the finding says so.

    ## Fix safety
    Safe: it only fills a gap, with the template the user named.
    """

    code = "FTX008"
    name = "no-chat-template"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when no template exists on either side."""
        if ctx.base.chat_templates() or not has_tokenizer_files(ctx):
            return
        if ctx.target.template_locations():
            return
        if ctx.options.template is None:
            yield self.finding(
                "no chat template, and the base model has none either; pass --template FILE "
                "with the template the model was trained with",
                path=CHAT_TEMPLATE_FILE if ctx.target.layout == "v5" else "tokenizer_config.json",
            )
            return
        edits = edit_chat_templates(ctx.target, {"default": ctx.options.template})
        yield self.finding(
            "no chat template, and the base model has none either; installing the --template "
            "template",
            path=edits[0].path if edits else CHAT_TEMPLATE_FILE,
            fix=Fix("Install the --template chat template", Applicability.SAFE, tuple(edits)),
        )
