"""FTX903 pickled-weights."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.problems import ProblemKind
from ...registry import register
from ..base import Fixer
from ._report import problems_of


@register
class PickledWeights(Fixer):
    """The weights are only pickled `.bin` files, which ftfix never unpickles.

    ## What it checks
    A model or adapter whose only weights are `pytorch_model.bin` (or its index and shards) or
    `adapter_model.bin`, with no safetensors next to them.

    ## Why is this bad?
    Unpickling runs code from the file, so ftfix never does it: the checks that read weights
    (untrained token rows, embedding sizes) are skipped. Loaders refuse pickles more and more
    (transformers needs torch >= 2.6 for `torch.load(weights_only=True)`; vLLM and TGI prefer
    safetensors), so the model is also harder to serve.

    ## Example
    A LLaMA-Factory adapter saved with `save_safetensors=False`: `adapter_model.bin` only.

    ## Fix
    Load it once where you trust it and re-save with `save_pretrained(...,
    safe_serialization=True)`; then check again to have the weights checked too.

    ## Fix safety
    No fix is offered: converting means unpickling, which ftfix never does.
    """

    code = "FTX903"
    name = "pickled-weights"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding for the pickled weights file."""
        yield from problems_of(self, ctx, ProblemKind.PICKLED)
