"""FTX203 sampling-defaults-lost."""

from __future__ import annotations

import json
from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.generation_config import validate_generation_config
from ...analysis.stops import GENERATION_CONFIG, SAMPLING_KEYS
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer


@register
class SamplingDefaultsLost(Fixer):
    """The fine-tune's generation_config.json lost sampling defaults its base ships.

    ## What it checks
    The keys `do_sample`, `temperature`, `top_p`, `top_k`, `min_p`, `typical_p`,
    `repetition_penalty` and `no_repeat_ngram_size` of the base's `generation_config.json`
    that the fine-tune's `generation_config.json` no longer has. A key the fine-tune set to a
    different value is a choice and is left alone.

    ## Why is this bad?
    Training scripts often save a `generation_config.json` rebuilt from `config.json`, which
    keeps the stop ids but drops the sampling defaults the model was released with (for example
    `temperature` 0.6 and `top_p` 0.9 for Llama 3 Instruct). Generation silently falls back to
    greedy decoding or library defaults, which can loop or change answers.

    ## Example
    The base has `"do_sample": true, "temperature": 0.6, "top_p": 0.9`; the fine-tune's file has
    only `bos_token_id` and `eos_token_id`.

    A fine-tune that pins `"do_sample": false` chose greedy decoding: sampling values would
    have no effect there (and transformers refuses to save such a config), so nothing is
    reported.

    ## Fix
    Add the lost keys back with the base's values; every other key is kept as it is. The fix is
    offered only when the result passes transformers' validation.

    ## Fix safety
    Unsafe: restoring `do_sample`/`temperature`/`top_p` switches decoding from greedy to
    sampling, which changes every answer; apply it with `--unsafe-fixes` only if the release
    defaults are what you want.
    """

    code = "FTX203"
    name = "sampling-defaults-lost"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when sampling keys of the base are missing in the fine-tune."""
        base, target = ctx.base.generation_config, ctx.target.generation_config
        if base is None or target is None:
            return  # a missing file is FTX201's case
        if target.get("do_sample") is False:
            return  # greedy decoding was chosen: sampling values would be inert (and invalid)
        lost = {k: base[k] for k in SAMPLING_KEYS if base.get(k) is not None and k not in target}
        if not lost:
            return
        valid = not validate_generation_config({**target, **lost})
        edit = edit_json(ctx.target, GENERATION_CONFIG, lost) if valid else None
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in lost.items())
        yield self.finding(
            f"generation_config.json lacks {shown}, which the base sets",
            path=GENERATION_CONFIG,
            fix=Fix(
                "Restore the base's sampling defaults",
                Applicability.UNSAFE if valid else Applicability.DISPLAY_ONLY,
                () if edit is None else (edit,),
            ),
            data={"lost": lost},
        )
