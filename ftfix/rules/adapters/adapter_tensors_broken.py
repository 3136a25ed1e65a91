"""FTX300 adapter-tensors-broken."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.adapters import (
    ADAPTER_WEIGHTS,
    base_weights,
    open_adapter,
    shape_problem,
    zero_save_hint,
)
from ...analysis.context import Context
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer

_SHOWN = 3


@register
class AdapterTensorsBroken(Fixer):
    """The LoRA tensors of an adapter are empty, flat, or of shapes that cannot be applied.

    ## What it checks
    Every `lora_A`/`lora_B` pair of `adapter_model.safetensors`: tensors with no elements (a
    `0` dimension), 1-D tensors where matrices are expected, an `A` and `B` that disagree on the
    rank, a rank other than `r` or the module's `rank_pattern` entry in `adapter_config.json`,
    and, when the base's weights are at hand, `A: [r, in]` and `B: [out, r]` against the base
    module's `weight: [out, in]`. A file with no LoRA tensors at all is reported too. Only the
    headers are read.

    ## Why is this bad?
    DeepSpeed ZeRO-3 and FSDP keep each parameter sharded across ranks; saving the adapter
    without gathering them first writes placeholders: an `adapter_model.safetensors` of 40 bytes
    with no tensors, tensors of shape `[0]`, or flattened 1-D shards. The training looked fine;
    the saved adapter is nothing. peft either fails with a size mismatch or, worse, loads an
    adapter that changes nothing, and the server answers like the base model.

    ## Example
    A ZeRO-3 run saved with `model.save_pretrained()` on every rank: every
    `...q_proj.lora_A.weight` has shape `[0]`.

    ## Fix
    None automatic: the trained values are not in the file. Re-save with the parameters
    gathered (ZeRO-3: `stage3_gather_16bit_weights_on_model_save: true` and
    `trainer.save_model()`; FSDP: `fsdp_state_dict_type: FULL_STATE_DICT`). When DeepSpeed's own
    checkpoint (`global_stepN/`, `zero_to_fp32.py`) is still there, the message gives the
    command that rebuilds the weights from it.

    ## Fix safety
    No fix is offered.
    """

    code = "FTX300"
    name = "adapter-tensors-broken"
    severity = Severity.ERROR
    # The adapter (or folder) alone; an unreadable weight file is FTX90x's, and reads nothing.
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding listing the broken modules (or the empty file)."""
        adapter = open_adapter(ctx.target)
        if adapter is None or not adapter.is_lora:
            return
        loras = adapter.lora_modules()
        if not loras:
            if adapter.config.get("target_modules") or not adapter.tensors:
                held = (
                    "no tensors at all"
                    if not adapter.tensors
                    else f"no LoRA tensors (only {len(adapter.tensors)} other tensors)"
                )
                yield self.finding(
                    f"{ADAPTER_WEIGHTS} ({adapter.size} bytes) holds {held}: the adapter was "
                    "saved from sharded parameters (DeepSpeed ZeRO-3 or FSDP without gathering) "
                    f"and does nothing; {zero_save_hint(ctx.target)}",
                    path=ADAPTER_WEIGHTS,
                    data={"bytes": adapter.size, "tensors": len(adapter.tensors)},
                )
            return
        base = base_weights(ctx.base_or_none)
        problems = {}
        for module, lora in loras.items():
            problem = shape_problem(adapter.config, lora, base)
            if problem is not None:
                problems[module] = problem
        empty = [t.key for t in adapter.tensors if t.part == "full" and 0 in t.info.shape]
        if not problems and not empty:
            return
        shown = "; ".join(f"{m}: {p}" for m, p in list(problems.items())[:_SHOWN])
        more = len(problems) - _SHOWN
        parts = []
        if problems:
            parts.append(
                f"{len(problems)} of {len(loras)} LoRA modules are broken ({shown}"
                + (f"; and {more} more" if more > 0 else "")
                + ")"
            )
        if empty:
            parts.append(f"{len(empty)} saved modules have no elements ({empty[0]})")
        sharded = bool(empty) or any(
            "no elements" in p or "-D" in p or "but no" in p for p in problems.values()
        )
        if sharded:
            cause = (
                "the adapter was saved from sharded parameters (DeepSpeed ZeRO-3 or FSDP without "
                f"gathering); {zero_save_hint(ctx.target)}"
            )
        elif any("base's" in p for p in problems.values()):
            declared = adapter.config.get("base_model_name_or_path")
            cause = (
                "the adapter was trained on a different base model"
                + (f" (it declares {declared})" if declared else "")
                + "; pass the base it was trained on"
            )
        else:
            cause = "the tensors do not match adapter_config.json; re-save the adapter with peft"
        yield self.finding(
            f"{'; '.join(parts)}: peft fails to load it or loads a no-op; {cause}",
            path=ADAPTER_WEIGHTS,
            data={"modules": problems, "empty_tensors": empty, "sharded": sharded},
        )
