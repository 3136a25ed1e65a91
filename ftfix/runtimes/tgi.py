"""Text Generation Inference (modelled on 3.x): `text-generation-launcher --model-id FOLDER`.

Facts relied on (huggingface/text-generation-inference):
- `server/text_generation_server/models/flash_causal_lm.py`: reads generation_config.json and,
  when its `eos_token_id` is a list, stops on all of them (`tokenizer._eos_token_ids`), else on
  the tokenizer's eos.
- `router/src/server.rs` / `main.rs` (`HubTokenizerConfig`, `HubProcessorConfig`): the router
  reads the template from tokenizer_config.json's `chat_template` key (and the processor
  config's), so where the key and `chat_template.jinja` differ it renders the key's;
  `router/src/infer/chat_template.rs` renders it with minijinja. Whether the rendered prompt gets
  BOS added again is not modelled.
"""

from __future__ import annotations

from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name, union


class TGI(Runtime):
    """Hugging Face's Text Generation Inference."""

    name = "TGI"
    version = "3.3"
    sources = ("text_generation_server/models/flash_causal_lm.py (eos ids)",)

    def answer(self, facts: Facts) -> Answer:
        """Key-first template; stops on the tokenizer's eos and generation_config.json's ids."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        tokenizer_eos = (facts.tokenizer_eos_id,) if facts.tokenizer_eos_id is not None else ()
        ids = union(tokenizer_eos, facts.generation_eos)
        reasons += stop_reason(facts, ids, GENERATION_FIX)
        source = facts.key_template if facts.key_template is not None else facts.jinja_template
        if source != facts.transformers_template:
            reasons.append(
                (
                    Verdict.DIFFERENT_PROMPT,
                    "TGI's router reads tokenizer_config.json's chat_template, transformers reads "
                    "chat_template.jinja, and they differ: write one template in both (FTX006)",
                )
            )
        return self.build(
            facts,
            loads=not facts.blockers,
            template=template_name(facts, source),
            stop_ids=ids,
            bos_doubled=None,
            reasons=reasons,
        )
