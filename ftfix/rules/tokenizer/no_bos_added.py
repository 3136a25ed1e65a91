"""FTX024 no-bos-added."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.vocab import bos_policy, compare, vocabulary
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import TOKENIZER_CONFIG, Checkpoint
from ...registry import register
from ..base import Fixer
from .double_bos import template_emits_bos


def restore_bos_edits(base: Checkpoint, target: Checkpoint) -> list[FileEdit] | None:
    """Edits that make `target` add BOS the way `base` does, or `None` when none can.

    With `tokenizer.json` on both sides the base's post-processor is copied; a folder without
    `tokenizer.json` gets the base's `add_bos_token`. The result is checked on a staged view.
    """
    if not compare(base, target).copy_allowed:
        return None
    base_policy, policy = bos_policy(base), bos_policy(target)
    if not base_policy.adds or base_policy.token != policy.token:
        return None
    edit: FileEdit | None
    if target.exists("tokenizer.json"):
        if not base.exists("tokenizer.json"):
            return None
        processor = (base.json("tokenizer.json") or {}).get("post_processor")
        edit = edit_json(target, "tokenizer.json", {"post_processor": processor})
    else:
        edit = edit_json(target, TOKENIZER_CONFIG, {"add_bos_token": True})
    if edit is None:
        return None
    if not bos_policy(target.staged({edit.path: edit.after})).adds:
        return None
    return [edit]


def _declared_bos(ckpt: Checkpoint) -> str | None:
    """Where the fine-tune says it has a BOS although nothing adds one, for the message."""
    policy = bos_policy(ckpt)
    if policy.token is not None:
        return f"bos_token is {policy.describe()}"
    config_id = ckpt.config.get("bos_token_id")
    if isinstance(config_id, int) and not isinstance(config_id, bool):
        token = vocabulary(ckpt).by_id.get(config_id)
        name = f" ({token!r})" if token is not None else ""
        return f"config.json declares bos_token_id {config_id}{name}"
    return None


def _bos_is_eos(ckpt: Checkpoint, bos: str | None) -> bool:
    """Whether the declared BOS is the eos token (`<|endoftext|>` as both, GPT-2 style)."""
    eos = ckpt.special_tokens().get("eos_token")
    if bos is not None:
        return bos == eos
    bos_id, eos_id = ckpt.config.get("bos_token_id"), ckpt.config.get("eos_token_id")
    return isinstance(bos_id, int) and (
        bos_id == eos_id or (isinstance(eos_id, list) and bos_id in eos_id)
    )


@register
class NoBosAdded(Fixer):
    """Prompts start without a BOS token although the model declares one.

    ## What it checks
    Whether `tokenizer(text)` adds a BOS token (the post-processor of `tokenizer.json`, which
    transformers 5 follows and which makes it ignore `add_bos_token`; or `add_bos_token` for
    folders without `tokenizer.json`) and whether the chat template starts with `bos_token`.
    When neither does: a warning if the base's tokenizer added BOS (the fine-tune lost it), and
    otherwise an info note when a `bos_token` or `config.json` `bos_token_id` is declared
    anyway (Qwen- and Phi-3-style tokenizers). A BOS that is the eos token (GPT-2 style:
    Phi-2, Pythia, SmolLM2 declare `<|endoftext|>` as both and never prepend it) is silent.

    ## Why is this bad?
    A model pre-trained with a BOS at position 0 and now prompted without one degrades. Scripts
    that assume a BOS and drop the first token of `tokenizer(text)` (MiniCPM-V's fine-tuning
    code does `tokenizer.encode(message)[1:]`) silently drop real text instead; if that token
    is an image start marker the markers no longer pair up and training crashes.

    ## Example
    A fine-tune re-saved a Llama-2 tokenizer whose `tokenizer.json` post-processor no longer
    adds `<s>`; its template has no `bos_token`: `tokenizer("hi").input_ids` lost the leading 1.

    ## Fix
    Restore the base's BOS behaviour when the base's tokenizer added BOS (its `tokenizer.json`
    post-processor, or `add_bos_token` set to true for folders without tokenizer.json).

    ## Fix safety
    Safe: it puts back the base's own BOS behaviour, for the same bos token, with the base's
    vocabulary (or an extension of it). The info case has no fix.
    """

    code = "FTX024"
    name = "no-bos-added"
    severity = Severity.INFO
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when neither the tokenizer nor the template gives prompts a BOS."""
        if not ctx.target.exists(TOKENIZER_CONFIG):
            return  # no special tokens to judge by; missing-tokenizer-file reports the gap
        target = ctx.target
        if target.chat_template() is None and ctx.base.chat_template() is not None:
            return  # the template, and with it maybe the BOS, is missing-chat-template's (FTX001)
        policy = bos_policy(target)
        if policy.adds is not False or template_emits_bos(ctx, target):
            return
        base_policy = bos_policy(ctx.base)
        where = "tokenizer.json" if target.exists("tokenizer.json") else TOKENIZER_CONFIG
        if base_policy.adds and base_policy.token == policy.token and policy.token is not None:
            edits = restore_bos_edits(ctx.base, target)
            yield self.finding(
                f"the tokenizer no longer adds BOS {policy.describe()} ({policy.source}) and "
                f"the chat template does not emit it; the base's {base_policy.source} adds it: "
                "prompts now start without the BOS the model was trained with",
                path=where,
                severity=Severity.WARNING,
                fix=(
                    Fix("Restore the base's BOS behaviour", Applicability.SAFE, tuple(edits))
                    if edits
                    else None
                ),
                data={"bos_token": policy.token, "base_adds_bos": True},
            )
            return
        declared = _declared_bos(target)
        if declared is None or _bos_is_eos(target, policy.token):
            return  # GPT-2 style (Phi-2, Pythia, SmolLM2): bos = eos, never prepended by design
        yield self.finding(
            f"the tokenizer adds no BOS ({policy.source}) and the chat template emits none, "
            f"yet {declared}: scripts that drop the first token of tokenizer(text) as a BOS "
            "drop real text",
            path=where,
            data={"bos_token": policy.token, "base_adds_bos": bool(base_policy.adds)},
        )
