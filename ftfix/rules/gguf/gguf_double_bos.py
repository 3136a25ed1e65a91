"""FTX501 gguf-double-bos."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext, gguf_special_tokens
from ...findings import Applicability, Finding, Fix, Severity
from ...io.gguf import KEY_ADD_BOS
from ...registry import register
from ..base import GGUFFixer


@register
class GgufDoubleBos(GGUFFixer):
    """The GGUF's template prints BOS and llama.cpp adds another one.

    ## What it checks
    Whether `tokenizer.ggml.add_bos_token` is true and the rendered `tokenizer.chat_template`
    starts with the BOS token's text.

    ## Why is this bad?
    llama.cpp tokenizes the rendered prompt with `add_special` when `add_bos_token` is set, so
    the prompt starts with two BOS tokens, a sequence the model never saw in training
    (llama-server warns "Added a BOS token to the prompt as specified by the model but the
    prompt also starts with a BOS token"). Answers degrade subtly.

    ## Example
    A Llama 3 fine-tune whose template begins with `{{ bos_token }}`, converted with
    `add_bos_token = true`.

    ## Fix
    Sets `tokenizer.ggml.add_bos_token` to false (one byte, in place).

    ## Fix safety
    Unsafe: raw completions without the template then get no BOS at all.
    """

    code = "FTX501"
    name = "gguf-double-bos"
    severity = Severity.WARNING

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding when both the template and llama.cpp add BOS."""
        template = ctx.template()
        specials = gguf_special_tokens(ctx.meta)
        bos = specials.get("bos_token")
        if template is None or not bos or ctx.meta.get(KEY_ADD_BOS) is not True:
            return
        renders = ctx.renders(template, specials).by_name()
        if not renders or not all(
            isinstance(p.plain, str) and p.plain.startswith(bos) for p in renders.values()
        ):
            return
        edit = ctx.edit(KEY_ADD_BOS, False, "add_bos_token = false")
        yield self.finding(
            f"the chat template starts with {bos} and {KEY_ADD_BOS} is true: llama.cpp "
            f"prompts start with {bos} twice",
            path=None,
            fix=Fix(f"Set {KEY_ADD_BOS} to false", Applicability.UNSAFE, (edit,)),
        )
