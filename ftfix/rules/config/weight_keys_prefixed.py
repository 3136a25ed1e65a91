"""FTX409 weight-keys-prefixed."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import WRAPPER_PREFIXES, weight_keys
from ...analysis.context import Context, Need
from ...findings import Finding, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer

# transformers 4.52 moved the language model of vision-language models one level down; a
# checkpoint saved by a newer version is read by older loaders (and the reverse) only through
# their key-renaming maps, which vLLM and llama.cpp's converter do not all share.
_VLM_RENAMES = (
    ("model.language_model.", "language_model.model."),
    ("language_model.model.", "model.language_model."),
    ("model.visual.", "visual."),
    ("visual.", "model.visual."),
    ("lm_head.", "language_model.lm_head."),
    ("language_model.lm_head.", "lm_head."),
)


def _explain(keys: set[str], base_keys: set[str]) -> tuple[str, str] | None:
    """The one (old prefix, new prefix) map that turns every unmatched key into a base key."""
    extra = keys - base_keys
    candidates = [(p, "") for p in WRAPPER_PREFIXES] + list(_VLM_RENAMES)
    for old, new in candidates:
        if extra and all(k.startswith(old) and new + k[len(old) :] in base_keys for k in extra):
            return old, new
    return None


@register
class WeightKeysPrefixed(Fixer):
    """Weight keys carry a wrapper's prefix (or another version's names) the loaders do not map.

    ## What it checks
    The tensor names in the fine-tune's safetensors headers against the base's. Keys the base
    does not have are reported, with the one prefix map that explains all of them when there
    is one: `_orig_mod.` (saved from a `torch.compile`d model), `module.` (DataParallel / DDP),
    `base_model.model.` (a PEFT wrapper's state dict), or the vision-language rename of
    transformers 4.52 (`model.language_model.` against `language_model.model.`). Without the
    base's weights, keys that all start with a wrapper prefix are reported.

    ## Why is this bad?
    Loaders look tensors up by name. transformers reports the model's own keys as missing and
    initialises them randomly (the model "loads" and talks nonsense); vLLM stops with a
    KeyError; llama.cpp's converter refuses an unknown tensor name.

    ## Example
    `_orig_mod.model.layers.0.self_attn.q_proj.weight` where the base stores
    `model.layers.0.self_attn.q_proj.weight`.

    ## Fix
    None automatic yet. Re-save from the unwrapped model (`model._orig_mod`, `model.module`,
    `peft_model.merge_and_unload()`), or rename the keys with the map shown.

    ## Fix safety
    No fix is offered: renaming tensors in the shard headers is planned as an unsafe fix.
    """

    code = "FTX409"
    name = "weight-keys-prefixed"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when stored keys are not the base's and a prefix map explains it."""
        target = ctx.target
        if target.kind is not Kind.MERGED:
            return
        keys = set(weight_keys(target))
        if not keys:
            return
        base = ctx.base_or_none
        base_keys = set(weight_keys(base)) if base is not None else set()
        if base_keys:
            extra = sorted(keys - base_keys)
            if not extra:
                return
            mapping = _explain(keys, base_keys)
            if mapping is None and len(extra) < len(keys):
                return  # some new tensors beside the base's: another rule's business, not keys
        else:
            prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in keys)), None)
            if prefix is None:
                return
            extra, mapping = sorted(keys), (prefix, "")
        shown = ", ".join(extra[:2]) + (f" and {len(extra) - 2} more" if len(extra) > 2 else "")
        if mapping is not None:
            old, new = mapping
            how = f"; renaming the prefix {old!r} to {new!r} matches the base's keys"
        else:
            how = "; no single prefix map explains them"
        yield self.finding(
            f"{len(extra)} of {len(keys)} weight keys are not the model's ({shown}){how}; "
            "loaders would leave those weights randomly initialised or refuse the folder",
            path=None,
            data={
                "unmatched": len(extra),
                "examples": extra[:5],
                "prefix_map": list(mapping) if mapping else None,
            },
        )
