"""FTX304 merged-identical-to-base."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...analysis.adapters import layer_of
from ...analysis.context import Context
from ...errors import InvalidCheckpointError
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...io.safetensors import SafetensorsFile, TensorInfo
from ...registry import register
from ..base import Fixer, Need

_WINDOW = 64 * 1024  # bytes compared at the start, middle and end of each sampled tensor
_PER_KIND = 3  # tensors of each kind (q_proj, down_proj, ...): first, middle and last layer
_MAX_TENSORS = 64


@register
class MergedIdenticalToBase(Fixer):
    """A merged fine-tune whose sampled weights are byte-identical to the base's.

    ## What it checks
    For a merged checkpoint whose weights include transformer layers, up to three tensors of
    each kind (`q_proj`, `down_proj`, ..., embeddings: first, middle and last layer) that the
    base stores with the same name, dtype and shape, compared on three 64 KiB windows each
    (start, middle, end). A few MB are read, whatever the model size.

    ## Why is this bad?
    Training changes every weight it touches, and a merged LoRA changes the whole of each
    targeted matrix. Identical bytes mean the training had no effect or the base was saved in
    place of the trained weights (a merge into a freshly loaded base, an adapter that was never
    attached, the wrong folder uploaded): the "fine-tune" is the base model.

    ## Example
    `merged = base.merge_and_unload()` where `base` was loaded again instead of the trained
    `PeftModel`: `model.safetensors` equals the base's.

    ## Fix
    None automatic: merge again from the trained adapter (`PeftModel.from_pretrained(base,
    adapter).merge_and_unload()`), then check it differs from the base.

    ## Fix safety
    No fix is offered. A warning, not an error: a sample cannot prove that nothing differs.
    """

    code = "FTX304"
    name = "merged-identical-to-base"
    severity = Severity.WARNING
    needs = frozenset({Need.WEIGHTS, Need.BASE_WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a warning when every sampled window equals the base's."""
        target, base = ctx.target, ctx.base
        if target.kind is not Kind.MERGED or base.kind is not Kind.MERGED:
            return
        if target.root.resolve() == base.root.resolve():
            return
        try:
            ours, theirs = _tensors(target.weight_files()), _tensors(base.weight_files())
        except (InvalidCheckpointError, OSError):
            return
        common = [
            name
            for name, (_, info) in ours.items()
            if name in theirs
            and theirs[name][1].dtype == info.dtype
            and theirs[name][1].shape == info.shape
            and info.end > info.start
        ]
        sample = _sample(common)
        if not any(layer_of(name) for name in sample):
            return  # embeddings alone: too little to call it the base model
        compared = 0
        for name in sample:
            (mine, info), (other, _) = ours[name], theirs[name]
            size = info.end - info.start
            for start in sorted({0, max(0, size // 2 - _WINDOW // 2), max(0, size - _WINDOW)}):
                try:
                    same = mine.read_bytes(name, start, _WINDOW) == other.read_bytes(
                        name, start, _WINDOW
                    )
                except (InvalidCheckpointError, OSError):
                    return
                if not same:
                    return
                compared += min(_WINDOW, size - start)
        yield self.finding(
            f"{len(sample)} sampled tensors ({compared} bytes, e.g. {sample[0]}) are "
            "byte-identical to the base's: this is the base model (training changed nothing, "
            "or the base was saved in place of the trained weights)",
            path=next(iter(target.weight_files())),
            data={"tensors": sample, "bytes_compared": compared},
        )


def _tensors(files: dict[str, SafetensorsFile]) -> dict[str, tuple[SafetensorsFile, TensorInfo]]:
    return {name: (file, info) for file in files.values() for name, info in file.tensors.items()}


def _sample(names: list[str]) -> list[str]:
    """First, middle and last layer of each tensor kind, then the rest of the kinds."""
    kinds: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        where = layer_of(name)
        kind = re.sub(r"\.\d+\.", ".N.", name, count=1)
        kinds.setdefault(kind, []).append((where[1] if where else 0, name))
    chosen: list[str] = []
    for members in kinds.values():
        members.sort()
        picks = {0, len(members) // 2, len(members) - 1}
        chosen.extend(members[i][1] for i in sorted(picks)[:_PER_KIND])
    return chosen[:_MAX_TENSORS]
