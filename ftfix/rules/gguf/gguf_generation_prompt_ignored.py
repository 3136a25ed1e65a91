"""FTX502 gguf-generation-prompt-ignored."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext, gguf_special_tokens
from ...findings import Applicability, Finding, Fix, Severity
from ...io.gguf import KEY_TEMPLATE
from ...registry import register
from ..base import GGUFFixer


@register
class GgufGenerationPromptIgnored(GGUFFixer):
    """The GGUF's chat template never opens an assistant turn.

    ## What it checks
    Renders `tokenizer.chat_template` over the probe conversations with and without
    `add_generation_prompt`; reports when every render is the same.

    ## Why is this bad?
    llama-server (`--jinja`), LM Studio and llama-cpp-python render the GGUF's template with
    `add_generation_prompt=True` and let the model continue. Without an assistant header the
    model continues the user's turn, answers empty, or answers as the user.

    ## Example
    A training script saved a template without the `{% if add_generation_prompt %}` tail; the
    GGUF converted from it carries it.

    ## Fix
    When the Hugging Face folder (or base) passed with the GGUF has a template that does open
    the assistant turn, writes that template into the GGUF (the metadata section is rewritten;
    tensor data is streamed after it unchanged). Otherwise none: repair the folder
    (`ftfix repair`) and pass it with `--gguf`.

    ## Fix safety
    Safe from the folder the GGUF was converted from; unsafe from a base model (its template
    may format turns differently).
    """

    code = "FTX502"
    name = "gguf-generation-prompt-ignored"
    severity = Severity.ERROR

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding when the template ignores the generation prompt."""
        template = ctx.template()
        if template is None:
            return
        specials = gguf_special_tokens(ctx.meta)
        if not ctx.renders(template, specials).ignores_generation_prompt():
            return
        fix = None
        ref = ctx.reference_template()
        if (
            ref is not None
            and ref != template
            and not ctx.renders(ref, specials).broken
            and not ctx.renders(ref, specials).ignores_generation_prompt()
        ):
            safe = ctx.reference_role == "finetuned"
            fix = Fix(
                f"Write the chat template of {ctx.reference_role} into the GGUF",
                Applicability.SAFE if safe else Applicability.UNSAFE,
                (ctx.edit(KEY_TEMPLATE, ref, f"chat template from {ctx.reference_role}"),),
            )
        yield self.finding(
            "tokenizer.chat_template renders the same with and without add_generation_prompt: "
            "prompts never open an assistant turn",
            path=None,
            fix=fix,
        )
