"""FTX421 adapter-trainable-tokens."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer
from .adapter_saves_whole_modules import ADAPTER_CONFIG


@register
class AdapterTrainableTokens(Fixer):
    """The adapter trains token rows (`trainable_token_indices`), which LoRA servers do not load.

    ## What it checks
    `trainable_token_indices` in `adapter_config.json`: peft stores the trained rows of those
    tokens as `trainable_tokens_delta` tensors next to the LoRA weights.

    ## Why is this bad?
    Only peft applies them. vLLM loads LoRA A/B tensors only (`parse_fine_tuned_lora_name` in
    `vllm/lora/utils.py` rejects other names), SGLang and mlx-lm likewise, and llama.cpp's LoRA
    converter stops on them. Served as a LoRA the model loses exactly the tokens it was taught,
    usually its chat markers and end of turn.

    ## Example
    `LoraConfig(..., trainable_token_indices=[128256, 128257])` for two added chat tokens.

    ## Fix
    Merge before serving (`merge_and_unload()`, then `save_pretrained`), and serve the merged
    folder.

    ## Fix safety
    No fix is offered: merging writes a new model.
    """

    code = "FTX421"
    name = "adapter-trainable-tokens"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when an adapter sets trainable_token_indices."""
        if ctx.target.kind is not Kind.ADAPTER:
            return
        indices = (ctx.target.json(ADAPTER_CONFIG) or {}).get("trainable_token_indices")
        if not indices:
            return
        yield self.finding(
            f"trainable_token_indices is {indices}: only peft applies these rows; vLLM, SGLang, "
            "mlx-lm and llama.cpp's LoRA converter do not, so merge before serving",
            path=ADAPTER_CONFIG,
            data={"trainable_token_indices": indices},
        )
