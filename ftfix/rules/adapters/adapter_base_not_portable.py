"""FTX310 adapter-base-not-portable."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind, is_hub_id
from ...registry import register
from ..base import Fixer

ADAPTER_CONFIG = "adapter_config.json"
KEY = "base_model_name_or_path"
_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")


def _why_not_portable(value: object) -> str | None:
    """Why `value` names no base another machine can load, or `None` when it can."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is null: nothing tells a loader which base to apply the adapter to"
    if not isinstance(value, str):
        return f"is {value!r}, not a Hub id"
    text = value.strip()
    if text.startswith(("/", "~")) or _WINDOWS_ABSOLUTE.match(text):
        return f"is {text!r}, a path on the machine it was trained on"
    parts = text.replace("\\", "/").split("/")
    hub_like = (len(parts) == 1 and re.fullmatch(r"[\w.-]+", text)) or is_hub_id(text)
    if not hub_like or any(p in (".", "..") for p in parts):
        return f"is {text!r}, a relative path, not a Hub id"
    return None


@register
class AdapterBaseNotPortable(Fixer):
    """The adapter does not name its base by a Hub id, so it cannot be loaded elsewhere.

    ## What it checks
    `base_model_name_or_path` in a PEFT adapter's `adapter_config.json`: reported when it is
    null or empty, an absolute path (`/root/autodl-tmp/...`, a Windows drive path), or a relative
    path that is not a Hub id (`./llama`, `../../base`, `output/merged/step-1`).

    ## Why is this bad?
    `AutoPeftModelForCausalLM.from_pretrained(ADAPTER)`, vLLM's and TGI's LoRA loading, and
    ftfix itself read this field to find the base. A path from the training machine does not
    exist anywhere else and `null` names nothing: on every other machine the adapter cannot be
    loaded without being told, by hand, which base it belongs to.

    ## Example
    An adapter trained on AutoDL: `"base_model_name_or_path": "/root/autodl-tmp/Qwen2.5-7B"`.

    ## Fix
    When the base is given as a Hub id (`ftfix repair meta-llama/Llama-3.2-1B ADAPTER`), that id
    is written into `adapter_config.json`; otherwise edit the field to the base's Hub id.

    ## Fix safety
    Safe only with a Hub id the user gave: the user said which base it is. Without one, no fix
    is offered (ftfix cannot know which model sat at that path).
    """

    code = "FTX310"
    name = "adapter-base-not-portable"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the adapter's base is not a Hub id."""
        target = ctx.target
        if target.kind is not Kind.ADAPTER:
            return
        config = target.json(ADAPTER_CONFIG)
        if config is None:
            return
        value = config.get(KEY)
        why = _why_not_portable(value)
        if why is None:
            return
        given = ctx.options.base_id
        fix = None
        if given is not None:
            edit = edit_json(target, ADAPTER_CONFIG, {KEY: given})
            if edit is not None:
                fix = Fix(f"Set {KEY} to {given}", Applicability.SAFE, (edit,))
        yield self.finding(
            f"{KEY} {why}; AutoPeftModelForCausalLM, vLLM and TGI cannot load the adapter on "
            "another machine"
            + ("" if fix else "; pass the base as a Hub id to `ftfix repair` to write it"),
            path=ADAPTER_CONFIG,
            fix=fix,
            data={KEY: value, "base_id": given},
        )
