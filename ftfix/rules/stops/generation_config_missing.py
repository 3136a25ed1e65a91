"""FTX201 generation-config-missing."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.stops import (
    GENERATION_CONFIG,
    SAMPLING_KEYS,
    StopSetup,
    describe_ids,
    eos_ids,
    generation_config_for,
    stop_setup,
)
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer

# How a generation_config.json written into an adapter folder reaches generation: peft's loaders
# (AutoPeftModelForCausalLM, PeftModel.from_pretrained) keep the base model's.
TAKES_EFFECT = (
    "the adapter's generation_config.json is not loaded by AutoPeftModelForCausalLM or "
    "PeftModel (they keep the base's): use GenerationConfig.from_pretrained(ADAPTER), "
    "`vllm serve BASE --generation-config ADAPTER`, or merge the adapter"
)


@register
class GenerationConfigMissing(Fixer):
    """The fine-tune has no generation_config.json, and what is used instead does not stop.

    ## What it checks
    A merged fine-tune without `generation_config.json`: transformers and vLLM then derive the
    generation settings from `config.json`, so generation stops only on `config.json`'s
    `eos_token_id`. The end-of-turn token is what the chat template prints right after an
    assistant answer (the fine-tune's own template, or `--template`). The rule fires as an
    error when that token is not among `config.json`'s eos ids, and as a warning when the base
    ships a `generation_config.json` with sampling defaults or stop ids the fallback loses.

    A PEFT adapter never ships the file: peft and vLLM use the base's. The rule fires (error)
    when the base's generation config does not stop on the adapter's end of turn.

    ## Why is this bad?
    The model ends its answer with `<|im_end|>`, nobody stops there, and it keeps writing new
    turns until `max_new_tokens`: the Qwen-base fine-tune that "never stops" under vLLM.

    ## Example
    A fine-tune of `Qwen2.5-7B` (base: `eos_token_id` 151643 `<|endoftext|>`) trained on ChatML
    and saved without `generation_config.json`; `config.json` still says 151643.

    Conclusions come only from files that say what generation stops on: a fine-tune without
    `config.json`, or an adapter whose base has neither `generation_config.json` nor a
    `config.json` with `eos_token_id`, is not reported.

    ## Fix
    Write the base's `generation_config.json` (or, if the base has none, one with the ids of
    `config.json`) with the end-of-turn id added to `eos_token_id` next to the original eos,
    every other key and eos id of the base's kept. For a merged fine-tune the base's sampling
    keys are left out: generation fell back to greedy decoding, and switching it to sampling is
    FTX203's (unsafe) choice.
    For an adapter the file is written into the adapter folder. peft does not read it by itself:
    load it with `model.generation_config = GenerationConfig.from_pretrained(ADAPTER)`, pass
    `--generation-config ADAPTER` to vLLM, or merge the adapter and run ftfix on the merged
    folder.

    ## Fix safety
    Safe: it only creates a missing file, from the base's own values plus the stop token the
    template ends turns with. Unsafe when all it would restore is the base's sampling defaults
    (decoding changes from greedy to sampling).
    """

    code = "FTX201"
    name = "generation-config-missing"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when no generation_config.json stops on the end of turn."""
        target = ctx.target
        if target.kind is Kind.TOKENIZER or target.exists(GENERATION_CONFIG):
            return
        setup = stop_setup(ctx)
        token_id = None if setup is None else setup.token_id
        base_config = ctx.base.generation_config
        if target.kind is Kind.ADAPTER:
            yield from self._adapter(ctx, setup)
            return
        if not target.exists("config.json"):
            return  # nothing says what generation falls back to: no conclusion
        config = target.config
        config_eos = eos_ids(config.get("eos_token_id"))
        data: dict[str, object] = {"config_eos_token_id": list(config_eos)}
        applicability = Applicability.SAFE
        sampling = False
        if setup is not None and token_id is not None and token_id not in config_eos:
            message = (
                f"no generation_config.json: generation stops on config.json's eos_token_id "
                f"{describe_ids(setup.tokenizer, config.get('eos_token_id'))}, but assistant "
                f"turns end with {setup.describe()}"
            )
            severity = Severity.ERROR
            data["end_of_turn"] = setup.token
        elif base_config is not None:
            lost = [key for key in SAMPLING_KEYS if key in base_config]
            stops = [i for i in eos_ids(base_config.get("eos_token_id")) if i not in config_eos]
            if not lost and not stops:
                return
            what = []
            if lost:
                what.append("sampling defaults " + ", ".join(lost))
            if stops:
                what.append(f"stop ids {stops}")
            message = (
                "no generation_config.json; the base's also sets " + " and ".join(what) + ", "
                "which the fallback to config.json loses"
            )
            severity = Severity.WARNING
            if not stops:
                # Only sampling is lost: writing it switches greedy decoding to sampling.
                applicability, sampling = Applicability.UNSAFE, True
        else:
            return
        after, ids = generation_config_for(config, ctx.base, token_id, sampling=sampling)
        data["eos_token_id"] = list(ids)
        yield self.finding(
            message,
            path=GENERATION_CONFIG,
            severity=severity,
            fix=Fix(
                "Write generation_config.json (the base's, stopping on the end of turn)"
                if not sampling
                else "Write the base's generation_config.json (with its sampling defaults)",
                applicability,
                (FileEdit(GENERATION_CONFIG, None, after),),
            ),
            data=data,
        )

    def _adapter(self, ctx: Context, setup: StopSetup | None) -> Iterator[Finding]:
        token_id = None if setup is None else setup.token_id
        if setup is None or token_id is None:
            return
        base_config = ctx.base.generation_config
        source = "generation_config.json" if base_config is not None else "config.json"
        used = base_config if base_config is not None else ctx.base.json("config.json")
        if not used or "eos_token_id" not in used:
            return  # the base's files do not say what it stops on: no conclusion
        value = used.get("eos_token_id")
        if token_id in eos_ids(value):
            return
        after, ids = generation_config_for(ctx.base.config, ctx.base, token_id)
        yield self.finding(
            f"adapter has no generation_config.json, so the base's {source} is used: "
            f"eos_token_id {describe_ids(setup.tokenizer, value)} does not include the end of turn "
            f"{setup.describe()}; a generation_config.json in the adapter folder takes effect only "
            "where it is loaded: GenerationConfig.from_pretrained(ADAPTER), `vllm serve BASE "
            "--enable-lora --generation-config ADAPTER`, or after merging the adapter "
            "(AutoPeftModelForCausalLM keeps the base's)",
            path=GENERATION_CONFIG,
            fix=Fix(
                "Write generation_config.json into the adapter folder (the base's, stopping on "
                "the end of turn); load it with GenerationConfig.from_pretrained(ADAPTER)",
                Applicability.SAFE,
                (FileEdit(GENERATION_CONFIG, None, after),),
            ),
            data={
                "end_of_turn": setup.token,
                "eos_token_id": list(ids),
                "base_file": source,
                "takes_effect": TAKES_EFFECT,
            },
        )
