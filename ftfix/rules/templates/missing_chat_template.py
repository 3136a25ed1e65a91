"""FTX001 missing-chat-template."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG
from ...registry import register
from ..base import Fixer


def has_tokenizer_files(ctx: Context) -> bool:
    """Whether the fine-tune ships its own tokenizer (an adapter without one uses the base's)."""
    return any(ctx.target.exists(name) for name in (TOKENIZER_CONFIG, "tokenizer.json"))


@register
class MissingChatTemplate(Fixer):
    """The fine-tuned checkpoint has no chat template but its base model has one.

    ## What it checks
    Every place a template can live, on both sides: `chat_template.jinja` and
    `additional_chat_templates/*.jinja` (transformers 5), the `chat_template` key of
    `tokenizer_config.json` (transformers 4: a string or a list of named templates), and a
    processor's `chat_template.json`. Only folders that ship their own tokenizer files are
    checked; an adapter without them is used with the base's tokenizer.

    ## Why is this bad?
    `apply_chat_template()` raises "tokenizer.chat_template is not set", and serving stacks fall
    back to a generic format the model never saw, so answers degrade or never stop.

    ## Example
    The base has `chat_template.jinja`; the training script saved the tokenizer of a base-model
    copy, so the fine-tune's folder has neither the file nor the key.

    ## Fix
    Copy the base's templates, byte for byte, in the layout the fine-tune already uses
    (`chat_template.jinja` for transformers 5 folders, the `tokenizer_config.json` key for
    transformers 4 folders). With `--template FILE` (`template=` in the API) the template in
    FILE, the one the model was trained with, is installed instead.

    ## Fix safety
    Safe: it only fills a gap, with the base's own template or the one the user named. A
    template that differs from the base is judged by other rules; a fine-tune whose base has
    no template either is FTX008.
    """

    code = "FTX001"
    name = "missing-chat-template"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the base has templates and the fine-tune has none."""
        base_templates = ctx.base.chat_templates()
        if not base_templates or not has_tokenizer_files(ctx):
            return
        if ctx.target.template_locations():
            return
        where = ctx.base.effective_template_location()
        message = "no chat template; base model defines one" + (
            f" in {where.describe()}" if where else ""
        )
        title = "Copy chat template from base"
        installed = base_templates
        if ctx.options.template is not None:
            # The user named the template the model was trained with: it wins over the base's.
            installed = {"default": ctx.options.template}
            message += "; installing the --template template"
            title = "Install the --template chat template"
        edits = edit_chat_templates(ctx.target, installed)
        yield self.finding(
            message,
            path=edits[0].path if edits else CHAT_TEMPLATE_FILE,
            fix=Fix(title, Applicability.SAFE, tuple(edits)),
            data={"base_templates": sorted(base_templates)},
        )
