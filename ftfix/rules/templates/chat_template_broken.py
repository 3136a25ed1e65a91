"""FTX003 chat-template-broken."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...analysis.templates import breakage, reference
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files


@register
class ChatTemplateBroken(Fixer):
    """The fine-tuned chat template cannot be used: it does not compile, fails or misbehaves.

    ## What it checks
    Every template transformers would load from the fine-tune (the default one and named ones
    such as `tool_use`) is compiled and rendered over the probe conversations, with and without
    `add_generation_prompt`, in transformers' immutable sandbox under a time limit (2 s per
    render) and an output limit (1,000,000 characters). It is broken when it does not compile,
    when the sandbox stops it (it reached for Python internals or tried to change its inputs),
    when it runs out of time or output, or, for the default template, when it fails on every
    probe conversation. A template that refuses some shapes (e.g. "system role not supported")
    is not broken: those shapes are skipped.

    ## Why is this bad?
    `apply_chat_template()` raises for every request, so no chat request can be served. A
    template that tries to escape the sandbox, or loops, is hostile or damaged code: ftfix only
    ever renders it in the sandbox, bounded, and nothing it does has side effects.

    ## Example
    A hand-edited `chat_template.jinja` with an unclosed `{% if %}`; or a template downloaded
    with a fine-tune that reads `''.__class__.__mro__`; or one stuck in nested loops.

    ## Fix
    Restore the base's template of the same name in every place the fine-tune stores it (with
    `--template FILE`, the template in FILE replaces the default one). Without a reference
    template there is no fix.

    ## Fix safety
    Unsafe: it replaces the fine-tune's own template, which may encode a format the model was
    trained with; check the restored template matches the training format.
    """

    code = "FTX003"
    name = "chat-template-broken"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per template that does not compile, misbehaves or always fails."""
        if not has_tokenizer_files(ctx):
            return
        templates = ctx.target.chat_templates()
        tokens = ctx.target.special_tokens()
        ref = reference(ctx)
        for name, source in templates.items():
            broken = breakage(ctx.renders(source, tokens), every_probe_counts=name == "default")
            if broken is None:
                continue
            label = "chat template" if name == "default" else f"chat template {name!r}"
            restore = ref.templates.get(name) if ref is not None else None
            fix = None
            if ref is not None and restore is not None and restore != source:
                edits = edit_chat_templates(ctx.target, {**templates, name: restore})
                fix = Fix(f"Restore the {ref.noun} {label}", Applicability.UNSAFE, tuple(edits))
            location = next(
                (
                    loc
                    for loc in ctx.target.template_locations()
                    if loc.name == name and loc.source == source
                ),
                None,
            )
            yield self.finding(
                f"{label} {broken.describe()}",
                path=location.path if location else None,
                fix=fix,
                data={
                    "template": name,
                    "kind": broken.kind,
                    "error_kind": broken.error.kind,
                    "error": broken.error.message,
                    "probe": broken.probe,
                },
            )
