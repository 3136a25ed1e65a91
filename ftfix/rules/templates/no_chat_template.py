"""FTX008 no-chat-template."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...analysis.stops import GENERATION_CONFIG, eos_ids, token_vocabulary
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import CHAT_TEMPLATE_FILE
from ...registry import register
from ..base import Fixer
from .missing_chat_template import has_tokenizer_files

# Names of tokens that open or close chat turns, across template families.
_CHAT_MARKER = re.compile(
    r"im_start|im_end|turn|eot|header_id|\|assistant\||\|user\||"
    r"\|system\||\|end\||INST\]|eoa|\|observation\|",
    re.IGNORECASE,
)


def chat_evidence(ctx: Context) -> str | None:
    """Why the fine-tune looks meant for chat, or `None` when nothing in its files says so.

    Chat markers the fine-tune's tokenizer has and the base's lacks, or a chat turn end among
    the ids generation stops on (generation_config.json, else config.json).
    """
    vocabulary = token_vocabulary(ctx.target)
    base_vocabulary = token_vocabulary(ctx.base)
    added = sorted(
        t for t in vocabulary if t not in base_vocabulary and _CHAT_MARKER.search(t) is not None
    )
    if added:
        return "it added the chat tokens " + ", ".join(added[:4])
    by_id = {i: t for t, i in vocabulary.items() if i is not None}
    for rel in (GENERATION_CONFIG, "config.json"):
        data = ctx.target.json(rel)
        if not data or "eos_token_id" not in data:
            continue
        stops = [by_id.get(i) for i in eos_ids(data.get("eos_token_id"))]
        chat = [t for t in stops if t is not None and _CHAT_MARKER.search(t) is not None]
        if chat:
            return f"{rel} stops on the end-of-turn token {chat[0]}"
        return None
    return None


@register
class NoChatTemplate(Fixer):
    """Neither the fine-tuned checkpoint nor its base model has a chat template.

    ## What it checks
    Every place a template can live (`chat_template.jinja`, `additional_chat_templates/`, the
    `chat_template` key of `tokenizer_config.json`, a processor's `chat_template.json`), in a
    fine-tune that ships its own tokenizer files, when the base has no template either: the
    usual result of fine-tuning a *base* (pre-trained, not instruction-tuned) model into a chat
    model and saving the tokenizer without setting `tokenizer.chat_template`.

    It is an error only with evidence that the model is meant for chat: chat markers the
    fine-tune added to the tokenizer (`<|im_start|>`, `<start_of_turn>`, ...), an end-of-turn
    token among the ids generation stops on, or a template given with `--template`. A
    summarizer or a base-model fine-tune prompted with raw text (T5, Pythia, Phi-2, Llama-3-8B
    base) needs no template: that case is reported as info.

    ## Why is this bad?
    `apply_chat_template()` raises "tokenizer.chat_template is not set", and OpenAI-style chat
    endpoints (vLLM, TGI) refuse the model or fall back to a format it never saw. The format the
    model was trained with lives only in the training script.

    ## Example
    Llama-2-7b-hf (no template) fine-tuned on ChatML conversations with TRL; the saved folder
    has no `chat_template.jinja` and no `chat_template` key.

    ## Fix
    With `--template FILE` (`template=` in the API), install the template in FILE, the one the
    model was trained with, in the layout the fine-tune uses (`chat_template.jinja` for
    transformers 5 folders, the `tokenizer_config.json` key for transformers 4 folders).
    Without it there is nothing to restore: the finding says so.

    ## Fix safety
    Safe: it only fills a gap, with the template the user named.
    """

    code = "FTX008"
    name = "no-chat-template"
    severity = Severity.ERROR
    other_severities = (Severity.INFO,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when no template exists on either side."""
        if ctx.base.chat_templates() or not has_tokenizer_files(ctx):
            return
        if ctx.target.template_locations():
            return
        if ctx.options.template is None:
            evidence = chat_evidence(ctx)
            path = CHAT_TEMPLATE_FILE if ctx.target.layout == "v5" else "tokenizer_config.json"
            if evidence is None:
                yield self.finding(
                    "no chat template, and the base model has none either: fine for a model "
                    "prompted with raw text; if it is meant for chat, pass --template FILE with "
                    "the template it was trained with",
                    path=path,
                    severity=Severity.INFO,
                )
                return
            yield self.finding(
                f"no chat template, and the base model has none either, but the model is meant "
                f"for chat ({evidence}); pass --template FILE with the template the model was "
                "trained with",
                path=path,
                data={"chat_evidence": evidence},
            )
            return
        edits = edit_chat_templates(ctx.target, {"default": ctx.options.template})
        yield self.finding(
            "no chat template, and the base model has none either; installing the --template "
            "template",
            path=edits[0].path if edits else CHAT_TEMPLATE_FILE,
            fix=Fix("Install the --template chat template", Applicability.SAFE, tuple(edits)),
        )
