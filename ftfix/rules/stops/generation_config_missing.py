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

    ## Fix
    Write the base's `generation_config.json` (or, if the base has none, one with the ids of
    `config.json`) with the end-of-turn id added to `eos_token_id` next to the original eos.
    For an adapter the file is written into the adapter folder. peft does not read it by itself:
    load it with `model.generation_config = GenerationConfig.from_pretrained(ADAPTER)`, pass
    `--generation-config ADAPTER` to vLLM, or merge the adapter and run ftfix on the merged
    folder.

    ## Fix safety
    Safe: it only creates a missing file, from the base's own values plus the stop token the
    template ends turns with.
    """

    code = "FTX201"
    name = "generation-config-missing"
    severity = Severity.ERROR

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
        config = target.config
        config_eos = eos_ids(config.get("eos_token_id"))
        data: dict[str, object] = {"config_eos_token_id": list(config_eos)}
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
        else:
            return
        after, ids = generation_config_for(config, ctx.base, token_id)
        data["eos_token_id"] = list(ids)
        yield self.finding(
            message,
            path=GENERATION_CONFIG,
            severity=severity,
            fix=Fix(
                "Write generation_config.json (the base's, stopping on the end of turn)",
                Applicability.SAFE,
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
        value = (base_config if base_config is not None else ctx.base.config).get("eos_token_id")
        if token_id in eos_ids(value):
            return
        after, ids = generation_config_for(ctx.base.config, ctx.base, token_id)
        yield self.finding(
            f"adapter has no generation_config.json, so the base's {source} is used: "
            f"eos_token_id {describe_ids(setup.tokenizer, value)} does not include the end of turn "
            f"{setup.describe()}",
            path=GENERATION_CONFIG,
            fix=Fix(
                "Write generation_config.json into the adapter folder (the base's, stopping on "
                "the end of turn); load it with GenerationConfig.from_pretrained(ADAPTER)",
                Applicability.SAFE,
                (FileEdit(GENERATION_CONFIG, None, after),),
            ),
            data={"end_of_turn": setup.token, "eos_token_id": list(ids), "base_file": source},
        )
