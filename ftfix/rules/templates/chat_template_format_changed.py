"""FTX004 chat-template-format-changed."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.templates import Verdict, breakage, compare, reference, reference_renders
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class ChatTemplateFormatChanged(Fixer):
    r"""The fine-tuned chat template renders conversations in a different format than the base's.

    ## What it checks
    Both default templates are rendered, in transformers' sandbox and with the fine-tune's
    special tokens, over the probe conversations (one user turn, system + user, multi-turn,
    assistant last, system + multi-turn) without `add_generation_prompt`. The rule fires when
    any shape both templates accept renders differently, and shows the first differing
    characters. Shapes either template refuses are skipped. With `--template FILE` the template
    in FILE is compared instead of the base's.

    ## Why is this bad?
    Often it is not: a fine-tune may switch format on purpose (e.g. a Llama 3 base trained on
    ChatML with `<|im_start|>` tokens). But when it is an accident (a training framework's
    default template saved over the base's), every server now prompts the model in a format it
    was not trained on, while base-model tooling and documentation describe the other one. The
    stop tokens, generation prompt and markers of the new format must all work: FTX005, FTX007
    and the stop-token rules check those.

    ## Example
    The base renders `<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>`; the
    fine-tune renders `<|im_start|>user\nhello<|im_end|>\n`.

    ## Fix
    None: ftfix respects a deliberate change and repairs the new format (generation prompt,
    stop tokens) instead of reverting it. If the change was an accident, copy the base's
    template by hand, or pass `--template FILE` with the template the model was trained with.

    ## Fix safety
    None: no fix is offered.
    """

    code = "FTX004"
    name = "chat-template-format-changed"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when renders without the generation prompt differ from the reference."""
        ref = reference(ctx)
        source = ctx.target.chat_template()
        if ref is None or ref.default is None or source is None or source == ref.default:
            return
        if not has_tokenizer_files(ctx):
            return
        tokens = ctx.target.special_tokens()
        mine, theirs = ctx.renders(source, tokens), reference_renders(ctx, ref.default, tokens)
        if breakage(mine) is not None or breakage(theirs) is not None:
            return
        comparison = compare(mine, theirs)
        if comparison.verdict is not Verdict.FORMAT_CHANGED:
            return
        location = ctx.target.effective_template_location()
        yield self.finding(
            f"chat template renders a different format than the {ref.noun} template: probe "
            f"{comparison.probe!r} renders {comparison.observed!r}, the {ref.noun} template "
            f"{comparison.expected!r}",
            path=location.path if location else None,
            data={
                "probe": comparison.probe,
                "observed": comparison.observed,
                "expected": comparison.expected,
                "probes_compared": list(comparison.shared),
            },
        )
