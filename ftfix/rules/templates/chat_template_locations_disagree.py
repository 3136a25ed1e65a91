"""FTX006 chat-template-locations-disagree."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ...analysis.context import Context
from ...analysis.edits import edit_json, edit_text
from ...analysis.probes import TemplateRenders, first_difference
from ...analysis.render import TemplateRenderError
from ...analysis.templates import Reference, breakage, reference
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import PROCESSOR_TEMPLATE_FILE, TOKENIZER_CONFIG, Checkpoint, TemplateLocation
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files

# Who reads each place, for the message (transformers 5.x; llama.cpp's convert_hf_to_gguf.py
# prefers the tokenizer_config.json key over the .jinja file; TGI reads tokenizer_config.json).
_READERS = {
    TOKENIZER_CONFIG: "llama.cpp's GGUF converter and TGI read the tokenizer_config.json key",
    PROCESSOR_TEMPLATE_FILE: "transformers' AutoProcessor reads chat_template.json",
}


def _same(a: str | TemplateRenderError, b: str | TemplateRenderError) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return (a.kind, a.message) == (b.kind, b.message)


def _same_behaviour(a: TemplateRenders, b: TemplateRenders) -> bool:
    """Every probe renders the same (or fails the same way) with and without the flag."""
    if a.compile_error is not None or b.compile_error is not None:
        return False
    return all(
        _same(p.plain, q.plain) and _same(p.with_prompt, q.with_prompt)
        for p, q in zip(a.probes, b.probes, strict=True)
    )


def _evidence(stale: TemplateRenders, chosen: TemplateRenders, where: str) -> str:
    """A clause showing the first probe the two copies render differently."""
    if stale.compile_error is not None:
        return f"; it does not compile: {stale.compile_error.message}"
    for p, q in zip(stale.probes, chosen.probes, strict=True):
        for a, b in ((p.plain, q.plain), (p.with_prompt, q.with_prompt)):
            if _same(a, b):
                continue
            if isinstance(a, TemplateRenderError):
                return f"; on probe {p.probe!r} it fails ({a}) where {where} renders"
            if isinstance(b, TemplateRenderError):
                return f"; on probe {p.probe!r} it renders where {where} fails ({b})"
            observed, expected = first_difference(a, b)
            return f"; probe {p.probe!r} renders {observed!r} there, {expected!r} in {where}"
    return ""


def _rewrite(target: Checkpoint, path: str, chosen: Mapping[str, str]) -> FileEdit | None:
    """Put the chosen templates (name -> source) into the one file `path`, in its own shape."""
    if path == TOKENIZER_CONFIG:
        value: Any = target.tokenizer_config.get("chat_template")
        if isinstance(value, str):
            return edit_json(target, path, {"chat_template": chosen.get("default", value)})
        entries = [
            {**item, "template": chosen[item["name"]]}
            if isinstance(item, dict) and item.get("name") in chosen
            else item
            for item in value
        ]
        return edit_json(target, path, {"chat_template": entries})
    if path == PROCESSOR_TEMPLATE_FILE:
        return edit_json(target, path, {"chat_template": chosen["default"]})
    # A .jinja file is what transformers reads; it only differs from itself in odd layouts.
    return edit_text(target, path, next(iter(chosen.values())))


@register
class ChatTemplateLocationsDisagree(Fixer):
    """The places a checkpoint stores its chat template hold different templates.

    ## What it checks
    A template can be stored in `chat_template.jinja` (plus `additional_chat_templates/NAME.jinja`),
    in the `chat_template` key of `tokenizer_config.json` (a string, or a list of named
    templates), and in a processor's `chat_template.json`. For each template name, every stored
    copy is rendered over the probe conversations with and without `add_generation_prompt` and
    compared with the one transformers' tokenizer loads (the `.jinja` files win over the key).
    Copies that differ only in text but render the same are fine.

    ## Why is this bad?
    Each consumer reads a different place, so each serves a different format: transformers'
    tokenizer (and vLLM/SGLang, which load it) reads `chat_template.jinja`; llama.cpp's
    `convert_hf_to_gguf.py` puts the `tokenizer_config.json` key into the GGUF file when it
    exists and only falls back to the `.jinja` file; TGI reads the key; transformers'
    `AutoProcessor` prefers `chat_template.json`. The model answers well in one stack and
    badly in another.

    ## Example
    A v4-era `tokenizer_config.json` still holds the base's Llama 3 template while the
    `chat_template.jinja` written by transformers 5 at the end of training holds the ChatML
    template the model was trained on.

    ## Fix
    Write the template transformers' tokenizer loads into every other place, per name, keeping
    each file's shape (a string stays a string, a list keeps its other entries). Not offered
    when that template is broken (FTX003) or lost the generation prompt the stale copy still
    has (FTX002, FTX005).

    ## Fix safety
    Depends: safe when the template written is the base's own (or the `--template` one), byte
    for byte, since it then only copies from the reference; otherwise unsafe, because the stale
    copy may be the one someone meant (`tokenizer_config.json` is the file people edit by hand).
    """

    code = "FTX006"
    name = "chat-template-locations-disagree"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per file whose copy renders differently from the loaded template."""
        if not has_tokenizer_files(ctx):
            return
        chosen = ctx.target.chat_templates()
        tokens = ctx.target.special_tokens()
        locations = ctx.target.template_locations()
        ref = reference(ctx)
        stale: dict[str, list[TemplateLocation]] = {}
        for loc in locations:
            source = chosen.get(loc.name)
            if source is None or loc.source == source:
                continue
            if _same_behaviour(ctx.renders(loc.source, tokens), ctx.renders(source, tokens)):
                continue
            stale.setdefault(loc.path, []).append(loc)
        for path, stale_locs in stale.items():
            yield self._finding(ctx, path, stale_locs, locations, chosen, tokens, ref)

    def _finding(
        self,
        ctx: Context,
        path: str,
        stale_locs: list[TemplateLocation],
        locations: list[TemplateLocation],
        chosen: Mapping[str, str],
        tokens: Mapping[str, str],
        ref: Reference | None,
    ) -> Finding:
        first = stale_locs[0]
        source = chosen[first.name]
        loaded = next(
            (loc for loc in locations if loc.name == first.name and loc.source == source), None
        )
        where = loaded.describe() if loaded else "the loaded template"
        readers = _READERS.get(path, f"some tools read {path}")
        name = "" if first.name == "default" else f" {first.name!r}"
        message = (
            f"{first.describe()} holds a different chat template{name} than {where}: "
            f"transformers loads {where}, {readers}"
        ) + _evidence(ctx.renders(first.source, tokens), ctx.renders(source, tokens), where)
        names = {loc.name: chosen[loc.name] for loc in stale_locs}
        fix = None
        blocked = any(
            breakage(ctx.renders(chosen[loc.name], tokens)) is not None
            or _loses_prompt(ctx.renders(chosen[loc.name], tokens), ctx.renders(loc.source, tokens))
            for loc in stale_locs
        )
        if not blocked:
            edit = _rewrite(ctx.target, path, names)
            from_ref = ref is not None and all(ref.templates.get(n) == s for n, s in names.items())
            fix = Fix(
                f"Write the loaded chat template into {path}",
                Applicability.SAFE if from_ref else Applicability.UNSAFE,
                (edit,) if edit is not None else (),
            )
        return self.finding(
            message,
            path=path,
            fix=fix,
            data={
                "stale": [loc.describe() for loc in stale_locs],
                "loaded": where,
                "templates": sorted(names),
            },
        )


def _loses_prompt(chosen: TemplateRenders, stale: TemplateRenders) -> bool:
    """The loaded template ignores add_generation_prompt while the stale copy honours it."""
    honoured = bool(stale.by_name()) and not stale.ignores_generation_prompt()
    return chosen.ignores_generation_prompt() and honoured
