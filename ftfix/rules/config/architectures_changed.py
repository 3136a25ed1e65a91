"""FTX403 architectures-changed."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, weight_keys
from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer

_HEADED = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


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
    model's config leaves `["Qwen2Model"]`: vLLM then serves it as an embedding (pooling) model
    or refuses the architecture, and transformers' `AutoModelForCausalLM` builds a fresh,
    random head. The weights themselves are fine.

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
        target = ctx.target
        base_config = ctx.base.json(CONFIG)
        if target.kind is not Kind.MERGED or base_config is None:
            return
        expected = _names(base_config.get("architectures"))
        found = _names(target.config.get("architectures"))
        if not expected or found == expected:
            return
        if target.config.get("model_type") != base_config.get("model_type"):
            return  # another model family altogether: not a drifted name
        keys = set(weight_keys(target))
        if not keys:
            return
        base_keys = set(weight_keys(ctx.base)) if ctx.base.kind is Kind.MERGED else set()
        if base_keys:
            if keys != base_keys:
                return
            why = "the stored weight keys are the base's"
        else:
            headed = any(k.endswith("lm_head.weight") for k in keys) or all(
                k.startswith("model.") for k in keys
            )
            if not (headed and expected[0].endswith(_HEADED)):
                return
            why = "the stored weights have the base class's layout (output head, model. keys)"
        edit = edit_json(target, CONFIG, {"architectures": expected})
        shown = found or "missing"
        yield self.finding(
            f"architectures is {shown} but the base is {expected} and {why}; vLLM and "
            "AutoModelForCausalLM pick the wrong class (an embedding model, or a random head)",
            path=CONFIG,
            fix=Fix(
                f"Set architectures to {expected}", Applicability.SAFE, (edit,) if edit else ()
            ),
            data={"architectures": found, "base_architectures": expected},
        )
