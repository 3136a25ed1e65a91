"""transformers 4.x (modelled on 4.57, checked with a real 4.57.6 install in the tests).

Facts relied on:
- `models/auto/tokenization_auto.py`: `AutoTokenizer` imports `tokenizer_class` by name;
  `TokenizersBackend` (what transformers 5 writes) does not exist in 4.x: "Tokenizer class
  TokenizersBackend does not exist or is not currently imported".
- `tokenization_utils_base.py` (4.57): `chat_template.jinja` wins over the JSON key, as in 5.x
  (checked by loading a folder holding both).
- `generation/configuration_utils.py`: stop ids from generation_config.json, else config.json.
"""

from __future__ import annotations

from ..analysis.config import TRANSFORMERS5_ONLY_TOKENIZERS
from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name


class Transformers4(Runtime):
    """transformers 4.x, as still pinned by many serving images."""

    name = "transformers 4"
    version = "4.57"
    sources = (
        "transformers/models/auto/tokenization_auto.py (tokenizer_class import)",
        "transformers/generation/configuration_utils.py (eos_token_id)",
    )

    def answer(self, facts: Facts) -> Answer:
        """Like 5.x, but a transformers-5-only tokenizer_class does not load."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        if facts.tokenizer_class in TRANSFORMERS5_ONLY_TOKENIZERS:
            reasons.append(
                (
                    Verdict.WILL_NOT_LOAD,
                    f"tokenizer_class {facts.tokenizer_class} does not exist before transformers "
                    "5: set it to PreTrainedTokenizerFast in tokenizer_config.json (FTX408)",
                )
            )
        ids = facts.generation_eos if facts.generation_eos is not None else facts.config_eos
        reasons += stop_reason(facts, ids, GENERATION_FIX)
        loads = not any(v is Verdict.WILL_NOT_LOAD for v, _ in reasons)
        return self.build(
            facts,
            loads=loads,
            template=template_name(facts, facts.transformers_template),
            stop_ids=ids,
            bos_doubled=False,
            reasons=reasons,
        )
