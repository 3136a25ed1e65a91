"""FTX902 missing-shard."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.problems import ProblemKind
from ...registry import register
from ..base import Fixer
from ._report import problems_of


@register
class MissingShard(Fixer):
    """A weight shard named by the index is not in the folder.

    ## What it checks
    Every file `model.safetensors.index.json` (or `pytorch_model.bin.index.json`) maps a tensor
    to, whether it exists in the folder.

    ## Why is this bad?
    transformers and vLLM read the index and open every shard it names: a missing one fails the
    load. An index left without its shards is also what a partial upload or a copy of "just the
    small files" looks like; ftfix skips the checks that read weights.

    ## Example
    The index names `model-00001-of-00002.safetensors` and `model-00002-of-00002.safetensors`;
    the folder holds only the first.

    ## Fix
    Copy the missing shards (all shards of one save belong together), or re-save the model.

    ## Fix safety
    No fix is offered: the weights are not in the folder.
    """

    code = "FTX902"
    name = "missing-shard"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per missing shard."""
        yield from problems_of(self, ctx, ProblemKind.MISSING_SHARD)
