"""FTX423 lora-on-tied-head."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...analysis.config import CONFIG
from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer
from .adapter_saves_whole_modules import ADAPTER_CONFIG

_HEADS = ("lm_head", "embed_out")


def _targets_head(value: object) -> bool:
    if isinstance(value, str):
        # peft treats a string as a regular expression matched against module names
        return any(re.fullmatch(value, name) or re.search(value, name) for name in _HEADS)
    if isinstance(value, list):
        return any(isinstance(v, str) and v.split(".")[-1] in _HEADS for v in value)
    return False


@register
class LoraOnTiedHead(Fixer):
    """The adapter puts LoRA on the output head of a model whose head is tied to the embedding.

    ## What it checks
    `target_modules` of `adapter_config.json` naming `lm_head` while the base's `config.json`
    has `tie_word_embeddings: true`.

    ## Why is this bad?
    peft adds the LoRA delta to the head only, untying it in effect. Runtimes that materialise
    the tie do not: the GGUF of a tied model has no `output.weight`, so llama.cpp's converted
    adapter carries a head LoRA with no base tensor to apply it to, and merging into the tied
    weights changes the embedding too.

    ## Example
    A Qwen2.5-0.5B or Llama-3.2-1B (tied) adapter with `target_modules=["q_proj", ..., "lm_head"]`.

    ## Fix
    Merge before serving, and untie in the merged config if the merged head differs from the
    embedding (FTX406); or train without `lm_head` in `target_modules`.

    ## Fix safety
    No fix is offered: merging writes a new model.
    """

    code = "FTX423"
    name = "lora-on-tied-head"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when lm_head is a LoRA target of a tied base."""
        if ctx.target.kind is not Kind.ADAPTER:
            return
        targets = (ctx.target.json(ADAPTER_CONFIG) or {}).get("target_modules")
        if not _targets_head(targets):
            return
        if (ctx.base.json(CONFIG) or {}).get("tie_word_embeddings") is not True:
            return
        yield self.finding(
            "target_modules puts LoRA on lm_head, but the base ties lm_head to embed_tokens: "
            "llama.cpp's converted adapter has no output tensor to apply it to; merge before "
            "serving",
            path=ADAPTER_CONFIG,
            data={"target_modules": targets},
        )
