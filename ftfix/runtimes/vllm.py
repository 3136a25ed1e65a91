"""vLLM (modelled on 0.11): the OpenAI-compatible server, `vllm serve FOLDER`.

Facts relied on (vllm-project/vllm):
- `vllm/transformers_utils/tokenizer.py` + `entrypoints/chat_utils.py`: the template is the
  tokenizer's (transformers' precedence: `chat_template.jinja` first), unless
  `--chat-template FILE`; chat requests are tokenised with `add_special_tokens=False`.
- `vllm/config/model.py` (`try_get_generation_config`) and `sampling_params.py`
  (`update_from_generation_config`): generation stops on the tokenizer's `eos_token_id` and on
  every `eos_token_id` of generation_config.json (config.json when the file is absent);
  `--generation-config FOLDER` points elsewhere.
- `vllm/lora/peft_helper.py` (`_validate_features`): "vLLM only supports modules_to_save being
  None", "vLLM does not yet support DoRA"; `vllm/config/lora.py`: `max_lora_rank` defaults to 16
  and takes one of 1, 8, 16, 32, 64, 128, 256, 320, 512 (`--max-lora-rank`).
- `vllm/lora/utils.py` (`parse_fine_tuned_lora_name`): only LoRA A/B (and embedding) tensors
  load; peft's trainable-token rows are "unsupported LoRA weight".
- `models/llama.py`, `qwen2.py`, ... `load_weights`: with `tie_word_embeddings` every stored
  `lm_head.` tensor is skipped.
- `model_executor/models/registry.py`: `architectures` picks the class; `LlamaModel`,
  `MistralModel` and `Qwen2Model` are listed in `_EMBEDDING_MODELS` (a pooling model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import GENERATION_FIX, Answer, Facts, Runtime, Verdict, stop_reason, template_name, union

MAX_LORA_RANK_DEFAULT = 16
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(adapter: Mapping[str, Any]) -> int | None:
    """The largest LoRA rank of an adapter config (`r` and every `rank_pattern` value)."""
    ranks = [adapter.get("r")]
    pattern = adapter.get("rank_pattern")
    if isinstance(pattern, Mapping):
        ranks.extend(pattern.values())
    found = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool)]
    return max(found) if found else None


def rank_flag(rank: int) -> str:
    """The smallest `--max-lora-rank` value vLLM accepts that holds `rank`."""
    fitting = [r for r in MAX_LORA_RANKS if r >= rank]
    return f"--max-lora-rank {fitting[0]}" if fitting else "merge before serving"


def adapter_problems(adapter: Mapping[str, Any], *, runtime: str) -> list[str]:
    """Why an adapter does not load on vLLM-like LoRA loaders, each with its fix."""
    found = []
    if adapter.get("modules_to_save"):
        found.append(
            f"{runtime} only loads adapters with modules_to_save None (here "
            f"{adapter['modules_to_save']}): merge before serving"
        )
    if adapter.get("trainable_token_indices"):
        found.append(
            f"{runtime} does not load peft's trainable token rows (trainable_token_indices): "
            "merge before serving"
        )
    if adapter.get("use_dora"):
        found.append(f"{runtime} does not support DoRA adapters: merge before serving")
    return found


class VLLM(Runtime):
    """vLLM serving a merged folder, or the base with `--enable-lora` and this adapter."""

    name = "vLLM"
    version = "0.11"
    sources = (
        "vllm/lora/peft_helper.py",
        "vllm/config/lora.py",
        "vllm/config/model.py (try_get_generation_config)",
    )

    def answer(self, facts: Facts) -> Answer:
        """Loads unless a blocker or an unsupported adapter; stops on tokenizer + gen config."""
        reasons: list[tuple[Verdict, str]] = [(Verdict.WILL_NOT_LOAD, b) for b in facts.blockers]
        if facts.drifted_architecture:
            # registry.py's _EMBEDDING_MODELS: a bare LlamaModel / Qwen2Model is a pooling model
            reasons.append(
                (
                    Verdict.WILL_NOT_LOAD,
                    "served as an embedding model: " + facts.drifted_architecture,
                )
            )
        if facts.adapter is not None:
            reasons += [
                (Verdict.WILL_NOT_LOAD, p) for p in adapter_problems(facts.adapter, runtime="vLLM")
            ]
            rank = adapter_rank(facts.adapter)
            if rank is not None and rank > MAX_LORA_RANK_DEFAULT:
                reasons.append(
                    (
                        Verdict.WILL_NOT_LOAD,
                        f"LoRA rank {rank} is greater than max_lora_rank "
                        f"{MAX_LORA_RANK_DEFAULT}: start vLLM with {rank_flag(rank)}",
                    )
                )
        generation = facts.generation_eos if facts.generation_eos is not None else facts.config_eos
        tokenizer_eos = (facts.tokenizer_eos_id,) if facts.tokenizer_eos_id is not None else ()
        ids = union(tokenizer_eos, generation)
        reasons += stop_reason(facts, ids, GENERATION_FIX + ", or --generation-config FOLDER")
        return self.build(
            facts,
            loads=not any(v is Verdict.WILL_NOT_LOAD for v, _ in reasons),
            template=template_name(facts, facts.transformers_template),
            stop_ids=ids,
            bos_doubled=False,
            reasons=reasons,
        )
