"""FTX305 deepspeed-weights-not-consolidated."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...analysis.adapters import zero_save_hint
from ...analysis.context import Context
from ...errors import InvalidCheckpointError
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer

_SHOWN = 3


@register
class DeepspeedWeightsNotConsolidated(Fixer):
    """A full checkpoint's weights are empty placeholders; the real ones are in a trainer format.

    ## What it checks
    In a merged (full) checkpoint: weight tensors with a `0` dimension (the placeholders
    DeepSpeed ZeRO-3 and FSDP leave for sharded parameters), or a folder with `config.json`
    and no weights at all beside DeepSpeed's `global_stepN/` and `zero_to_fp32.py`. Headers
    only.

    ## Why is this bad?
    Saving a ZeRO-3 model without gathering writes tensors of shape `[0]`: transformers refuses
    the size mismatch, or (with `ignore_mismatched_sizes=True`) re-initialises every such weight
    at random. The trained weights exist only in DeepSpeed's partitioned checkpoint.

    ## Example
    `checkpoint-1200/model.safetensors` where every `...q_proj.weight` has shape `[0]`, next to
    `global_step1200/` and `zero_to_fp32.py`.

    ## Fix
    None automatic: run `python zero_to_fp32.py . recovered/ --safe_serialization` in the
    checkpoint folder (DeepSpeed must be installed), copy the config and tokenizer files next
    to the recovered weights, and check again. Next time set
    `stage3_gather_16bit_weights_on_model_save: true` (FSDP: `FULL_STATE_DICT`).

    ## Fix safety
    No fix is offered: recovering needs DeepSpeed and torch, and writes gigabytes.
    """

    code = "FTX305"
    name = "deepspeed-weights-not-consolidated"
    severity = Severity.ERROR
    # The adapter (or folder) alone; an unreadable weight file is FTX90x's, and reads nothing.
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the weights are placeholders or only DeepSpeed's files exist."""
        target = ctx.target
        step = next((d for d in target.subfolders() if re.fullmatch(r"global_step\d+", d)), None)
        if target.kind is Kind.TOKENIZER and target.exists("config.json"):
            if step is not None and target.exists("zero_to_fp32.py"):
                yield self.finding(
                    f"no weights in the folder; only DeepSpeed's checkpoint ({step}/) holds "
                    f"them: {zero_save_hint(target)}",
                    path="config.json",
                    data={"deepspeed_checkpoint": step},
                )
            return
        if target.kind is not Kind.MERGED:
            return
        try:
            files = target.weight_files()
        except (InvalidCheckpointError, OSError):
            return
        total = 0
        empty: list[tuple[str, str, tuple[int, ...]]] = []
        for rel, file in files.items():
            for name, info in file.tensors.items():
                total += 1
                if 0 in info.shape:
                    empty.append((rel, name, info.shape))
        if not empty:
            return
        shown = ", ".join(f"{name} {list(shape)}" for _, name, shape in empty[:_SHOWN])
        yield self.finding(
            f"{len(empty)} of {total} weight tensors have no elements ({shown}): the model was "
            "saved from sharded parameters, and loaders refuse it or initialise them at random; "
            f"{zero_save_hint(target)}",
            path=empty[0][0],
            data={"empty": len(empty), "tensors": total, "deepspeed_checkpoint": step},
        )
