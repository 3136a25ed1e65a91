"""FTX600 training-format-differs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_chat_templates
from ...analysis.render import TemplateRenderError
from ...analysis.training import Divergence, compare_sample
from ...findings import Applicability, Finding, Fix, Severity
from ...io.samples import TrainingSample, read_recorded
from ...io.tokenizer import TokenizerView
from ...registry import register
from ..base import Fixer

_CHECKPOINT_DIR = re.compile(r"checkpoint-\d+")
_WHERE = {"prompt start": "the start of the prompt", "turn": "a turn"}


def samples_of(ctx: Context) -> list[TrainingSample]:
    """`--trained-on` samples, else the rows `RepairCallback` recorded in the folder's `.ftfix/`."""
    if ctx.options.trained_on:
        return list(ctx.options.trained_on)
    root = ctx.target.root
    found = read_recorded(root)
    if not found and _CHECKPOINT_DIR.fullmatch(root.name):
        found = read_recorded(root.parent)  # recorded at train start in the trainer's root
    return found


@register
class TrainingFormatDiffers(Fixer):
    """The saved chat template renders the training conversations differently from training.

    ## What it checks
    Training rows as the trainer fed them (`ftfix check FT --trained-on FILE.jsonl`, or the
    rows `RepairCallback` recorded in the checkpoint's `.ftfix/` at train start): each row's
    conversation is rendered with the saved chat template, exactly as transformers, vLLM and
    Ollama's importers will, and compared with the text (or token ids, decoded and re-encoded
    with the checkpoint's tokenizer) training produced. The first difference is reported in
    words: the system prompt training had against the one the template adds, a space after the
    assistant header, a newline between turns.

    ## Why is this bad?
    The model learned the training format. LLaMA-Factory, ms-swift and axolotl format data with
    their own Python templates, not with the Jinja template they save; when the two differ the
    fine-tune is good in the trainer's chat and clearly worse once served. A difference in the
    system prompt or the generation prompt touches every request (an error); elsewhere in a
    turn it is a warning. Comparing with the base cannot see it: the saved template is often
    exactly the base's.

    ## Example
    LLaMA-Factory's `qwen` template (up to 0.9.2) trained a Qwen2.5 fine-tune with the default
    system prompt "You are a helpful assistant."; the saved Qwen2.5 template injects "You are
    Qwen, created by Alibaba Cloud. You are a helpful assistant." when a request has no system
    message.

    ## Fix
    When the saved template injects a default system prompt other than the one training had,
    an unsafe fix writes the training system prompt into the template in its place, and only
    if every training row then renders to exactly what training fed (the same token ids).
    Otherwise serve with the training format: pass the training system prompt in every request,
    or save a template that renders the training rows identically.

    ## Fix safety
    Unsafe: it changes what every request without a system message starts with, to what the
    model was trained on; which side is right (the trainer's format, or the format users
    send) is a decision.
    """

    code = "FTX600"
    name = "training-format-differs"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding for the first sample whose rendering differs from training."""
        samples = samples_of(ctx)
        if not samples:
            return
        source = ctx.options.template or ctx.target.chat_template()
        if source is None:
            return  # no template to compare: FTX001/FTX003's matter
        specials = ctx.target.special_tokens()
        tokenizer = ctx.target.tokenizer()
        differing: list[Divergence] = []
        for sample in samples:
            try:
                found = compare_sample(source, sample, special_tokens=specials, tokenizer=tokenizer)
            except TemplateRenderError:
                continue  # a broken template is FTX003's finding
            if found is not None:
                differing.append(found)
        if not differing:
            return
        first = next((d for d in differing if d.serious), differing[0])
        where = _WHERE.get(first.region, f"the {first.region}")
        count = f"{len(differing)} of {len(samples)} training samples"
        message = (
            f"{count} render differently with the saved chat template than training fed them; "
            f"first in {where} ({first.where}): {first.description}"
        )
        fix = _system_prompt_fix(ctx, source, first, samples, specials, tokenizer)
        yield self.finding(
            message,
            fix=fix,
            severity=Severity.ERROR if first.serious else Severity.WARNING,
            data={
                "samples": len(samples),
                "differing": len(differing),
                "region": first.region,
                "sample": first.where,
                "trained": first.trained,
                "served": first.served,
            },
        )


def _system_prompt_fix(
    ctx: Context,
    source: str,
    first: Divergence,
    samples: list[TrainingSample],
    specials: dict[str, str],
    tokenizer: TokenizerView | None,
) -> Fix | None:
    """The template with the training system prompt as its default, if it renders every row."""
    if first.region != "system prompt" or not first.trained or not first.served:
        return None
    if ctx.options.template is not None or first.served not in source:
        return None  # a template from --template is not the folder's to rewrite
    candidate = source.replace(first.served, first.trained)
    try:
        if any(
            compare_sample(candidate, s, special_tokens=specials, tokenizer=tokenizer) is not None
            for s in samples
        ):
            return None
    except TemplateRenderError:
        return None
    templates = dict(ctx.target.chat_templates())
    templates["default"] = candidate
    edits = tuple(edit_chat_templates(ctx.target, templates))
    if not edits:
        return None
    return Fix(
        f"Make {first.trained!r} the template's default system prompt, as in training",
        Applicability.UNSAFE,
        edits,
    )
