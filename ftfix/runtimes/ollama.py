"""Ollama (modelled on 0.12): `ollama create -f Modelfile` with `FROM model.gguf`.

Facts relied on (ollama/ollama):
- `server/model.go` (`detectChatTemplate`) and `template/template.go` (`Named`): Ollama never
  runs the GGUF's Jinja template. It looks for the library template (`template/index.json`)
  closest to it by Levenshtein distance and uses it only when the distance is below 100;
  otherwise the prompt is the bare `{{ .Prompt }}` (roles dropped) unless the Modelfile has a
  `TEMPLATE`. A matched template brings its own `stop` parameters.
- The runner is llama.cpp: the GGUF's end-of-generation set (see `ftfix.runtimes.llamacpp`).
ftfix does not ship Ollama's library: a template within 100 edits of the base's is assumed to
match what the base matched; further away it falls back to the bare prompt.
"""

from __future__ import annotations

from ..analysis.ollama import MATCH_DISTANCE, levenshtein_below
from .base import Answer, Facts, Runtime, Verdict
from .llamacpp import converter_problems, eog_ids, gguf_template


class Ollama(Runtime):
    """Ollama importing the GGUF llama.cpp's converter writes."""

    name = "Ollama"
    version = "0.12"
    sources = ("server/model.go (detectChatTemplate)", "template/template.go (Named)")

    def answer(self, facts: Facts) -> Answer:
        """Same load and stop rules as llama.cpp; the template is matched by edit distance."""
        reasons = [(Verdict.WILL_NOT_LOAD, p) for p in converter_problems(facts, facts.adapter)]
        source = gguf_template(facts)
        if source is None:
            # No template anywhere: every runtime sends plain text; FTX001/FTX008 judge that.
            template = "bare {{ .Prompt }}"
        elif facts.base_template is None:
            template = "library match unknown"
        elif levenshtein_below(source, facts.base_template, MATCH_DISTANCE) is not None:
            template = "library match (as the base)"
        else:
            template = "bare {{ .Prompt }}"
            reasons.append(
                (
                    Verdict.DIFFERENT_PROMPT,
                    f"the template is {MATCH_DISTANCE}+ edits from the base's: Ollama matches no "
                    "library template and sends the bare prompt; add a TEMPLATE (Go template) "
                    "to the Modelfile",
                )
            )
        ids = eog_ids(facts)
        if facts.stops(ids) is False:
            reasons.append(
                (
                    Verdict.WILL_NOT_STOP,
                    f"turns end with {facts.end_of_turn} ({facts.end_of_turn_id}), not among "
                    f"{list(ids)}: add PARAMETER stop {facts.end_of_turn} to the Modelfile",
                )
            )
        return self.build(
            facts,
            loads=not any(v is Verdict.WILL_NOT_LOAD for v, _ in reasons),
            template=template,
            stop_ids=ids,
            bos_doubled=None,
            reasons=reasons,
        )
