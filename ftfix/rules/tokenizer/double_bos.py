"""FTX023 double-bos."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.vocab import bos_policy, encode
from ...findings import Finding, Severity
from ...io.checkpoint import TOKENIZER_CONFIG, Checkpoint
from ...registry import register
from ..base import Fixer, Need


def rendered_prompt(ctx: Context, ckpt: Checkpoint) -> str | None:
    """The first probe conversation rendered with the generation prompt by `ckpt`'s template."""
    source = ckpt.chat_template()
    if source is None:
        return None
    rendered = ctx.renders(source, ckpt.special_tokens()).by_name()
    for probe in rendered.values():
        if isinstance(probe.with_prompt, str):
            return probe.with_prompt
    return None


def template_emits_bos(ctx: Context, ckpt: Checkpoint) -> bool | None:
    """Whether `ckpt`'s template starts conversations with its bos token (`None`: no template)."""
    bos = ckpt.special_tokens().get("bos_token")
    text = rendered_prompt(ctx, ckpt)
    if text is None:
        return None
    return bos is not None and text.startswith(bos)


def _leading_bos_ids(ckpt: Checkpoint, text: str) -> list[int] | None:
    """The first ids of `tokenizer(text)`; without tokenizer.json, the BOS ids it starts with."""
    tok = ckpt.tokenizer()
    leading = tok.leading_ids(text, add_special_tokens=True) if tok is not None else None
    if leading is not None and len(leading) >= 2:  # decided by the tables: nothing to build
        return leading
    ids = encode(ckpt, text, add_special_tokens=True)
    if ids is not None:
        return ids
    policy = bos_policy(ckpt)
    if policy.token is None or policy.token_id is None:
        return None
    count, rest = 0, text
    while rest.startswith(policy.token):
        count += 1
        rest = rest[len(policy.token) :]
    return [policy.token_id] * (count + 1)


def double_bos_ids(ctx: Context, ckpt: Checkpoint) -> list[int] | None:
    """The leading ids of the re-tokenized rendered prompt when they hold two BOS, else `None`."""
    policy = bos_policy(ckpt)
    if not policy.adds or policy.token_id is None or not template_emits_bos(ctx, ckpt):
        return None
    text = rendered_prompt(ctx, ckpt)
    ids = None if text is None else _leading_bos_ids(ckpt, text)
    if ids is None or ids[:2] != [policy.token_id, policy.token_id]:
        return None
    return ids


@register
class DoubleBos(Fixer):
    """Re-tokenizing the rendered chat gives two BOS tokens.

    ## What it checks
    Whether the tokenizer adds a BOS token when it encodes text (the post-processor of
    `tokenizer.json`, which transformers 5 follows; or `add_bos_token` in
    `tokenizer_config.json` for folders without `tokenizer.json`) while the chat template also
    starts with `bos_token`. The first probe conversation is rendered and encoded with special
    tokens, and the leading ids are shown.

    ## Why is this bad?
    `apply_chat_template(..., tokenize=True)` is fine (it encodes with
    `add_special_tokens=False`), but every script or server that renders the prompt to text
    and then calls `tokenizer(prompt)` (a training collator, `vllm.LLM.generate(prompt)`, many
    evaluation harnesses) feeds the model `<bos><bos>...`, a sequence it never saw in
    pre-training. Outputs get subtly worse, and training on it teaches the model the wrong
    start.

    ## Example
    A Llama-3 fine-tune whose `tokenizer.json` adds `<|begin_of_text|>` and whose template
    starts with `{{ bos_token }}`: `tokenizer(prompt).input_ids` starts `[128000, 128000, ...]`.

    ## Fix
    None automatic. Encode rendered prompts with `add_special_tokens=False`, or tokenize
    through `apply_chat_template(..., tokenize=True)`; base and fine-tune files are usually
    like this on purpose.

    ## Fix safety
    None: removing the BOS from the template or the tokenizer changes what other consumers
    feed the model, so no fix is offered.
    """

    code = "FTX023"
    name = "double-bos"
    severity = Severity.WARNING
    needs = frozenset({Need.TOKENIZER})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when the re-tokenized rendered prompt starts with two BOS ids."""
        if not ctx.target.exists(TOKENIZER_CONFIG):
            return  # no special tokens to judge by; missing-tokenizer-file reports the gap
        ids = double_bos_ids(ctx, ctx.target)
        if ids is None:
            return
        policy = bos_policy(ctx.target)
        shown = ", ".join(map(str, ids[:6])) + ", ..."  # the rendered chat goes on
        inherited = ctx.has_base and double_bos_ids(ctx, ctx.base) is not None
        location = ctx.target.effective_template_location()
        yield self.finding(
            f"tokenizer(rendered chat) starts with two BOS: [{shown}]; {policy.source} adds "
            f"{policy.describe()} and the chat template emits it too"
            + ("; the base does the same" if inherited else ""),
            path=location.path if location else None,
            data={
                "input_ids": ids[:16],
                "bos_token": policy.token,
                "bos_token_id": policy.token_id,
            },
        )
