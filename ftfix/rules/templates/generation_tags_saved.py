"""FTX011 generation-tags-saved."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.capabilities import (
    generation_tags,
    probes_same,
    shapes_same,
    without_generation_tags,
)
from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class GenerationTagsSaved(Fixer):
    r"""The saved chat template keeps training-only `{% generation %}` tags.

    ## What it checks
    Every chat template the fine-tune stores (default and named, in every location) is searched
    for `{% generation %}` and `{% endgeneration %}` tags.

    ## Why is this bad?
    TRL's `assistant_only_loss` needs the tags on the training template, so that transformers
    can mask everything but the assistant's tokens, and training scripts save that template
    with the model. transformers renders the tags, but other consumers do not know them:
    llama-cpp-python fails with "unknown tag 'generation'", and llama.cpp's and Ollama's template
    converters and other Jinja renderers refuse or mis-render the template.

    ## Example
    `{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}`
    `{% endgeneration %}{% else %}...`

    ## Fix
    Replace each tag by an empty Jinja comment with the same whitespace control, in every
    template that has them, once rendering proves the result identical: every probe
    conversation and every shape of today's chat (tools, tool calls and results, reasoning,
    the thinking switch) renders byte for byte as before. Train again with the tagged template
    if needed: `apply_chat_template(..., chat_template=...)` takes it per call.

    ## Fix safety
    Safe: the renders are shown to be byte-identical. When they are not, no fix is offered.
    """

    code = "FTX011"
    name = "generation-tags-saved"
    severity = Severity.WARNING
    # The fine-tune's own templates are judged: no base needed.
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding for the templates that carry generation tags."""
        templates = ctx.target.chat_templates()
        tagged = {name: source for name, source in templates.items() if generation_tags(source)}
        if not tagged or not has_tokenizer_files(ctx):
            return
        tokens = ctx.target.special_tokens()
        cleaned = {name: without_generation_tags(source) for name, source in tagged.items()}
        identical = all(
            probes_same(ctx.renders(cleaned[name], tokens), ctx.renders(source, tokens))
            and shapes_same(
                ctx.shape_renders(cleaned[name], tokens), ctx.shape_renders(source, tokens)
            )
            for name, source in tagged.items()
        )
        count = sum(len(generation_tags(source)) for source in tagged.values())
        names = ", ".join(sorted(tagged))
        fix = None
        if identical:
            fix = Fix(
                "Remove the generation tags from the chat template",
                Applicability.SAFE,
                tuple(edit_chat_templates(ctx.target, {**templates, **cleaned})),
            )
        location = ctx.target.effective_template_location()
        yield self.finding(
            f"chat template ({names}) keeps {count} training-only generation tag(s):"
            " llama-cpp-python fails with \"unknown tag 'generation'\" and other runtimes'"
            " template converters refuse them",
            path=location.path if location else None,
            fix=fix,
            data={"templates": sorted(tagged), "tags": count, "renders_identical": identical},
        )
