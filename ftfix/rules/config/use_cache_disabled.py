"""FTX402 use-cache-disabled."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG
from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer


@register
class UseCacheDisabled(Fixer):
    """config.json has `use_cache: false`, left by gradient checkpointing; the base has true.

    ## What it checks
    `use_cache` in the fine-tune's `config.json` is `false` while the base's is `true` (or
    absent, which transformers reads as true).

    ## Why is this bad?
    Trainers turn the KV cache off for training and save the config as it was: transformers 5's
    `Trainer` sets `model.config.use_cache = args.use_cache` (default `False`) when it is built,
    so the `checkpoint-N` folders it saves say `false`; gradient-checkpointing scripts do the
    same. transformers takes `use_cache` from the model config when there is no
    `generation_config.json` saying otherwise, and every forward pass outside `generate()`
    reads it: decoding recomputes the whole prefix at each step ("the saved checkpoint is very
    slow").

    ## Example
    Base `config.json`: `"use_cache": true`; fine-tune: `"use_cache": false`.

    ## Fix
    Set `use_cache` back to `true` in `config.json`.

    ## Fix safety
    Safe: it restores the base's value; the cache changes speed, never the tokens generated.
    """

    code = "FTX402"
    name = "use-cache-disabled"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the fine-tune disables the cache and the base does not."""
        target = ctx.target
        if target.kind is not Kind.MERGED or target.config.get("use_cache") is not False:
            return
        base_config = ctx.base.json(CONFIG)
        if base_config is None or base_config.get("use_cache", True) is not True:
            return
        edit = edit_json(target, CONFIG, {"use_cache": True})
        yield self.finding(
            "use_cache is false (base: true), left from training (Trainer, gradient "
            "checkpointing); transformers decodes without the KV cache",
            path=CONFIG,
            fix=Fix("Set use_cache to true", Applicability.SAFE, (edit,) if edit else ()),
        )
