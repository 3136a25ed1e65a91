"""FTX301 adapter-targets-missing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ...analysis.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    MAX_RENAME_BYTES,
    Adapter,
    BaseWeights,
    LoraModule,
    Substitution,
    base_shape_problem,
    base_weights,
    find_substitutions,
    open_adapter,
    renamed_safetensors,
)
from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...findings import Applicability, Edit, FileEdit, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer, Need

# Parts that only act through a module of the base; whole saved modules (modules_to_save) may
# legitimately be new (a classification head), so they never make the adapter "aimed at nothing".
_ATTACHED = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "magnitude", "lora_bias")


@register
class AdapterTargetsMissing(Fixer):
    """The adapter's modules are not modules of the base model: it loads as a no-op.

    ## What it checks
    Every module the adapter's LoRA tensors attach to (its key after peft's `base_model.model.`
    prefix, e.g. `model.layers.0.self_attn.q_proj`) against the base's weight names, read from
    its safetensors headers or index. A base saved in the multimodal layout older than
    transformers 4.52 (`language_model.model.*`) also answers to today's names
    (`model.language_model.*`). When one prefix substitution makes every missing module a
    module of the base with matching shapes, it is named.

    ## Why is this bad?
    peft and vLLM match adapter keys by name. Keys that name nothing are skipped, at most with a
    warning among many: the server says the adapter loaded, and answers like the base model.
    Common causes: an adapter trained on the text-only class of a multimodal model
    (`model.layers.*`) served on the multimodal wrapper (`model.language_model.layers.*`), a
    transformers release that renamed a model's modules, or the wrong base.

    ## Example
    Keys `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` against a base whose
    weights are `model.language_model.layers.0.self_attn.q_proj.weight`.

    ## Fix
    When one substitution resolves every missing module: rename those keys in the adapter's
    safetensors header (tensor data untouched), and the matching full module names in
    `adapter_config.json` (`target_modules`, `rank_pattern`, `alpha_pattern`). Otherwise none:
    check which base the adapter was trained on.

    ## Fix safety
    Unsafe: it changes what loads, and only the user knows which runtime layout the adapter is
    meant for. The rewrite is atomic, backed up and undone by `ftfix undo`.
    """

    code = "FTX301"
    name = "adapter-targets-missing"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS, Need.BASE_WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding when some adapter modules are not in the base."""
        adapter = open_adapter(ctx.target)
        base = base_weights(ctx.base)
        if adapter is None or base is None or not adapter.is_lora:
            return
        modules = list(dict.fromkeys(t.module for t in adapter.tensors if t.part in _ATTACHED))
        missing = [m for m in modules if not base.has(m)]
        if not missing:
            return
        fits = _fits(adapter, base)
        subs = find_substitutions(missing, base, fits, taken=adapter.modules())
        whole = "is a no-op" if len(missing) == len(modules) else "is partly a no-op"
        message = (
            f"{len(missing)} of {len(modules)} adapter modules are not in the base "
            f"(first: {missing[0]}); peft and vLLM skip them, so the adapter {whole}"
        )
        fix = None
        data: dict[str, Any] = {"missing": missing, "modules": len(modules)}
        if len(subs) == 1:
            sub = subs[0]
            message += f"; renaming {sub.describe()} resolves all of them"
            data["substitution"] = {"old": sub.old, "new": sub.new}
            fix, why_not = _rename_fix(ctx, adapter, sub, set(missing), base)
            if fix is None:
                message += f" ({why_not})"
        elif len(subs) > 1:
            message += "; several prefix renames would resolve them: " + ", ".join(
                s.describe() for s in subs[:3]
            )
        else:
            declared = adapter.config.get("base_model_name_or_path")
            message += (
                f"; is {ctx.base.display} the base it was trained on"
                + (f" (it declares {declared})" if declared else "")
                + "?"
            )
        yield self.finding(message, path=ADAPTER_WEIGHTS, fix=fix, data=data)


def _fits(adapter: Adapter, base: BaseWeights) -> dict[str, Callable[[str], bool]]:
    """Per LoRA module: does a candidate base module have the shapes its A and B need."""

    def fits(lora: LoraModule) -> Callable[[str], bool]:
        return lambda name: base_shape_problem(adapter.config, lora, base, name) is None

    return {module: fits(lora) for module, lora in adapter.lora_modules().items()}


def _rename_fix(
    ctx: Context, adapter: Adapter, sub: Substitution, missing: set[str], base: BaseWeights
) -> tuple[Fix | None, str]:
    """The rename as a fix, or `None` and why it cannot be planned here."""
    if adapter.size > MAX_RENAME_BYTES:
        return None, f"no fix offered above {MAX_RENAME_BYTES >> 20} MiB: rename when re-saving"
    renames = {}
    for tensor in adapter.tensors:
        new_module = sub.apply(tensor.module) if tensor.module.startswith(sub.old) else None
        if new_module is None:
            continue
        attached_missing = tensor.module in missing
        # A saved whole module under the same old prefix moves too when the base has it there.
        saved_moves = tensor.part == "full" and not base.has(tensor.module)
        if attached_missing or (saved_moves and base.has(new_module)):
            renames[tensor.key] = adapter.prefix + new_module + tensor.suffix
    before = ctx.target.read_bytes(ADAPTER_WEIGHTS)
    if before is None or not renames:
        return None, "nothing to rename"
    try:
        after = renamed_safetensors(before, renames)
    except ValueError as exc:  # two keys would become one: never plan a lossy rewrite
        return None, str(exc)
    edits: list[Edit] = [FileEdit(ADAPTER_WEIGHTS, before, after)]
    updates = _config_updates(adapter.config, sub, sorted(missing))
    if updates is None:
        return None, "target_modules is a regex that misses the renamed modules: rewrite it"
    if updates:
        config_edit = edit_json(ctx.target, ADAPTER_CONFIG, updates)
        if config_edit is not None:
            edits.append(config_edit)
    return Fix(f"Rename adapter keys {sub.describe()}", Applicability.UNSAFE, tuple(edits)), ""


def _config_updates(
    config: dict[str, Any], sub: Substitution, modules: list[str]
) -> dict[str, Any] | None:
    """Full module names in the config moved with the keys; `None` if a regex cannot follow."""
    updates: dict[str, Any] = {}
    targets = config.get("target_modules")
    if isinstance(targets, list):
        moved = [
            sub.apply(t) if isinstance(t, str) and "." in t and t.startswith(sub.old) else t
            for t in targets
        ]
        if moved != targets:
            updates["target_modules"] = moved
    elif isinstance(targets, str):
        # A regex is matched against whole module names: refuse when it does not match the new
        # names (peft would then inject nothing); it is the user's to rewrite.
        try:
            if not all(re.fullmatch(targets, sub.apply(m)) for m in modules):
                return None
        except re.error:
            return None
    for key in ("rank_pattern", "alpha_pattern"):
        pattern = config.get(key)
        if isinstance(pattern, dict) and any(
            k.startswith(sub.old) and "." in k for k in pattern if sub.old
        ):
            updates[key] = {
                (sub.apply(k) if sub.old and k.startswith(sub.old) and "." in k else k): v
                for k, v in pattern.items()
            }
    return updates
