"""FTX420 adapter-saves-whole-modules."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer

ADAPTER_CONFIG = "adapter_config.json"
_RUNTIMES = ("vLLM", "SGLang", "mlx-lm", "llama.cpp")


@register
class AdapterSavesWholeModules(Fixer):
    """The adapter saves whole modules (`modules_to_save`), which LoRA servers cannot load.

    ## What it checks
    `modules_to_save` in `adapter_config.json` of a PEFT adapter (typically `embed_tokens` and
    `lm_head`, saved whole because new tokens were added).

    ## Why is this bad?
    transformers + peft load it, but the LoRA servers do not: vLLM refuses the adapter with
    "vLLM only supports modules_to_save being None" (`vllm/lora/peft_helper.py`), SGLang and
    mlx-lm load LoRA A/B weights only, and llama.cpp's `convert_lora_to_gguf.py` stops on the
    full embedding or head tensors ("Embeddings is present in the adapter").

    ## Example
    `LoraConfig(r=16, target_modules="all-linear", modules_to_save=["embed_tokens", "lm_head"])`
    after adding `<|im_start|>` and `<|im_end|>` to a base model's tokenizer.

    ## Fix
    Merge before serving: `PeftModel.from_pretrained(base, ADAPTER).merge_and_unload()`, then
    `save_pretrained` and serve (and check) the merged folder.

    ## Fix safety
    No fix is offered: merging writes a new model.
    """

    code = "FTX420"
    name = "adapter-saves-whole-modules"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when an adapter sets modules_to_save."""
        if ctx.target.kind is not Kind.ADAPTER:
            return
        modules = (ctx.target.json(ADAPTER_CONFIG) or {}).get("modules_to_save")
        if not modules:
            return
        yield self.finding(
            f'modules_to_save is {modules}: vLLM ("only supports modules_to_save being None"), '
            "SGLang, mlx-lm and llama.cpp's LoRA converter cannot serve this adapter; merge "
            "before serving",
            path=ADAPTER_CONFIG,
            data={
                "modules_to_save": modules,
                "runtimes": ["vLLM", "SGLang", "mlx-lm", "llama.cpp"],
            },
        )
