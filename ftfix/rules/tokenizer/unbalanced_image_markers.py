"""FTX026 unbalanced-image-markers."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.vocab import bos_policy, encode
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import TOKENIZER_CONFIG, Checkpoint
from ...registry import register
from ..base import Fixer
from .image_marker_not_single_token import Marker, image_renders, processor_pairs, template_pairs
from .no_bos_added import restore_bos_edits


def _one_id(ckpt: Checkpoint, text: str) -> int | None:
    ids = encode(ckpt, text)
    return ids[0] if ids is not None and len(ids) == 1 else None


def _template_imbalance(ckpt: Checkpoint, base: Checkpoint) -> list[str]:
    """How the template's image renders fail to pair start and end markers."""
    problems = []
    for start, end in template_pairs(ckpt, base):
        start_id, end_id = _one_id(ckpt, start), _one_id(ckpt, end)
        for item in image_renders(ckpt):
            ids = encode(ckpt, item.with_images)
            if ids is not None and start_id is not None and end_id is not None:
                counts = (ids.count(start_id), ids.count(end_id))
            else:
                counts = (item.with_images.count(start), item.with_images.count(end))
            if counts[0] != counts[1]:
                problems.append(
                    f"probe {item.probe!r} renders {counts[0]} {start!r} but {counts[1]} {end!r}"
                )
                break
    return problems


def _placeholder(ckpt: Checkpoint, start: Marker, end: Marker) -> str:
    # MiniCPM-V's processor writes im_start + unk * query_num + im_end; two fillers suffice.
    fill = ckpt.special_tokens().get("unk_token") or ""
    for rel in (start.path,):
        value = (ckpt.json(rel) or {}).get("unk")
        if isinstance(value, str):
            fill = value
    return f"{start.text}{fill * 2}{end.text}"


def _stripping_breaks(ckpt: Checkpoint) -> list[str]:
    """Pairs that no longer balance once the first token of an encoded message is dropped."""
    problems = []
    for start, end in processor_pairs(ckpt):
        start_id, end_id = _one_id(ckpt, start.text), _one_id(ckpt, end.text)
        if start_id is None or end_id is None:
            continue
        ids = encode(ckpt, _placeholder(ckpt, start, end) + "\nhello", add_special_tokens=True)
        if ids is None:
            continue
        stripped = ids[1:]
        if stripped.count(start_id) != stripped.count(end_id):
            problems.append(
                f"{stripped.count(start_id)} {start.text!r} vs {stripped.count(end_id)} "
                f"{end.text!r} ({start.origin})"
            )
    return problems


@register
class UnbalancedImageMarkers(Fixer):
    """Image start and end markers do not pair up in what the model is fed.

    ## What it checks
    Two ways a start/end pair (`<image>`/`</image>`, `<slice>`/`</slice>`,
    `<|vision_start|>`/`<|vision_end|>`, ...) stops balancing. First, the chat template is
    rendered over probe conversations whose content lists hold `{"type": "image"}` parts and
    the rendered ids are counted for each pair it emits. Second, for pairs a processor config
    names (`im_start`/`im_end`, `slice_start`/`slice_end`), a message that starts with the
    processor's image placeholder is encoded and its first token dropped, as fine-tuning code
    that strips an assumed BOS does; this is reported when the base's tokenizer added BOS and
    the fine-tune's no longer does.

    ## Why is this bad?
    Vision-language models pair each start marker with an end marker to know where image
    features go (MiniCPM-V builds `image_bound` with `torch.hstack` of both positions). Unequal
    counts crash training and inference with "Sizes of tensors must match", or silently shift
    the image features. MiniCPM-V's fine-tuning code runs `tokenizer.encode(message)[1:]` to
    drop the BOS; when the tokenizer adds none, that removes the `<image>` opening the first
    message.

    ## Example
    A MiniCPM-V fine-tune re-saved its tokenizer without the BOS post-processor: the first
    user message, which starts with `<image>`, loses it after `[1:]`, and the first training
    step fails with "Sizes of tensors must match except in dimension 1".

    ## Fix
    Restore the base's BOS behaviour in the BOS-stripping case (its `tokenizer.json`
    post-processor, or `add_bos_token` for folders without tokenizer.json). A template that
    emits unbalanced markers is reported without a fix.

    ## Fix safety
    Safe: the restored BOS behaviour is the base's own, for the same bos token, with the base's
    vocabulary (or an extension of it).
    """

    code = "FTX026"
    name = "unbalanced-image-markers"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield findings for unpaired template markers and for the BOS-stripping crash."""
        if not ctx.target.exists(TOKENIZER_CONFIG):
            return  # no special tokens to judge by; missing-tokenizer-file reports the gap
        target = ctx.target
        problems = _template_imbalance(target, ctx.base)
        if problems:
            location = target.effective_template_location()
            yield self.finding(
                "image markers do not pair up in the chat template's image renders: "
                + "; ".join(problems),
                path=location.path if location else None,
                data={"problems": problems},
            )
        policy = bos_policy(target)
        if policy.adds is not False or not bos_policy(ctx.base).adds:
            return
        broken = _stripping_breaks(target)
        if not broken:
            return
        edits = restore_bos_edits(ctx.base, target)
        where = "tokenizer.json" if target.exists("tokenizer.json") else "tokenizer_config.json"
        yield self.finding(
            f"the tokenizer adds no BOS ({policy.source}) but the base's does, so code that "
            "drops the first token of tokenizer.encode(message) as BOS (MiniCPM-V's "
            "finetune/dataset.py) drops the image start marker of a message that opens with "
            f"an image: {'; '.join(broken)}; torch.hstack then fails with "
            "'Sizes of tensors must match'",
            path=edits[0].path if edits else where,
            fix=(
                Fix("Restore the base's BOS behaviour", Applicability.SAFE, tuple(edits))
                if edits
                else None
            ),
            data={"problems": broken},
        )
