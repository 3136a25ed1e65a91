"""FTX404 dtype-mismatch."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, config_dtypes, stored_dtype
from ...analysis.context import Context, Need
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer


@register
class DtypeMismatch(Fixer):
    """config.json's `dtype` / `torch_dtype` is missing, null, or not the dtype stored.

    ## What it checks
    The floating dtype holding most of the weight bytes in the safetensors headers, against
    `dtype` (transformers 5) and `torch_dtype` (transformers 4) in `config.json`.

    ## Why is this bad?
    Loaders size and cast the model from that key. vLLM with `--dtype auto` reads it and, when
    it is missing, assumes float32 and serves in float16, which overflows on models trained in
    bfloat16; transformers with `dtype="auto"` loads a missing or wrong dtype as float32,
    doubling memory, or casts bf16 weights to fp16.

    ## Example
    `model.safetensors` holds BF16 tensors; `config.json` has `"torch_dtype": null`, or
    `"float32"` left from a merge done in fp32 and saved in bf16.

    ## Fix
    Write the stored dtype into both keys, `dtype` and `torch_dtype`, so transformers 4 and 5
    and the servers built on either read the same value.

    ## Fix safety
    Safe: the value is read from the tensors themselves.
    """

    code = "FTX404"
    name = "dtype-mismatch"
    severity = Severity.WARNING
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when a dtype key is absent, null or disagrees with the tensors."""
        target = ctx.target
        if target.kind is not Kind.MERGED:
            return
        stored = stored_dtype(target)
        if stored is None:
            return
        declared = config_dtypes(target.config)
        wrong = {k: v for k, v in declared.items() if v != stored}
        if declared and not wrong:
            return
        if not declared:
            what = "config.json declares no dtype"
        else:
            what = ", ".join(f"{k} is {v if v is not None else 'null'}" for k, v in wrong.items())
        edit = edit_json(target, CONFIG, {"dtype": stored, "torch_dtype": stored})
        yield self.finding(
            f"{what} but the weights are stored as {stored}; loaders cast or size the model "
            "from that key",
            path=CONFIG,
            fix=Fix(
                f"Set dtype and torch_dtype to {stored}",
                Applicability.SAFE,
                (edit,) if edit else (),
            ),
            data={"stored": stored, "declared": declared},
        )
