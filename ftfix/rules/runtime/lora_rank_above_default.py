"""FTX422 lora-rank-above-default."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ...runtimes.vllm import MAX_LORA_RANK_DEFAULT, adapter_rank, rank_flag
from ..base import Fixer
from .adapter_saves_whole_modules import ADAPTER_CONFIG


@register
class LoraRankAboveDefault(Fixer):
    """The LoRA rank is above vLLM's default `max_lora_rank` (16).

    ## What it checks
    The largest rank of the adapter (`r`, and every value of `rank_pattern`) against vLLM's
    default `max_lora_rank` of 16 (`vllm/config/lora.py`).

    ## Why is this bad?
    vLLM refuses the adapter at the first request that uses it: "LoRA rank 64 is greater than
    max_lora_rank 16". The server must be started with a larger `--max-lora-rank`, which only
    takes 1, 8, 16, 32, 64, 128, 256, 320 or 512.

    ## Example
    `LoraConfig(r=64, ...)` served with `vllm serve BASE --enable-lora --lora-modules a=ADAPTER`.

    ## Fix
    Start vLLM with the flag the message names (`--max-lora-rank 64`), or merge before serving.

    ## Fix safety
    No fix is offered: the adapter is fine, the server flag is what changes.
    """

    code = "FTX422"
    name = "lora-rank-above-default"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the adapter's rank exceeds vLLM's default maximum."""
        if ctx.target.kind is not Kind.ADAPTER:
            return
        rank = adapter_rank(ctx.target.json(ADAPTER_CONFIG) or {})
        if rank is None or rank <= MAX_LORA_RANK_DEFAULT:
            return
        flag = rank_flag(rank)
        yield self.finding(
            f"LoRA rank {rank} is greater than vLLM's default max_lora_rank "
            f"{MAX_LORA_RANK_DEFAULT}: start vLLM with {flag}",
            path=ADAPTER_CONFIG,
            data={"rank": rank, "flag": flag},
        )
