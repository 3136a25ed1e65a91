"""llama.cpp: `convert_hf_to_gguf.py` then `llama-server` / `llama-cli` (modelled on b6xxx, 2026).

Facts relied on (ggml-org/llama.cpp):
- `gguf-py/gguf/vocab.py` (`SpecialVocab._try_load_from_tokenizer_json`): the GGUF's
  `tokenizer.chat_template` is tokenizer_config.json's `chat_template` key when present, and
  only otherwise `chat_template.jinja` (the opposite of transformers' precedence); the eos id is
  tokenizer_config.json's `eos_token` text looked up in tokenizer.json's added tokens, else an
  integer `eos_token_id` of config.json (a list is ignored); `add_bos_token` comes from
  tokenizer_config.json or the post-processor. generation_config.json is never read.
- `convert_hf_to_gguf.py`: the model class is looked up by `architectures[0]`
  (`ModelBase.from_model_architecture`), "Model X is not supported" otherwise; BPE vocabularies
  are read with transformers' `AutoTokenizer`, so a tokenizer_class only transformers 5 knows
  fails under transformers 4.
- `src/llama-vocab.cpp` (`llama_vocab::impl::load`, "maintain a list of tokens that cause
  end-of-generation"): the runtime stops on the eos id plus every token whose text is one of a
  fixed list (`<|eot_id|>`, `<|im_end|>`, `<|end|>`, `<end_of_turn>`, `<|endoftext|>`, ...).
- `tools/server`: chat prompts are tokenised with special tokens added, so a template that
  prints `bos_token` and `add_bos_token` true give two BOS (llama.cpp warns about it).
- `convert_lora_to_gguf.py`: only `lora_A` / `lora_B` tensors convert; full embedding or head
  tensors (modules_to_save, trainable tokens) stop it ("Embeddings is present in the adapter").
"""

from __future__ import annotations

from collections.abc import Mapping

from ..analysis.config import TRANSFORMERS5_ONLY_TOKENIZERS
from ..analysis.gguf import EOG_TEXTS  # one list for GGUF files and folders
from .base import Answer, Facts, Runtime, Verdict, template_name, union


def eog_ids(facts: Facts) -> tuple[int, ...]:
    """The GGUF's eos plus every token llama.cpp treats as end of generation by its text."""
    eos: tuple[int, ...] = ()
    if facts.tokenizer_eos_id is not None:
        eos = (facts.tokenizer_eos_id,)
    elif len(facts.config_eos) == 1:
        eos = facts.config_eos
    by_text = sorted(i for t, i in facts.vocabulary.items() if t in EOG_TEXTS and i is not None)
    return union(eos, tuple(by_text))


def gguf_template(facts: Facts) -> str | None:
    """The template the converter writes: the JSON key first, then the .jinja file."""
    return facts.key_template if facts.key_template is not None else facts.jinja_template


def converter_problems(facts: Facts, adapter: Mapping[str, object] | None) -> list[str]:
    """Why the conversion to GGUF fails, each with its fix."""
    found = list(facts.blockers)
    if facts.drifted_architecture:
        found.append(
            "convert_hf_to_gguf.py looks the class up by name: " + facts.drifted_architecture
        )
    if facts.tokenizer_class in TRANSFORMERS5_ONLY_TOKENIZERS:
        found.append(
            f"tokenizer_class {facts.tokenizer_class} fails AutoTokenizer under transformers "
            "4.x: set it to PreTrainedTokenizerFast (FTX408)"
        )
    if adapter is not None and (
        adapter.get("modules_to_save") or adapter.get("trainable_token_indices")
    ):
        found.append(
            "convert_lora_to_gguf.py converts lora_A/lora_B only and stops on saved embedding "
            "or head rows: merge before converting"
        )
    return found


class LlamaCpp(Runtime):
    """llama.cpp after `convert_hf_to_gguf.py`."""

    name = "llama.cpp"
    version = "b6xxx"
    sources = ("gguf-py/gguf/vocab.py", "src/llama-vocab.cpp", "convert_lora_to_gguf.py")

    def answer(self, facts: Facts) -> Answer:
        """Converter precedence for the template, text-guessed EOG set for stops."""
        reasons = [(Verdict.WILL_NOT_LOAD, p) for p in converter_problems(facts, facts.adapter)]
        source = gguf_template(facts)
        if (
            facts.key_template is not None
            and facts.jinja_template is not None
            and facts.key_template != facts.jinja_template
        ):
            reasons.append(
                (
                    Verdict.DIFFERENT_PROMPT,
                    "the converter takes tokenizer_config.json's chat_template, transformers "
                    "takes chat_template.jinja, and they differ: write one template in both "
                    "(FTX006), or run llama-server --jinja --chat-template-file "
                    "chat_template.jinja",
                )
            )
        ids = eog_ids(facts)
        if facts.stops(ids) is False:
            reasons.append(
                (
                    Verdict.WILL_NOT_STOP,
                    f"turns end with {facts.end_of_turn} ({facts.end_of_turn_id}); llama.cpp "
                    f"ignores generation_config.json and stops on {list(ids)}: set eos_token in "
                    "tokenizer_config.json to it before converting (FTX204)",
                )
            )
        adds_bos = facts.add_bos_flag
        if adds_bos is None:
            adds_bos = facts.tokenizer_adds_bos
        doubled = bool(facts.bos_in_template and adds_bos)
        return self.build(
            facts,
            loads=not any(v is Verdict.WILL_NOT_LOAD for v, _ in reasons),
            template=(template_name(facts, source) + " (GGUF)") if source else "none",
            stop_ids=ids,
            bos_doubled=doubled,
            reasons=reasons,
        )
