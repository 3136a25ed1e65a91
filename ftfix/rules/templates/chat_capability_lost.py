"""FTX009 chat-capability-lost."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.capabilities import CONSEQUENCES, losses, only_losses_differ, probes_same
from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...analysis.templates import breakage, reference, reference_renders, reference_tokens
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class ChatCapabilityLost(Fixer):
    r"""The fine-tuned chat template lost tools, tool calls, tool results, reasoning or thinking.

    ## What it checks
    Both default templates are rendered, in transformers' sandbox, over the conversations of
    today's chat: a `tools=[...]` list, an assistant turn with `tool_calls` (arguments as a dict
    and as a JSON string, content empty or absent), `tool` results with and without
    `tool_call_id`/`name`, an answer with `reasoning_content`, and `enable_thinking` true and
    false. The base has a capability when its render shows what the conversation carries (the
    tool's name, the call's arguments, the result, the reasoning) or, for the thinking switch,
    when true and false render differently. The rule fires when the fine-tune's template drops
    a capability the base has (renders without it), fails on every conversation of it, or,
    while the plain conversations render identically, renders it differently. A template that
    ignores tools its base ignores too is not broken. With `--template FILE` the template in
    FILE is the reference.

    ## Why is this bad?
    Training frameworks save simplified templates without the tools or reasoning branches, and
    the model loses them where it is served. Ollama only enables tools for a model whose
    template uses them ("does not support tools"); vLLM and SGLang prompt the model without its
    tools, and their tool-call and reasoning parsers expect the format the model saw in
    training; an agent's tool results never reach the model; `enable_thinking=false`
    (`chat_template_kwargs`, Ollama's `think`) no longer switches thinking off.

    ## Example
    Qwen3's template saved without its `{%- if tools %}` branch: `tools=[...]` renders exactly
    like a conversation without tools.

    ## Fix
    Restore the base's default template in every place the fine-tune stores one (other named
    templates are kept), when the two templates render every plain conversation, and every
    conversation of the capabilities not lost, byte for byte alike. Otherwise the finding is
    reported without a fix.

    ## Fix safety
    Safe: the templates are shown to differ only on the lost capabilities, so restoring the
    base's changes nothing else.
    """

    code = "FTX009"
    name = "chat-capability-lost"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding naming every capability the reference has and the target lost."""
        ref = reference(ctx)
        base_source = ref.default if ref is not None else None
        source = ctx.target.chat_template()
        if ref is None or base_source is None or source is None or source == base_source:
            return
        if not has_tokenizer_files(ctx):
            return
        tokens = ctx.target.special_tokens()
        theirs = reference_renders(ctx, base_source, tokens)
        mine = ctx.renders(source, tokens)
        if breakage(mine) is not None or breakage(theirs) is not None:
            return  # FTX003 speaks for a broken template
        ref_tokens = reference_tokens(ctx, base_source, tokens)
        same = probes_same(mine, theirs)
        target_shapes = ctx.shape_renders(source, tokens)
        ref_shapes = ctx.shape_renders(base_source, ref_tokens)
        lost = losses(target_shapes, ref_shapes, same_format=same)
        if not lost:
            return
        what = ", ".join(loss.describe() for loss in lost)
        consequences = "; ".join(
            f"{loss.capability}: {CONSEQUENCES[loss.capability]}" for loss in lost
        )
        fix = None
        if only_losses_differ(target_shapes, ref_shapes, lost, same):
            templates = {**ctx.target.chat_templates(), "default": base_source}
            fix = Fix(
                f"Restore the {ref.noun} chat template",
                Applicability.SAFE,
                tuple(edit_chat_templates(ctx.target, templates)),
            )
        location = ctx.target.effective_template_location()
        yield self.finding(
            f"the chat template {what} that {ref.label} renders ({consequences})",
            path=location.path if location else None,
            fix=fix,
            data={
                "lost": [
                    {
                        "capability": loss.capability,
                        "how": loss.how,
                        "shape": loss.shape,
                        "observed": loss.observed,
                        "expected": loss.expected,
                    }
                    for loss in lost
                ],
                "only_these_differ": fix is not None,
            },
        )
