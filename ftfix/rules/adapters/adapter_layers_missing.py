"""FTX302 adapter-layers-missing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ...analysis.adapters import (
    ADAPTER_WEIGHTS,
    BaseWeights,
    base_weights,
    layer_indices,
    layer_of,
    open_adapter,
)
from ...analysis.context import Context
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer

_SHOWN = 3


@register
class AdapterLayersMissing(Fixer):
    """The adapter lacks the modules `target_modules` names on some layers.

    ## What it checks
    For each layer stack the adapter's LoRA modules sit in (`model.layers.N`), whether every
    targeted module is present on every layer: the layers of the base when its weights are at
    hand (otherwise every layer the adapter itself covers), restricted by `layers_to_transform`
    and a regex `target_modules`. With the base, also whether a module `target_modules` selects
    in those layers (`gate_proj`) is missing from the adapter altogether. Headers only.

    ## Why is this bad?
    peft creates a LoRA layer for every targeted module and fills it from the file; a module
    missing from the file keeps its initial `B = 0` and does nothing, with at most a warning
    about missing keys. Layers lost this way come from a save cut short, shards merged from some
    ranks only, or an adapter edited by hand.

    ## Example
    `target_modules: ["q_proj", "v_proj"]` on a 32-layer base, but the file holds `q_proj` and
    `v_proj` for layers 0-15 only.

    ## Fix
    None automatic: re-save the adapter from the trained model (or the full training
    checkpoint).

    ## Fix safety
    No fix is offered.
    """

    code = "FTX302"
    name = "adapter-layers-missing"
    severity = Severity.ERROR
    # The adapter (or folder) alone; an unreadable weight file is FTX90x's, and reads nothing.
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding listing the modules missing on some layers."""
        adapter = open_adapter(ctx.target)
        if adapter is None or not adapter.is_lora:
            return
        loras = [m for m, lora in adapter.lora_modules().items() if lora.a or lora.b]
        have: dict[tuple[str, str], set[int]] = {}
        for module in loras:
            where = layer_of(module)
            if where is not None:
                have.setdefault((where[0], where[2]), set()).add(where[1])
        if not have:
            return
        config = adapter.config
        base = base_weights(ctx.base_or_none)
        stacks = {stack for stack, _ in have}
        expected = _expected_layers(stacks, have, base)
        if base is not None:
            for (stack, leaf), _ in _base_targets(config, base, stacks).items():
                have.setdefault((stack, leaf), set())
        gaps: dict[str, list[int]] = {}
        for (stack, leaf), indices in sorted(have.items()):
            wanted = {
                i
                for i in expected.get(stack, set())
                if _targeted(config, f"{stack}.{i}.{leaf}", index=i)
            }
            missing = sorted(wanted - indices)
            if missing:
                gaps[f"{stack}.N.{leaf}"] = missing
        if not gaps:
            return
        shown = "; ".join(
            f"{name} on {len(expected[name.split('.N.')[0]]) - len(missing)} of "
            f"{len(expected[name.split('.N.')[0]])} layers (missing {_ranges(missing)})"
            for name, missing in list(gaps.items())[:_SHOWN]
        )
        more = len(gaps) - _SHOWN
        yield self.finding(
            f"adapter lacks targeted modules: {shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "; peft leaves them at their initial no-op values: re-save the adapter",
            path=ADAPTER_WEIGHTS,
            data={"missing": gaps},
        )


def _expected_layers(
    stacks: set[str], have: dict[tuple[str, str], set[int]], base: BaseWeights | None
) -> dict[str, set[int]]:
    expected: dict[str, set[int]] = {}
    if base is not None:
        in_base = layer_indices(base.module_names())
        expected = {s: in_base[s] for s in stacks if s in in_base}
    for (stack, _), indices in have.items():
        if stack not in expected:  # not in the base (FTX301's business) or no base: itself
            expected.setdefault(stack, set()).update(indices)
    return expected


def _base_targets(
    config: dict[str, Any], base: BaseWeights, stacks: set[str]
) -> dict[tuple[str, str], None]:
    """(stack, leaf) of the base's matrices in `stacks` that `target_modules` selects."""
    found: dict[tuple[str, str], None] = {}
    for module in base.module_names():
        where = layer_of(module)
        shape = base.weight_shape(module)
        if where is None or where[0] not in stacks or shape is None or len(shape) != 2:
            continue
        if _targeted(config, module, index=where[1]):
            found[(where[0], where[2])] = None
    return found


def _targeted(config: dict[str, Any], module: str, *, index: int) -> bool:
    """Whether peft's matching would give `module` a LoRA layer (names, regex, layers)."""
    saved = config.get("modules_to_save") or []
    if isinstance(saved, list) and any(
        re.match(rf"(^|.*\.){re.escape(str(m))}($|\..*)", module) for m in saved
    ):
        return False
    excluded = config.get("exclude_modules")
    try:
        if isinstance(excluded, str) and re.fullmatch(excluded, module):
            return False
        targets = config.get("target_modules")
        if isinstance(targets, str):
            return re.fullmatch(targets, module) is not None
    except re.error:
        return False
    if isinstance(excluded, list) and any(
        module == e or module.endswith(f".{e}") for e in excluded
    ):
        return False
    if not isinstance(targets, list):
        return False
    if not any(module == t or module.endswith(f".{t}") for t in targets if isinstance(t, str)):
        return False
    layers = config.get("layers_to_transform")
    if isinstance(layers, int) and not isinstance(layers, bool):
        return index == layers
    if isinstance(layers, list) and layers:
        return index in layers
    return True


def _ranges(indices: list[int]) -> str:
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
