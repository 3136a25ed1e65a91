"""FTX303 adapter-never-trained."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.adapters import ADAPTER_WEIGHTS, AdapterTensor, all_zero, open_adapter
from ...analysis.context import Context
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer

# Inits whose LoRA output starts at zero (peft's reset_lora_parameters zeroes lora_B for both);
# PiSSA, OLoRA, LoftQ, EVA, CorDA and the others start elsewhere, and `False` is random.
_ZERO_START = (True, "gaussian")


@register
class AdapterNeverTrained(Fixer):
    """Every `lora_B` of the adapter is still all zero, as peft initialised it: a no-op.

    ## What it checks
    When `init_lora_weights` in `adapter_config.json` is peft's default (`true`) or `gaussian`
    (both start `lora_B` at zero; for embedding LoRA it is `lora_embedding_A`), whether every
    such tensor is still exactly zero. The tensors are read (an adapter is megabytes) and the
    check stops at the first non-zero one. Inits that do not start at zero (PiSSA, OLoRA, LoftQ,
    EVA, CorDA, `false`) are skipped.

    ## Why is this bad?
    A LoRA layer adds `B @ A`; with `B = 0` it adds nothing, so the adapter is the base model.
    Seen after a learning rate of 0, a run that crashed before its first optimizer step but saved,
    gradients that never reached the adapter (frozen by a wrapper, `requires_grad` lost), or the
    save of a freshly created model instead of the trained one.

    ## Example
    `trainer.model` was re-created with `get_peft_model()` before `save_pretrained()`: every
    `...lora_B.weight` in `adapter_model.safetensors` is zero.

    ## Fix
    None automatic: train again, and check the adapter changes the outputs (`ftfix verify`).
    When the adapter also saves whole modules (`modules_to_save`, DoRA magnitudes, trainable
    tokens), those may have trained: the finding is then a warning.

    ## Fix safety
    No fix is offered.
    """

    code = "FTX303"
    name = "adapter-never-trained"
    severity = Severity.ERROR
    # The adapter (or folder) alone; an unreadable weight file is FTX90x's, and reads nothing.
    needs = frozenset()
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when every zero-initialised LoRA factor is still zero."""
        adapter = open_adapter(ctx.target)
        if adapter is None or not adapter.is_lora:
            return
        init = adapter.config.get("init_lora_weights", True)
        # `is True`: a JSON 1 equals True but is not peft's default init.
        if not (init is True or (isinstance(init, str) and init in _ZERO_START)):
            return
        factors: list[AdapterTensor] = []
        for lora in adapter.lora_modules().values():
            factor = lora.a if lora.embedding else lora.b
            if factor is None:
                continue
            if 0 in factor.info.shape or not factor.info.shape:
                return  # an empty save: FTX300 says what happened, "untrained" would mislead
            factors.append(factor)
        if not factors:
            return
        for factor in factors:
            if not all_zero(adapter.file, factor.info):
                return
        extra = adapter.extra_trainables()
        kinds = sorted({"lora_B" if f.part == "lora_B" else f.part for f in factors}, reverse=True)
        message = (
            f"all {len(factors)} {' and '.join(kinds)} tensors are zero, as peft initialises them "
            f"(init_lora_weights={init!r}): the adapter never trained"
        )
        if extra:
            message += (
                f"; its LoRA layers are a no-op, only its {len(extra)} saved modules "
                f"(e.g. {extra[0].key}) can change the model"
            )
        else:
            message += " and is a no-op: the model answers exactly like its base"
        yield self.finding(
            message,
            path=ADAPTER_WEIGHTS,
            severity=Severity.WARNING if extra else Severity.ERROR,
            data={"zero_tensors": len(factors), "saved_modules": [t.key for t in extra]},
        )
