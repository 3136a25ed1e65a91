"""FTX208 generation-config-invalid."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.generation_config import new_issues, without_ineffective_keys
from ...analysis.stops import GENERATION_CONFIG
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer


@register
class GenerationConfigInvalid(Fixer):
    """The fine-tune's generation_config.json fails transformers' strict validation.

    ## What it checks
    The fine-tune's `generation_config.json` against the checks `GenerationConfig.validate`
    runs with `strict=True`: sampling values (`temperature`, `top_p`, `top_k`, `min_p`,
    `typical_p`, ...) while `do_sample` is not true, beam-search values with one beam, output
    flags without `return_dict_in_generate`, cache settings with `use_cache: false`, and values
    refused even when loading (`max_new_tokens` <= 0, an `early_stopping` that is not a boolean
    or `"never"`, `num_return_sequences` > 1 with greedy decoding). An issue the base's own
    `generation_config.json` has with the same value is the base's and is not reported.

    ## Why is this bad?
    transformers validates strictly whenever the config is saved after a change (4.5x: on every
    save), and refuses: "GenerationConfig is invalid ... Fix these issues to save the
    configuration". Every later merge, export or `push_to_hub` of the model fails. Values it
    refuses on load make the model unloadable.

    ## Example
    `{"do_sample": false, "temperature": 0.6, "top_p": 0.9, "eos_token_id": 2}`: a training
    script pinned greedy decoding over a config that still carries the release's sampling
    values.

    ## Fix
    Drop the keys that have no effect as configured (a sampling value under greedy decoding,
    a beam value with one beam, ...). Other issues are reported without a fix.

    ## Fix safety
    Safe: the dropped keys are never read at generation time with the config as it is, so
    decoding does not change.
    """

    code = "FTX208"
    name = "generation-config-invalid"
    severity = Severity.WARNING
    needs = frozenset()  # the base only excuses quirks it has too
    other_severities = (Severity.ERROR,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when generation_config.json would be refused by transformers."""
        config = ctx.target.generation_config
        if config is None:
            return
        base = ctx.base_or_none
        issues = new_issues(config, [None if base is None else base.generation_config])
        if not issues:
            return  # valid, or invalid exactly as the base's published file is
        cleaned = without_ineffective_keys(config)
        hard = [i for i in issues if not i.ineffective]
        fix = None
        if cleaned is not None:
            drop = tuple(k for k in config if k not in cleaned)
            edit = edit_json(ctx.target, GENERATION_CONFIG, {}, remove=drop)
            fix = Fix(
                "Drop " + ", ".join(drop) + " (no effect as configured)",
                Applicability.SAFE,
                () if edit is None else (edit,),
            )
        yield self.finding(
            "transformers refuses to save this generation config (GenerationConfig is invalid): "
            + "; ".join(i.message for i in issues),
            path=GENERATION_CONFIG,
            severity=Severity.ERROR if hard else Severity.WARNING,
            fix=fix,
            data={"issues": [{"key": i.key, "message": i.message} for i in issues]},
        )
