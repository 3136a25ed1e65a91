"""transformers 5.x (modelled on 5.24): `AutoTokenizer` + `AutoModelForCausalLM` + `generate()`.

Facts relied on (transformers 5.24, read from the installed source):
- `tokenization_utils_base.py`: `chat_template.jinja` wins over tokenizer_config.json's
  `chat_template` key; `apply_chat_template(tokenize=True)` does not add special tokens again.
- `generation/configuration_utils.py`: `generate()` takes `eos_token_id` from
  generation_config.json, and from config.json when that file is absent.
- `modeling_utils.py`: a tied config next to a different stored `lm_head` is not tied (warning).
PEFT adapters load through peft with the base's generation config.
"""

from __future__ import annotations

from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name


class Transformers5(Runtime):
    """transformers 5.x."""

    name = "transformers 5"
    version = "5.24"
    sources = (
        "transformers/tokenization_utils_base.py (chat_template.jinja precedence)",
        "transformers/generation/configuration_utils.py (eos_token_id)",
    )

    def stop_ids(self, facts: Facts) -> tuple[int, ...]:
        """generation_config.json's eos ids, else config.json's."""
        return facts.generation_eos if facts.generation_eos is not None else facts.config_eos

    def answer(self, facts: Facts) -> Answer:
        """Loads unless a blocker; renders the .jinja template; stops on generation config."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        ids = self.stop_ids(facts)
        reasons += stop_reason(facts, ids, GENERATION_FIX)
        return self.build(
            facts,
            loads=not facts.blockers,
            template=template_name(facts, facts.transformers_template),
            stop_ids=ids,
            bos_doubled=False,
            reasons=reasons,
        )
