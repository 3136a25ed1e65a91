"""FTX401 quantization-config-unused."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, quantized_tensors, weight_keys
from ...analysis.context import Context, Need
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer


@register
class QuantizationConfigUnused(Fixer):
    """config.json declares a quantisation the stored weights do not have.

    ## What it checks
    A merged model whose `config.json` has a `quantization_config` while no tensor in its
    safetensors headers is quantised (no bitsandbytes `absmax` / `quant_state` / `SCB`, no GPTQ
    or AWQ `qweight`, no FP8 tensors or scales, no integer weight matrices).

    ## Why is this bad?
    Loaders trust the config: vLLM picks the quantisation method from it and fails to load the
    plain weights, transformers tries to quantise on load (and needs bitsandbytes and a GPU for
    a `bitsandbytes` config). The usual cause is merging a QLoRA adapter into a base loaded in
    4-bit, then saving the merged model in 16-bit with the 4-bit config still attached.

    ## Example
    `"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true, ...}` next to
    `model.safetensors` holding only BF16 tensors.

    ## Fix
    Remove `quantization_config` from `config.json`.

    ## Fix safety
    Safe: the key describes tensors that are not there; every loader then reads the weights as
    they are stored.
    """

    code = "FTX401"
    name = "quantization-config-unused"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when quantization_config is set and no tensor is quantised."""
        target = ctx.target
        if target.kind is not Kind.MERGED or "quantization_config" not in target.config:
            return
        if not weight_keys(target) or quantized_tensors(target):
            return
        value = target.config.get("quantization_config")
        method = value.get("quant_method") if isinstance(value, dict) else None
        edit = edit_json(target, CONFIG, {}, remove=("quantization_config",))
        yield self.finding(
            f"config.json declares quantization_config ({method or 'no quant_method'}) but no "
            "stored tensor is quantised; vLLM and transformers will try to load the weights as "
            "quantised",
            path=CONFIG,
            fix=Fix(
                "Remove quantization_config from config.json",
                Applicability.SAFE,
                (edit,) if edit else (),
            ),
            data={"quant_method": method},
        )
