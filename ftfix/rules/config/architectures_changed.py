"""FTX403 architectures-changed."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, architecture_drift
from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer


@register
class ArchitecturesChanged(Fixer):
    """config.json names another model class than the base, while the weights are the base's.

    ## What it checks
    `architectures` in the fine-tune's `config.json` differs from the base's (or is missing),
    and the stored weight keys are those of the base's class: the same tensor names as the
    base's weights, or, when the base's weights are not at hand, an output head (`lm_head`) or
    `model.`-prefixed keys next to a bare class name such as `Qwen2Model`.

    ## Why is this bad?
    Servers pick the model class from `architectures`. A merge script that saved the inner
    model's config leaves `["Qwen2Model"]`: vLLM lists bare `LlamaModel`, `MistralModel` and
    `Qwen2Model` among its embedding models (`_EMBEDDING_MODELS` in
    `vllm/model_executor/models/registry.py`) and serves the folder as a pooling model, and
    llama.cpp's `convert_hf_to_gguf.py` looks the class up by name and refuses one it does not
    know. transformers' `AutoModelForCausalLM` goes by `model_type` and is not affected, which is
    why the folder "works in transformers". The weights themselves are fine.

    ## Example
    Base: `"architectures": ["Qwen2ForCausalLM"]`; fine-tune: `["Qwen2Model"]`, with
    `lm_head.weight` and `model.layers.*` stored.

    ## Fix
    Write the base's `architectures` into `config.json`.

    ## Fix safety
    Safe: only when the weight keys show the folder holds the base's class; otherwise the rule
    reports nothing.
    """

    code = "FTX403"
    name = "architectures-changed"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when architectures drifted and the weights are the base class's."""
        drift = architecture_drift(ctx.target, ctx.base)
        if drift is None:
            return
        edit = edit_json(ctx.target, CONFIG, {"architectures": drift.expected})
        shown = drift.found or "missing"
        yield self.finding(
            f"architectures is {shown} but the base is {drift.expected} and {drift.why}; vLLM "
            "serves a bare model class as an embedding model and llama.cpp's converter refuses "
            "an unknown one",
            path=CONFIG,
            fix=Fix(
                f"Set architectures to {drift.expected}",
                Applicability.SAFE,
                (edit,) if edit else (),
            ),
            data={"architectures": drift.found, "base_architectures": drift.expected},
        )
