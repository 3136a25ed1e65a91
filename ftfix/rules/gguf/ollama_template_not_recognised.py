"""FTX506 ollama-template-not-recognised."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext, eog_ids, gguf_special_tokens
from ...analysis.ollama import MATCH_DISTANCE, OllamaTemplate, convert, levenshtein_below, modelfile
from ...analysis.render import TemplateRenderError, render
from ...analysis.stops import find_end_of_turn
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.gguf import KEY_EOS
from ...registry import register
from ..base import GGUFFixer

MODELFILE = "Modelfile"
_TOOLS = [{"type": "function", "function": {"name": "zqxtool", "description": "a tool",
           "parameters": {"type": "object", "properties": {}}}}]  # fmt: skip


def _uses_tools(source: str, tokens: dict[str, str]) -> bool:
    messages = [{"role": "user", "content": "hi"}]
    try:
        plain = render(source, messages, add_generation_prompt=True, special_tokens=tokens)
        tooled = render(
            source, messages, add_generation_prompt=True, special_tokens=tokens, tools=_TOOLS
        )
    except TemplateRenderError:
        return False
    return plain != tooled


@register
class OllamaTemplateNotRecognised(GGUFFixer):
    """`ollama create` will probably not recognise the GGUF's chat template.

    ## What it checks
    Ollama does not run the GGUF's Jinja template: `ollama create` compares
    `tokenizer.chat_template` with each template of its own library and takes the closest when
    the Levenshtein distance is below 100, else it uses `{{ .Prompt }}`: no roles, no stop
    words. ftfix reports a GGUF without a `Modelfile` beside it whose template is 100 edits or
    more from its base's (the base's template is the one Ollama's library would know), or, with
    no base to compare, any GGUF without a Modelfile.

    ## Why is this bad?
    With `{{ .Prompt }}` the model gets the user's text without turn markers and stops only on
    eos: "after ollama create the fine-tune never stops / talks to itself". A fine-tune whose
    template handles tools loses them too ("does not support tools").

    ## Example
    A Llama 3 base fine-tuned to ChatML: 600 edits from any Llama 3 template in Ollama's
    library.

    ## Fix
    Writes a `Modelfile` beside the GGUF: `FROM` the file, `TEMPLATE` converted from the Jinja
    template (by rendering it with sentinel texts for the system prompt, the prompt and the
    answer), `SYSTEM` when the template prints a default system prompt, and one
    `PARAMETER stop` per end-of-turn and eos string. The conversion is kept only if it renders
    the probe conversations exactly as the Jinja template does (without BOS, which llama.cpp
    adds); templates with tools are converted without them (the message says so).

    ## Fix safety
    Safe: it creates a new file and changes nothing; `ollama create NAME -f Modelfile` uses it.
    """

    code = "FTX506"
    name = "ollama-template-not-recognised"
    severity = Severity.WARNING

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding (with a Modelfile) when Ollama would fall back to `{{ .Prompt }}`."""
        template = ctx.template()
        if template is None or ctx.has_modelfile:
            return
        tokens = gguf_special_tokens(ctx.meta)
        base = ctx.reference_template() if ctx.reference_role == "base" else None
        if base is not None:
            distance = levenshtein_below(template, base)
            if distance is not None:
                return  # close enough to the base's: Ollama matches it when it matches the base's
            why = f"it is {MATCH_DISTANCE} or more edits from the base's template"
        else:
            why = "ftfix cannot tell whether it is close to one of Ollama's library templates"
        vocab = ctx.meta.special_vocabulary()
        end = find_end_of_turn(template, tokens, vocab)
        stops = [end.token] if end is not None and end.token else []
        eos = ctx.meta.token(ctx.meta.int_value(KEY_EOS))
        if eos is not None and ctx.meta.int_value(KEY_EOS) in eog_ids(ctx.meta):
            stops.append(eos)
        result = convert(template, tokens, stops)
        tools = _uses_tools(template, tokens)
        message = (
            f"ollama create matches tokenizer.chat_template against its library (distance below "
            f"{MATCH_DISTANCE}) and otherwise prompts with a bare {{{{ .Prompt }}}}: {why}"
        )
        if tools:
            message += "; the template handles tools, which the Modelfile's template does not"
        if isinstance(result, OllamaTemplate):
            text = modelfile(ctx.meta.path.name, result)
            fix = Fix(
                "Write a Modelfile beside the GGUF",
                Applicability.SAFE,
                (FileEdit(MODELFILE, None, text.encode("utf-8")),),
            )
        else:
            message += f"; no Modelfile written: {result}"
            fix = None
        yield self.finding(message, path=None, fix=fix, data={"tools": tools})
