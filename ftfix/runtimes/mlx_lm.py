"""mlx-lm (modelled on 0.28): `mlx_lm.generate` / `mlx_lm.server --model FOLDER` on Apple silicon.

Facts relied on (ml-explore/mlx-lm):
- `mlx_lm/utils.py` (`load`, `load_config`): the stop ids passed to the tokenizer wrapper are
  config's `eos_token_id`; recent releases let generation_config.json's `eos_token_id` win over
  config.json's (older ones read config.json alone, and then a turn end listed only in
  generation_config.json does not stop them: put it in config.json too).
- `mlx_lm/tokenizer_utils.py` (`load_tokenizer`, `TokenizerWrapper`): the tokenizer is
  transformers' `AutoTokenizer` (so a transformers-5-only tokenizer_class fails under 4.x), and
  its own eos joins the stop ids; chat prompts come from `apply_chat_template` (no second BOS).
"""

from __future__ import annotations

from ..analysis.config import TRANSFORMERS5_ONLY_TOKENIZERS
from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name, union


class MlxLm(Runtime):
    """mlx-lm."""

    name = "mlx-lm"
    version = "0.28"
    sources = ("mlx_lm/utils.py (load_config)", "mlx_lm/tokenizer_utils.py (TokenizerWrapper)")

    def answer(self, facts: Facts) -> Answer:
        """Transformers' tokenizer rules; stops on tokenizer eos + generation config or config."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        if facts.tokenizer_class in TRANSFORMERS5_ONLY_TOKENIZERS:
            reasons.append(
                (
                    Verdict.WILL_NOT_LOAD,
                    f"tokenizer_class {facts.tokenizer_class} fails AutoTokenizer under "
                    "transformers 4.x: set it to PreTrainedTokenizerFast (FTX408)",
                )
            )
        if facts.adapter is not None and (
            facts.adapter.get("modules_to_save") or facts.adapter.get("trainable_token_indices")
        ):
            reasons.append(
                (
                    Verdict.WILL_NOT_LOAD,
                    "mlx-lm loads LoRA A/B weights only: merge before serving (mlx_lm.fuse)",
                )
            )
        configured = facts.generation_eos if facts.generation_eos else facts.config_eos
        tokenizer_eos = (facts.tokenizer_eos_id,) if facts.tokenizer_eos_id is not None else ()
        ids = union(tokenizer_eos, configured)
        reasons += stop_reason(facts, ids, GENERATION_FIX)
        return self.build(
            facts,
            loads=not any(v is Verdict.WILL_NOT_LOAD for v, _ in reasons),
            template=template_name(facts, facts.transformers_template),
            stop_ids=ids,
            bos_doubled=False,
            reasons=reasons,
        )
