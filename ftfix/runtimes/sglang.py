"""SGLang (modelled on 0.5): `python -m sglang.launch_server --model-path FOLDER`.

Facts relied on (sgl-project/sglang):
- `srt/configs/model_config.py` (`get_hf_eos_token_id`): stop ids are config.json's
  `eos_token_id` united with generation_config.json's, next to the tokenizer's eos.
- `srt/hf_transformers_utils.py`: tokenizer and template through transformers (the `.jinja`
  file first), `--chat-template` to override; chat prompts are tokenised without adding BOS.
- `srt/lora/`: LoRA A/B weights of target modules only; like vLLM it does not apply
  `modules_to_save` or trainable token rows (merge before serving). `--max-lora-rank` defaults
  to the largest rank of the adapters given at start-up, so rank needs no flag.
"""

from __future__ import annotations

from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name, union
from .vllm import adapter_problems


class SGLang(Runtime):
    """SGLang's server."""

    name = "SGLang"
    version = "0.5"
    sources = ("sglang/srt/configs/model_config.py (get_hf_eos_token_id)", "sglang/srt/lora/")

    def answer(self, facts: Facts) -> Answer:
        """Like vLLM, without the rank limit; config.json's eos ids count too."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        if facts.adapter is not None:
            reasons += [
                (Verdict.WILL_NOT_LOAD, p)
                for p in adapter_problems(facts.adapter, runtime="SGLang")
            ]
        tokenizer_eos = (facts.tokenizer_eos_id,) if facts.tokenizer_eos_id is not None else ()
        ids = union(tokenizer_eos, facts.config_eos, facts.generation_eos)
        reasons += stop_reason(facts, ids, GENERATION_FIX)
        return self.build(
            facts,
            loads=not any(v is Verdict.WILL_NOT_LOAD for v, _ in reasons),
            template=template_name(facts, facts.transformers_template),
            stop_ids=ids,
            bos_doubled=False,
            reasons=reasons,
        )
