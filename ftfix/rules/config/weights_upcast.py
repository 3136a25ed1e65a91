"""FTX405 weights-upcast."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, config_dtypes, human_bytes, stored_dtype, weight_bytes
from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer

_HALF = ("bfloat16", "float16")


@register
class WeightsUpcast(Fixer):
    """The fine-tune stores float32 weights where the base is 16-bit: twice the size.

    ## What it checks
    The dtype most weight bytes are stored in, on both sides (the base's config when its
    weights are not at hand): float32 in the fine-tune where the base is bfloat16 or float16.

    ## Why is this bad?
    A merge done in fp32 (the default dtype of `from_pretrained` in transformers 4) and saved
    as is doubles the download and the disk ("model doubled in size after merge"), and servers
    load it in fp32 or cast it at load time. Nothing was gained: the base's precision is 16-bit.

    ## Example
    Base `Llama-3.1-8B` in bf16 (16 GB); the merged fine-tune is 32 GB of F32 tensors.

    ## Fix
    None automatic. Re-save in the base's dtype: load with `dtype=torch.bfloat16` (or
    `model.to(torch.bfloat16)`) before `save_pretrained`.

    ## Fix safety
    No fix is offered: rounding the weights changes them.
    """

    code = "FTX405"
    name = "weights-upcast"
    severity = Severity.WARNING

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a warning with the size cost when fp32 weights sit on a 16-bit base."""
        target = ctx.target
        if target.kind is not Kind.MERGED or stored_dtype(target) != "float32":
            return
        base_dtype = stored_dtype(ctx.base) if ctx.base.kind is Kind.MERGED else None
        if base_dtype is None:
            declared = config_dtypes(ctx.base.json(CONFIG) or {})
            base_dtype = next((v for v in declared.values() if isinstance(v, str)), None)
        if base_dtype not in _HALF:
            return
        fp32 = weight_bytes(target)["F32"]
        yield self.finding(
            f"weights are stored as float32 ({human_bytes(fp32)}) where the base is "
            f"{base_dtype}: {human_bytes(fp32 // 2)} more than needed",
            path=None,
            data={"stored": "float32", "base": base_dtype, "extra_bytes": fp32 // 2},
        )
