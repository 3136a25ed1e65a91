"""Find what a chat template prints around an assistant answer: its header and its turn end."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .render import TemplateRenderError, render

__all__ = ["SENTINELS", "AssistantFrame", "assistant_frame", "leading_markers"]

# Two different answers made of plain lower-case letters: templates that trim, escape or
# capitalise nothing inside a word leave them intact, and no real template prints them.
SENTINELS = ("zqxalphaanswer", "zqxbravoanswer")
_USER = {"role": "user", "content": "hello"}


@dataclass(frozen=True)
class AssistantFrame:
    r"""What a template prints around an assistant message that follows a user turn.

    Args:
        header (`str`): text between the end of the user turn and the answer, e.g.
            `<|start_header_id|>assistant<|end_header_id|>\n\n` or `<|im_start|>assistant\n`.
        trailer (`str`): text after the answer when the assistant message is last, e.g.
            `<|eot_id|>` or `<|im_end|>\n`.
        generation_prompt (`str` or `None`): what `add_generation_prompt=True` appends after the
            user turn (`""` when the flag is ignored, `None` when it rewrites the render).
    """

    header: str
    trailer: str
    generation_prompt: str | None


def _render(
    source: str, messages: list[dict[str, str]], tokens: Mapping[str, str], flag: bool
) -> str:
    return render(source, messages, add_generation_prompt=flag, special_tokens=tokens)


def assistant_frame(source: str, special_tokens: Mapping[str, str]) -> AssistantFrame | None:
    """Derive the assistant header and trailer by rendering two different sentinel answers.

    Returns `None` when the template cannot render a user + assistant conversation, drops or
    alters the answer, or frames the two answers differently (content-dependent templates).
    """
    try:
        user_only = _render(source, [_USER], special_tokens, False)
        prompted = _render(source, [_USER], special_tokens, True)
        frames = []
        for sentinel in SENTINELS:
            text = _render(
                source, [_USER, {"role": "assistant", "content": sentinel}], special_tokens, False
            )
            if text.count(sentinel) != 1 or not text.startswith(user_only):
                return None
            start = text.index(sentinel)
            frames.append((text[len(user_only) : start], text[start + len(sentinel) :]))
    except TemplateRenderError:
        return None
    if frames[0] != frames[1]:
        return None
    header, trailer = frames[0]
    generation_prompt = prompted[len(user_only) :] if prompted.startswith(user_only) else None
    return AssistantFrame(header, trailer, generation_prompt)


def leading_markers(text: str, vocabulary: Collection[str]) -> list[str]:
    r"""The special tokens `text` starts with, longest match first, skipping whitespace between.

    Example:
        >>> leading_markers("<|im_end|>\n", {"<|im_end|>", "<|im_start|>"})
        ['<|im_end|>']
    """
    # Longest prefix first, by looking prefixes up (a vocabulary may hold a million added
    # tokens; trailers are a few characters). After lstrip a prefix is never blank.
    tokens = vocabulary if isinstance(vocabulary, (set, frozenset, dict)) else set(vocabulary)
    longest = max(map(len, tokens), default=0)
    found: list[str] = []
    rest = text
    while True:
        rest = rest.lstrip()
        match = next(
            (rest[:k] for k in range(min(longest, len(rest)), 0, -1) if rest[:k] in tokens), None
        )
        if match is None:
            return found
        found.append(match)
        rest = rest[len(match) :]
