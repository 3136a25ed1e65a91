"""FTX025 image-marker-not-single-token, and the multimodal markers FTX026 also reads."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...analysis.context import Context
from ...analysis.render import TemplateRenderError, render
from ...analysis.vocab import encode, token_strings
from ...findings import Finding, Severity
from ...io.checkpoint import Checkpoint
from ...registry import register
from ..base import Fixer, Need
from ..templates.missing_chat_template import has_tokenizer_files
from .missing_tokenizer_file import PROCESSOR_CONFIGS

# Start/end markers that wrap an image (or video, audio) in the families ftfix knows.
KNOWN_PAIRS: tuple[tuple[str, str], ...] = (
    ("<image>", "</image>"),  # MiniCPM-V
    ("<slice>", "</slice>"),  # MiniCPM-V image slices
    ("<|vision_start|>", "<|vision_end|>"),  # Qwen2-VL / Qwen2.5-VL
    ("<img>", "</img>"),  # InternVL, Qwen-VL
    ("<|image_start|>", "<|image_end|>"),  # Llama 4
    ("<start_of_image>", "<end_of_image>"),  # Gemma 3
    ("<|begin_of_image|>", "<|end_of_image|>"),  # GLM-4V
    ("<|vision_bos|>", "<|vision_eos|>"),
    ("<|audio_bos|>", "<|audio_eos|>"),  # Qwen2-Audio
    ("<|audio_start|>", "<|audio_end|>"),
    ("<|media_start|>", "<|media_end|>"),  # Kimi-VL
    ("<|media_begin|>", "<|media_end|>"),
    ("<|IMAGE_START|>", "<|IMAGE_END|>"),
    ("<video>", "</video>"),
)
_MARKER = re.compile(r"<\|[^<>|\s]{1,40}\|>|</?[A-Za-z][\w.:-]{0,40}>")
# processor config keys whose partner key closes the pair: im_start/im_end, slice_start_token/
# slice_end_token, audio_bos_token/audio_eos_token, ...
_OPENERS = (("_start", "_end"), ("_bos", "_eos"), ("_begin", "_end"))
_HELLO = {"type": "text", "text": "hello"}
_IMAGE = {"type": "image"}

# Conversations with image parts, as processors and VLM chat templates take them.
IMAGE_PROBES: tuple[tuple[str, tuple[Mapping[str, Any], ...]], ...] = (
    ("image-then-text", ({"role": "user", "content": [_IMAGE, _HELLO]},)),
    ("text-then-image", ({"role": "user", "content": [_HELLO, _IMAGE]},)),
    (
        "two-images",
        ({"role": "user", "content": [_IMAGE, _IMAGE, {"type": "text", "text": "compare"}]},),
    ),
    (
        "multi-turn-image",
        (
            {"role": "user", "content": [_IMAGE, _HELLO]},
            {"role": "assistant", "content": [{"type": "text", "text": "hi there"}]},
            {"role": "user", "content": [{"type": "text", "text": "how are you"}]},
        ),
    ),
)


@dataclass(frozen=True)
class Marker:
    """A multimodal marker and where it comes from (for messages)."""

    text: str
    origin: str
    path: str


@dataclass(frozen=True)
class ImageRender:
    """One image probe rendered by a template, and the same conversation without its images."""

    probe: str
    with_images: str
    without_images: str


def _text_only(messages: tuple[Mapping[str, Any], ...]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [part for part in content if part.get("type") == "text"]
        out.append({**message, "content": content})
    return out


@lru_cache(maxsize=32)
def _image_renders(source: str, tokens: tuple[tuple[str, str], ...]) -> tuple[ImageRender, ...]:
    special = dict(tokens)
    found = []
    for name, messages in IMAGE_PROBES:
        try:
            with_images = render(
                source, list(messages), add_generation_prompt=True, special_tokens=special
            )
            without = render(
                source, _text_only(messages), add_generation_prompt=True, special_tokens=special
            )
        except TemplateRenderError:
            continue  # a text-only template that refuses content lists
        found.append(ImageRender(name, with_images, without))
    return tuple(found)


def image_renders(ckpt: Checkpoint) -> tuple[ImageRender, ...]:
    """The image probes rendered by `ckpt`'s template (empty without a template)."""
    source = ckpt.chat_template()
    if source is None:
        return ()
    return _image_renders(source, tuple(sorted(ckpt.special_tokens().items())))


def _processor_values(ckpt: Checkpoint) -> Iterator[tuple[str, str, str]]:
    """(file, key, value) for every string in the processor configs (one nesting level)."""
    for rel in PROCESSOR_CONFIGS:
        data = ckpt.json(rel) or {}
        for key, value in data.items():
            if isinstance(value, str):
                yield rel, key, value
            elif isinstance(value, dict):
                for inner, item in value.items():
                    if isinstance(item, str):
                        yield rel, f"{key}.{inner}", item


def _is_marker(value: str) -> bool:
    return _MARKER.fullmatch(value) is not None


def processor_pairs(ckpt: Checkpoint) -> list[tuple[Marker, Marker]]:
    """Start/end markers a processor config names with partner keys (`im_start`/`im_end`)."""
    values = {(rel, key): value for rel, key, value in _processor_values(ckpt)}
    pairs = []
    for (rel, key), value in values.items():
        for opener, closer in _OPENERS:
            stem, found, tail = key.rpartition(opener)
            if not found or tail not in ("", "_token", "_id"):
                continue
            partner = values.get((rel, f"{stem}{closer}{tail}"))
            if partner and _is_marker(value) and _is_marker(partner):
                pairs.append(
                    (
                        Marker(value, f"{rel} {key}", rel),
                        Marker(partner, f"{rel} {stem}{closer}{tail}", rel),
                    )
                )
    return pairs


def markers(ckpt: Checkpoint) -> dict[str, Marker]:
    """Every image/media marker the processor configs name or the template emits for images."""
    found: dict[str, Marker] = {}
    for rel, key, value in _processor_values(ckpt):
        if _is_marker(value):
            found.setdefault(value, Marker(value, f"{rel} {key}", rel))
    location = ckpt.effective_template_location()
    where = location.path if location else "chat template"
    for item in image_renders(ckpt):
        plain = set(_MARKER.findall(item.without_images))
        for text in _MARKER.findall(item.with_images):
            if text not in plain:
                found.setdefault(
                    text, Marker(text, f"the chat template (probe {item.probe!r})", where)
                )
    return found


def _emitted_for_images(ckpt: Checkpoint) -> set[str]:
    emitted: set[str] = set()
    for item in image_renders(ckpt):
        plain = set(_MARKER.findall(item.without_images))
        emitted.update(t for t in _MARKER.findall(item.with_images) if t not in plain)
    return emitted


def template_pairs(ckpt: Checkpoint, reference: Checkpoint | None = None) -> list[tuple[str, str]]:
    """Known start/end pairs the template emits for images.

    A pair counts when both halves appear in `ckpt`'s image renders, or in `reference`'s (the
    base's): a template that prints only `<image>` uses it as a placeholder (LLaVA), not as the
    start of a pair, unless its base printed the end marker too.
    """
    emitted = _emitted_for_images(ckpt)
    known = _emitted_for_images(reference) if reference is not None else set()
    return [
        (start, end)
        for start, end in KNOWN_PAIRS
        if (start in emitted or end in emitted)
        and ({start, end} <= emitted or {start, end} <= known)
    ]


def split_description(ckpt: Checkpoint, text: str) -> str | None:
    """`encodes as ['<', 'image', '>'] [12, 40, 13]`, or `None` when it is one token/unknown."""
    ids = encode(ckpt, text)
    if ids is None or len(ids) == 1:
        return None
    pieces = token_strings(ckpt, text) or []
    return f"encodes as {pieces} {ids}"


@register
class ImageMarkerNotSingleToken(Fixer):
    """An image marker used by the template or the processor is not a single token.

    ## What it checks
    Multimodal markers named in `preprocessor_config.json`, `processor_config.json` and
    `video_preprocessor_config.json` (`im_start`, `image_token`, `audio_bos_token`, ...) and
    those the chat template prints only when a message holds an image (it is rendered over
    probe conversations whose content lists contain `{"type": "image"}` parts) are encoded with
    the fine-tune's tokenizer; each must be exactly one token.

    ## Why is this bad?
    Vision-language models find where image features go by looking for the marker's id in
    `input_ids` (`<image>`, `<|image_pad|>`, `<|vision_start|>`...). A marker that splits into
    pieces is never found: the processor raises, the image features are dropped, or the model
    reads `<`, `image`, `>` as text.

    ## Example
    A fine-tune re-created its tokenizer from the base language model and lost the added token
    `<image>`; `preprocessor_config.json` still says `"im_start": "<image>"`, which now encodes
    as `['<', 'image', '>']`.

    ## Fix
    None automatic. Add the marker as a special token in the tokenizer the model was trained
    with (`tokenizer.add_special_tokens(...)`), with a trained embedding row, or copy the base's
    tokenizer if the fine-tune never meant to change it.

    ## Fix safety
    None: adding a token changes the vocabulary and needs a trained embedding, so no fix is
    offered.
    """

    code = "FTX025"
    name = "image-marker-not-single-token"
    severity = Severity.ERROR
    needs = frozenset({Need.TOKENIZER})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per file naming markers that split into several tokens."""
        if not has_tokenizer_files(ctx):
            return
        by_path: dict[str, list[str]] = {}
        for marker in markers(ctx.target).values():
            split = split_description(ctx.target, marker.text)
            if split is None:
                continue
            text = f"marker {marker.text!r} ({marker.origin}) is not one token: it {split}"
            base_ids = encode(ctx.base, marker.text) if ctx.has_base else None
            if base_ids is not None and len(base_ids) == 1:
                text += f"; the base encodes it as one token ({base_ids[0]})"
            by_path.setdefault(marker.path, []).append(text)
        for path, texts in by_path.items():
            yield self.finding("; ".join(texts), path=path, data={"markers": len(texts)})
