"""Text Generation Inference (modelled on 3.x): `text-generation-launcher --model-id FOLDER`.

Facts relied on (huggingface/text-generation-inference):
- `server/text_generation_server/models/flash_causal_lm.py`: reads generation_config.json and,
  when its `eos_token_id` is a list, stops on all of them (`tokenizer._eos_token_ids`), else on
  the tokenizer's eos.
- `router/src/infer/chat_template.rs`: renders the tokenizer's template (transformers' choice of
  file) with minijinja. Whether the rendered prompt gets BOS added again is not modelled.
"""

from __future__ import annotations

from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name, union


class TGI(Runtime):
    """Hugging Face's Text Generation Inference."""

    name = "TGI"
    version = "3.3"
    sources = ("text_generation_server/models/flash_causal_lm.py (eos ids)",)

    def answer(self, facts: Facts) -> Answer:
        """Stops on the tokenizer's eos and generation_config.json's ids."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        tokenizer_eos = (facts.tokenizer_eos_id,) if facts.tokenizer_eos_id is not None else ()
        ids = union(tokenizer_eos, facts.generation_eos)
        reasons += stop_reason(facts, ids, GENERATION_FIX)
        return self.build(
            facts,
            loads=not facts.blockers,
            template=template_name(facts, facts.transformers_template),
            stop_ids=ids,
            bos_doubled=None,
            reasons=reasons,
        )
