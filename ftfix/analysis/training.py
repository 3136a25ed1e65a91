"""What training fed the model against what the saved template serves it.

Trainers format their data with their own code (TRL through the tokenizer's template, but
LLaMA-Factory, ms-swift and axolotl through Python templates of their own), and the model learns
that format. `compare_sample` renders a training sample's conversation with the saved template,
exactly as serving will (`render.render`, sandboxed), and finds the first place where it differs
from what training fed, in words a user can act on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..io.samples import TrainingSample
from ..io.tokenizer import TokenizerView
from .render import TemplateRenderError, render

__all__ = ["Divergence", "Region", "compare_sample"]

Region = Literal["system prompt", "generation prompt", "prompt start", "turn", "token ids"]
SERIOUS: frozenset[str] = frozenset({"system prompt", "generation prompt"})

# Marker-like tokens (<|im_start|>, <s>, [INST]) and newlines: where an excerpt may start or end.
_BOUNDARY = re.compile(r"<\|?[\w.\-/:]*\|?>|\[/?[A-Z_]+\]|\n")
_ROLE_WORDS = frozenset({"", "system", "user", "human", "<s>", "### system:", "### user:"})
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")
_CONTEXT = 24


@dataclass(frozen=True)
class Divergence:
    """The first place a sample's training text differs from the saved template's rendering.

    Args:
        where: the sample (`file:line`).
        region: the part of the prompt it touches.
        trained: the differing text of training (`""` when training had nothing there).
        served: the differing text the saved template renders.
        before: the text both share just before the difference.
        description: the difference in words.
    """

    where: str
    region: Region
    trained: str
    served: str
    before: str
    description: str

    @property
    def serious(self) -> bool:
        """Whether it touches the system prompt or the generation prompt (every request)."""
        return self.region in SERIOUS


def _show(text: str) -> str:
    return repr(text) if text else "nothing"


def _tokens(text: str) -> list[str]:
    return _WORDS.findall(text)


def _first_change(trained: str, served: str) -> tuple[int, int, int, int] | None:
    """Character spans (i1, i2, j1, j2) of the first word-level change, or `None` if equal."""
    if trained == served:
        return None
    a, b = _tokens(trained), _tokens(served)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    opcodes = matcher.get_opcodes()
    first = next(k for k, op in enumerate(opcodes) if op[0] != "equal")
    _, i1, i2, j1, j2 = opcodes[first]
    # A change split by one short shared word ("a" in two rewritten sentences) is one change.
    for tag2, k1, k2, _, l2 in opcodes[first + 1 :]:
        if tag2 == "equal" and k2 - k1 <= 2:
            continue
        if tag2 != "equal":
            i2, j2 = k2, l2
            continue
        break
    pos = [0]
    for tok in a:
        pos.append(pos[-1] + len(tok))
    qos = [0]
    for tok in b:
        qos.append(qos[-1] + len(tok))
    c1, c2, d1, d2 = pos[i1], pos[i2], qos[j1], qos[j2]
    # Whitespace runs are one word: "\n" against "\n " differs by the space alone.
    while c1 < c2 and d1 < d2 and trained[c1] == served[d1]:
        c1, d1 = c1 + 1, d1 + 1
    while c2 > c1 and d2 > d1 and trained[c2 - 1] == served[d2 - 1]:
        c2, d2 = c2 - 1, d2 - 1
    return c1, c2, d1, d2


def _preamble(messages: Sequence[Mapping[str, Any]], text: str, view: Callable[[str], str]) -> str:
    """The system prompt as `text` writes it: before the first turn, markers and roles removed."""
    end = _first_turn_start(messages, text, view)
    head = _BOUNDARY.sub("\n", text[: end if end is not None else 0])
    lines = [ln for ln in head.split("\n") if ln.strip().lower() not in _ROLE_WORDS]
    return "\n".join(lines).strip()


def _same(text: str) -> str:
    return text


def _generation_spans(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    served: str,
    specials: Mapping[str, str],
    view: Callable[[str], str],
) -> list[tuple[int, int]]:
    """Where the generation prompt sits in `served`, before each assistant message."""
    spans = []
    for k, message in enumerate(messages):
        if k == 0 or message.get("role") != "assistant":
            continue
        try:
            without = view(render(source, messages[:k], special_tokens=specials))
            with_prompt = view(
                render(source, messages[:k], add_generation_prompt=True, special_tokens=specials)
            )
        except TemplateRenderError:
            continue
        if with_prompt.startswith(without) and served.startswith(with_prompt):
            spans.append((len(without), len(with_prompt)))
    return spans


def _first_turn_start(
    messages: Sequence[Mapping[str, Any]], text: str, view: Callable[[str], str] = _same
) -> int | None:
    """Where the first non-system message's content starts in `text`."""
    for message in messages:
        if message.get("role") == "system":
            continue
        content = message.get("content")
        if isinstance(content, str) and content:
            index = text.find(view(content).strip())
            return index if index >= 0 else None
        return None
    return None


def _system_prompt(messages: Sequence[Mapping[str, Any]]) -> str | None:
    first = messages[0] if messages else {}
    content = first.get("content")
    return content if first.get("role") == "system" and isinstance(content, str) else None


def _whitespace_words(trained: str, served: str, before: str) -> str | None:
    """Words for a difference in whitespace only ("writes 'Assistant: ' with a space")."""
    if (trained + served).strip():
        return None
    line = before.rstrip("\n")
    anchor = before[line.rfind("\n") + 1 :][-_CONTEXT:]  # the last line, its newline kept
    name = {" ": "a space", "\n": "a newline", "\t": "a tab"}
    extra, side = (trained, "training") if trained else (served, "the saved template")
    what = name.get(extra, repr(extra))
    other = "the saved template does not" if side == "training" else "training did not"
    return f"{side} writes {anchor + extra!r} with {what} after {anchor!r}; {other}"


def _describe(region: Region, trained: str, served: str, before: str) -> str:
    words = _whitespace_words(trained, served, before)
    if words is not None:
        return words
    if region == "system prompt":
        if not trained.strip():
            return f"training had no system prompt; the saved template adds {served!r}"
        if not served.strip():
            return f"training had the system prompt {trained!r}; the saved template renders none"
        return f"training had the system prompt {trained!r}; the saved template renders {served!r}"
    after = before[-_CONTEXT:]
    return (
        f"after {after!r}, training had {_show(trained)}; "
        f"the saved template renders {_show(served)}"
    )


def _trim_end(trained: str, served: str, specials: Mapping[str, str]) -> tuple[str, str]:
    """Drop an ending only one side has when it is end/padding tokens and whitespace.

    Trainers append eos (TRL when the text lacks it) and strip or pad the end; serving never
    renders the last answer's end, the model writes it.
    """
    shorter, longer = sorted((trained, served), key=len)
    if not longer.startswith(shorter):
        return trained, served
    rest = longer[len(shorter) :]
    for key in ("eos_token", "pad_token"):
        token = specials.get(key)
        if token:
            rest = rest.replace(token, "")
    return (shorter, shorter) if not rest.strip() else (trained, served)


def _ids_match(
    trained: Sequence[int],
    served: Sequence[int],
    tokenizer: TokenizerView,
    specials: Mapping[str, str],
) -> bool:
    """Equal ids, or one a prefix of the other followed only by eos / padding ids."""
    shorter, longer = sorted((list(trained), list(served)), key=len)
    if longer[: len(shorter)] != shorter:
        return False
    ends = {tokenizer.token_to_id(specials[k]) for k in ("eos_token", "pad_token") if k in specials}
    return all(i in ends for i in longer[len(shorter) :])


def compare_sample(
    source: str,
    sample: TrainingSample,
    *,
    special_tokens: Mapping[str, str],
    tokenizer: TokenizerView | None,
) -> Divergence | None:
    """The first difference between what training fed and what `source` renders, or `None`.

    Raises:
        `TemplateRenderError`: the saved template cannot render the sample's conversation.
    """
    messages = sample.messages
    served = render(source, messages, special_tokens=special_tokens)
    view: Callable[[str], str] = _same
    if sample.input_ids is not None and tokenizer is not None:
        full = tokenizer.full
        ids = list(sample.input_ids)
        served_ids = list(full.encode(served, add_special_tokens=False).ids)
        prefix = list((tokenizer.special_frame() or ((), ()))[0])
        if prefix and ids[: len(prefix)] == prefix and served_ids[: len(prefix)] != prefix:
            ids = ids[len(prefix) :]  # the tokenizer's BOS on top: FTX023's matter
        if _ids_match(ids, served_ids, tokenizer, special_tokens):
            return None

        def view(text: str) -> str:  # both sides as the tokenizer decodes them
            encoded = full.encode(text, add_special_tokens=False).ids
            return str(full.decode(encoded, skip_special_tokens=False))

        text = str(full.decode(ids, skip_special_tokens=False))
        served = str(full.decode(served_ids, skip_special_tokens=False))
        if text == served:
            k = next(
                (i for i, (x, y) in enumerate(zip(ids, served_ids, strict=False)) if x != y),
                min(len(ids), len(served_ids)),
            )
            return Divergence(
                sample.where,
                "token ids",
                str(ids[k : k + 4]),
                str(served_ids[k : k + 4]),
                "",
                f"the text is the same but training split it into other token ids from token "
                f"{k} ({ids[k : k + 4]} against the tokenizer's {served_ids[k : k + 4]}): it "
                "tokenized the parts separately or with another tokenizer",
            )
    elif sample.text is not None:
        text = sample.text
    else:
        return None
    # A leading BOS only one side has is FTX023's (double BOS), not a template difference.
    bos = special_tokens.get("bos_token")
    if bos and text.startswith(bos) != served.startswith(bos):
        text = text.removeprefix(bos)
        served = served.removeprefix(bos)
    trained, shown = _trim_end(text, served, special_tokens)
    change = _first_change(trained, shown)
    if change is None:
        return None
    i1, i2, j1, j2 = change
    region: Region = "turn"
    for start, end in _generation_spans(source, messages, shown, special_tokens, view):
        if start <= j1 <= end:
            region = "generation prompt"
            break
    else:
        first_turn = _first_turn_start(messages, shown, view)
        if first_turn is not None and j1 < first_turn:
            changed = _BOUNDARY.sub("", trained[i1:i2] + shown[j1:j2])
            system = _system_prompt(messages)
            inside = system is not None and j1 <= shown.find(view(system)) + len(view(system))
            if inside or (system is None and len(re.findall(r"\w", changed)) >= 3):
                region = "system prompt"
            else:
                region = "prompt start"
    before = shown[:j1]
    span_t, span_s = trained[i1:i2], shown[j1:j2]
    if region == "system prompt":
        said = _preamble(messages, trained, view), _preamble(messages, shown, view)
        if said[0] != said[1]:
            span_t, span_s = said
    return Divergence(
        sample.where,
        region,
        span_t,
        span_s,
        before[-_CONTEXT:],
        _describe(region, span_t, span_s, before),
    )
