"""Judge chat templates by rendering: classify them, find their markers, splice a generation prompt.

The template rules (FTX001-FTX008) share this module. Everything here renders templates through
`ftfix.analysis.probes` / `ftfix.analysis.render` (transformers' sandbox, under time and size
limits) and never writes anything:

* `reference()` picks what a fine-tune's template is judged against: the template the user gave
  with `--template` (the one the model was trained with), else the base's templates.
* `breakage()` says whether a template is broken: it does not compile, tries to escape the
  sandbox, runs out of time or output, or fails on every probe conversation.
* `compare()` classifies a template against the reference: same behaviour, generation prompt
  lost (identical except what `add_generation_prompt` appends), or a different format.
* `splice_generation_prompt()` gives a template that ignores `add_generation_prompt` a
  generation-prompt branch derived by rendering, and proves it by rendering again.
* `template_markers()` finds the special-looking markers a template emits, for the tokenizer to
  encode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .probes import TemplateRenders, first_difference, render_all
from .render import TemplateRenderError, render
from .turns import SENTINELS, assistant_frame

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "Breakage",
    "Comparison",
    "Header",
    "Reference",
    "RenderFn",
    "Splice",
    "Verdict",
    "assistant_header",
    "breakage",
    "compare",
    "marker_style",
    "markers_in",
    "reference",
    "reference_renders",
    "reference_tokens",
    "splice_generation_prompt",
    "template_markers",
]

RenderFn = Callable[[str, Mapping[str, str]], TemplateRenders]

# Failures that say the template misbehaves, as opposed to refusing one conversation shape
# ("raised": e.g. "system role not supported") or tripping over one (an undefined variable).
_FATAL_KINDS = ("security", "timeout", "too-large")


# --------------------------------------------------------------------------- reference
@dataclass(frozen=True)
class Reference:
    """The templates a fine-tune's templates are judged against.

    Args:
        templates (`Mapping[str, str]`): name -> source; `default` is the unnamed template.
        from_user (`bool`): the user gave it with `--template` / `template=`, else it is the
            base's.
    """

    templates: Mapping[str, str]
    from_user: bool = False

    @property
    def default(self) -> str | None:
        """The default template, or `None` when the reference only has named ones."""
        return self.templates.get("default")

    @property
    def noun(self) -> str:
        """`base` or `--template`, as in "restore the base chat template"."""
        return "--template" if self.from_user else "base"

    @property
    def label(self) -> str:
        """`base` or `the --template template`, as the subject of a message."""
        return "the --template template" if self.from_user else "base"


def reference(ctx: Context) -> Reference | None:
    """The template the user says the model was trained with, else the base's, else `None`."""
    if ctx.options.template is not None:
        return Reference({"default": ctx.options.template}, from_user=True)
    if ctx.base_or_none is None:
        return None
    templates = ctx.base_or_none.chat_templates()
    return Reference(templates) if templates else None


def reference_renders(ctx: Context, source: str, tokens: Mapping[str, str]) -> TemplateRenders:
    """The reference template rendered with the fine-tune's special tokens, else the base's.

    Rendering both templates with the same tokens keeps token changes out of template
    comparisons; but a base template that needs a `bos_token` the fine-tune dropped (Qwen-style
    `bos_token: null`) only renders with the base's own tokens.
    """
    return ctx.renders(source, reference_tokens(ctx, source, tokens))


def reference_tokens(ctx: Context, source: str, tokens: Mapping[str, str]) -> Mapping[str, str]:
    """The special tokens `reference_renders` renders the reference with (see there)."""
    if breakage(ctx.renders(source, tokens)) is None or ctx.base_or_none is None:
        return tokens
    return ctx.base_or_none.special_tokens()


# --------------------------------------------------------------------------- breakage
@dataclass(frozen=True)
class Breakage:
    """Why a template cannot be used.

    Args:
        kind (`str`): `syntax`, `security`, `timeout`, `too-large`, `fails-everywhere` or
            `constant` (the same text, maybe empty, for every conversation).
        error (`TemplateRenderError`): the first error of that kind.
        probe (`str`, *optional*): the probe conversation it happened on.
    """

    kind: str
    error: TemplateRenderError
    probe: str | None = None

    def describe(self) -> str:
        """A lower-case clause for a finding message."""
        on = f" on probe {self.probe!r}" if self.probe else ""
        message = self.error.message
        if self.kind == "syntax":
            return f"does not compile: {message}"
        if self.kind == "security":
            return f"tried to escape the sandbox{on} and was stopped: {message}"
        if self.kind == "timeout":
            return f"ran out of time{on} and was stopped: {message}"
        if self.kind == "too-large":
            return f"was stopped{on} for producing too much output: {message}"
        if self.kind == "constant":
            return f"ignores the conversation: {message}"
        return f"fails on every probe conversation: {self.error.kind}: {message}"


def breakage(renders: TemplateRenders, *, every_probe_counts: bool = True) -> Breakage | None:
    """Whether a rendered template is broken, and how; `None` when it is usable.

    Args:
        renders (`TemplateRenders`): the template rendered over the probe conversations.
        every_probe_counts (`bool`, *optional*, defaults to `True`): also call it broken when
            no probe renders. Named templates (`tool_use`, `rag`) may need tools or documents
            the probes do not carry, so for them only compile errors and sandbox, time and size
            violations count.
    """
    if renders.compile_error is not None:
        return Breakage("syntax", renders.compile_error)
    for probe in renders.probes:
        for result in (probe.plain, probe.with_prompt):
            if isinstance(result, TemplateRenderError) and result.kind in _FATAL_KINDS:
                return Breakage(result.kind, result, probe.probe)
    if every_probe_counts and not renders.by_name():
        first = renders.first_error()
        if first is not None:
            return Breakage("fails-everywhere", first)
    texts = {
        result
        for probe in renders.probes
        for result in (probe.plain, probe.with_prompt)
        if isinstance(result, str)
    }
    if every_probe_counts and len(renders.by_name()) >= 2 and len(texts) == 1:
        # An empty chat_template.jinja, a Git LFS pointer, constant text: transformers renders
        # the same string (often '') for every chat, so the model is prompted with nothing.
        text = next(iter(texts))
        shown = repr(text[:60]) + ("..." if len(text) > 60 else "")
        return Breakage(
            "constant",
            TemplateRenderError(
                "error", f"every probe conversation renders as the same text {shown}"
            ),
        )
    return None


# --------------------------------------------------------------------------- comparison
class Verdict(str, Enum):
    """How a template behaves compared with the reference's."""

    SAME = "same"
    GENERATION_PROMPT_LOST = "generation-prompt-lost"
    FORMAT_CHANGED = "format-changed"
    INCOMPARABLE = "incomparable"


@dataclass(frozen=True)
class Comparison:
    """The verdict of `compare()` and its evidence.

    Args:
        verdict (`Verdict`): the class.
        probe (`str`, *optional*): the first probe whose renders differ.
        observed (`str`): excerpt of the template's render from just before the difference.
        expected (`str`): the reference's render, same place.
        shared (`tuple[str, ...]`): probes both templates render (others are skipped).
    """

    verdict: Verdict
    probe: str | None = None
    observed: str = ""
    expected: str = ""
    shared: tuple[str, ...] = ()


def compare(target: TemplateRenders, ref: TemplateRenders) -> Comparison:
    """Classify `target` against `ref` over the probes both render.

    Renders without the flag differ -> `FORMAT_CHANGED`; they agree but differ with the flag ->
    `GENERATION_PROMPT_LOST` (unless the reference has no generation prompt and `target` only
    appends one); all agree -> `SAME`. Shapes either template refuses are skipped;
    with no shape in common the result is `INCOMPARABLE`.
    """
    mine, theirs = target.by_name(), ref.by_name()
    shared = tuple(name for name in theirs if name in mine)
    if not shared:
        return Comparison(Verdict.INCOMPARABLE)
    for flagged in (False, True):
        for name in shared:
            observed = mine[name].with_prompt if flagged else mine[name].plain
            expected = theirs[name].with_prompt if flagged else theirs[name].plain
            # by_name() only holds probes that rendered both ways.
            assert isinstance(observed, str)
            assert isinstance(expected, str)
            if observed != expected:
                if flagged and ref.ignores_generation_prompt() and observed.startswith(expected):
                    # The reference has no generation prompt and this one adds one (FTX005 may
                    # have spliced it in): nothing was lost. Calling it lost would restore the
                    # reference, FTX005 would splice again, and repairs would never converge.
                    continue
                verdict = Verdict.GENERATION_PROMPT_LOST if flagged else Verdict.FORMAT_CHANGED
                obs, exp = first_difference(observed, expected, context=48)
                return Comparison(verdict, name, obs, exp, shared)
    return Comparison(Verdict.SAME, shared=shared)


# --------------------------------------------------------------------------- assistant header
_USER = {"role": "user", "content": "hello"}
_USER_2 = {"role": "user", "content": "how are you"}


def _render_or_none(
    source: str, messages: list[dict[str, str]], tokens: Mapping[str, str], flag: bool
) -> str | None:
    try:
        return render(source, messages, add_generation_prompt=flag, special_tokens=tokens)
    except TemplateRenderError:
        return None


def _role_insensitive(source: str, tokens: Mapping[str, str]) -> bool:
    """The template prints a second user turn exactly as it prints an assistant turn."""
    answer = {"role": "assistant", "content": SENTINELS[0]}
    as_user = {"role": "user", "content": SENTINELS[0]}
    assistant_text = _render_or_none(source, [_USER, answer], tokens, False)
    user_text = _render_or_none(source, [_USER, as_user], tokens, False)
    # A template that refuses two user turns in a row does know the roles apart.
    return user_text is not None and user_text == assistant_text


@dataclass(frozen=True)
class Header:
    r"""What a template prints before an assistant answer, and what it only prints at the end.

    Args:
        text (`str`): the assistant header, e.g. `<|im_start|>assistant\n`.
        suffix (`str`): text the template prints after a final user turn but not before an
            answer, i.e. at the end of every conversation (Phi-3's `eos_token` when the flag is
            off); `""` for most templates.
        gap (`str`, *optional*): what the template prints after `text` and before a final
            answer that the model writes itself: the empty reasoning block of Qwen3-style
            templates (`\n</think>\n\n` after a `<think>\n` prompt), gpt-oss's
            `<|channel|>final<|message|>`, or the space of `Assistant: `; `""` for most
            templates; `None` when `text` is what precedes reasoning and a plain answer is
            framed otherwise (`<think></think>` against a `<think>\n` prompt).
        thinking_off (`str`, *optional*): the prompt for `enable_thinking=False` when `text`
            opens a reasoning block that answers without reasoning close empty: the whole
            header of such an answer (`<|im_start|>assistant\n<think>\n\n</think>\n\n`).
            `None` otherwise, and for templates that read `enable_thinking` themselves.
    """

    text: str
    suffix: str = ""
    gap: str | None = ""
    thinking_off: str | None = None


def _split_head(user_only: str, head: str) -> Header:
    """Split `head` (everything before an answer) against the render that ends the user turn."""
    common = 0
    for a, b in zip(user_only, head, strict=False):
        if a != b:
            break
        common += 1
    if common == len(user_only):
        return Header(head[common:])
    # The character-level common prefix can run into a marker both continuations start with
    # (`</s>` vs `<|assistant|>` share `<`); move the cut back to where the header starts a
    # marker or a line, which renders the same and reads right.
    for back in range(min(common, 16) + 1):
        cut = common - back
        rest = head[cut:]
        if _MARKER.match(rest) or (cut > 0 and head[cut - 1] == "\n"):
            return Header(rest, user_only[cut:])
    return Header(head[common:], user_only[common:])


def assistant_header(source: str, special_tokens: Mapping[str, str]) -> tuple[Header | None, str]:
    r"""What the template prints between a user turn and an assistant answer.

    Two different sentinel answers are rendered after a user turn (`turns.assistant_frame`);
    the header is the common text between the user-only render and the answer. A template that
    also ends every conversation with some text (Phi-3 prints `eos_token` unless the flag is
    set) gets that text as the header's `suffix`.

    Returns:
        `(header, "")`, or `(None, reason)` when there is none to find: the template cannot
        render the conversation, frames the two answers differently, or is role-insensitive
        (frames a user turn exactly like an assistant turn, so no header says "the assistant
        speaks now").
    """
    frame = assistant_frame(source, special_tokens)
    found: Header | None = Header(frame.header) if frame is not None else None
    if found is None:
        user_only = _render_or_none(source, [_USER], special_tokens, False)
        heads = []
        for sentinel in SENTINELS:
            answer = {"role": "assistant", "content": sentinel}
            text = _render_or_none(source, [_USER, answer], special_tokens, False)
            if text is None or text.count(sentinel) != 1:
                break
            heads.append(text[: text.index(sentinel)])
        if user_only is not None and len(heads) == 2 and heads[0] == heads[1]:
            found = _split_head(user_only, heads[0])
    if found is None:
        return None, "cannot find what the template prints before an assistant answer"
    if _role_insensitive(source, special_tokens):
        return None, "the template frames user and assistant turns alike (role-insensitive)"
    return _prompt_part(source, special_tokens, found), ""


# The reasoning of the probe answer: plain letters, like the sentinels.
_REASONING = "zqxreasoningtrace"


def _reasoning_head(source: str, tokens: Mapping[str, str]) -> str | None:
    """What the template prints after a user turn and before a final answer's reasoning."""
    user_only = _render_or_none(source, [_USER], tokens, False)
    answer = {"role": "assistant", "content": SENTINELS[0], "reasoning_content": _REASONING}
    text = _render_or_none(source, [_USER, answer], tokens, False)
    if user_only is None or text is None or text.count(_REASONING) != 1:
        return None
    head = text[: text.index(_REASONING)]
    return head[len(user_only) :] if head.startswith(user_only) else None


def _boundary(text: str, end: int) -> int:
    """The last cut at or before `end` where `text` starts a marker or follows a newline."""
    for cut in range(end, 0, -1):
        if _MARKER.match(text, cut) or text[cut - 1] == "\n":
            return cut
    return 0


def _prompt_part(source: str, tokens: Mapping[str, str], header: Header) -> Header:
    r"""Split a final answer's header into the generation prompt and what the model writes.

    A final answer is not always preceded by the prompt alone. Reasoning templates print a
    reasoning block first: Qwen3-style ones an empty `<think>\n\n</think>\n\n` when the
    answer has no reasoning, gpt-oss a `<|channel|>final<|message|>` where reasoning would go
    to `<|channel|>analysis<|message|>`. So the header before a final answer with reasoning is
    derived too. When the template opens the reasoning block in every final answer (the plain
    answer's header starts with it, closed empty), the model is prompted up to its reasoning:
    that header is the prompt. When the two headers part inside (gpt-oss's channels), the
    prompt is their common part, cut where a marker or a line starts. When reasoning only
    follows the plain header, whether the prompt opens it cannot be told (Olmo-3 Think's does,
    LFM2's does not): the plain header is kept. Trailing spaces are left to the model, as the
    `Assistant: ` of plain-text formats: BPE and SentencePiece vocabularies attach a space to
    the word after it, so a prompt ending in one splits text unlike training did.
    """
    text = header.text
    reasoning = _reasoning_head(source, tokens)
    prompt = text
    if reasoning is not None and reasoning.strip() and not reasoning.startswith(text):
        if text.startswith(reasoning.rstrip()):
            prompt = reasoning
        else:
            common = 0
            for a, b in zip(text, reasoning, strict=False):
                if a != b:
                    break
                common += 1
            prompt = text[: _boundary(text, common)]
    if prompt.rstrip(" ").strip():
        prompt = prompt.rstrip(" ")
    if not prompt.strip():
        return header
    gap = text[len(prompt) :] if text.startswith(prompt) else None
    # The block every final answer opens can be closed at once, as the template closes it for
    # answers without reasoning: that is the thinking switch's "off", unless the template has
    # a switch of its own.
    off = text if prompt == reasoning and text != prompt else None
    if off is not None and "enable_thinking" in source:
        off = None
    return Header(prompt, header.suffix, gap, off)


# --------------------------------------------------------------------------- splice
@dataclass(frozen=True)
class Splice:
    """A template with a spliced generation-prompt branch, or why there is none.

    Args:
        source (`str`, *optional*): the new template, proven by rendering.
        header (`Header`, *optional*): the generation prompt it appends (the assistant header),
            and the conversation-end text it drops when the flag is set.
        reason (`str`): why no splice was made, `""` on success.
    """

    source: str | None
    header: Header | None
    reason: str = ""


def _jinja_string(text: str) -> str:
    """`text` as a single-quoted Jinja string literal that evaluates back to `text`."""
    escaped = []
    for char in text:
        if char == "\\":
            escaped.append("\\\\")
        elif char == "'":
            escaped.append("\\'")
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\r":
            escaped.append("\\r")
        elif char == "\t":
            escaped.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\x{ord(char):02x}")
        else:
            # Jinja decodes literals with unicode-escape after backslash-escaping non-ASCII,
            # so other characters (e.g. DeepSeek's fullwidth bars) can stay as they are.
            escaped.append(char)
    return "'" + "".join(escaped) + "'"


# The variable that captures the template's output when a conversation-end suffix must go.
_CAPTURE = "ftfix_rendered"


def _with_branch(source: str, header: Header) -> str:
    # Jinja drops one trailing newline of a template (keep_trailing_newline=False); anything
    # appended after it would make that newline count, so the branch goes before it. `{%+`
    # stops lstrip_blocks from eating spaces the template leaves at the end of its last line.
    body, newline = source, ""
    for ending in ("\r\n", "\n"):
        if source.endswith(ending):
            body, newline = source[: -len(ending)], ending
            break
    prompt = _jinja_string(header.text)
    if header.thinking_off is not None:
        prompt = (
            "(" + _jinja_string(header.thinking_off) + " if enable_thinking is defined"
            " and enable_thinking is false else " + prompt + ")"
        )
    if not header.suffix:
        return body + "{%+ if add_generation_prompt %}{{ " + prompt + " }}{% endif %}" + newline
    # The template ends every conversation with the suffix (e.g. eos_token): capture its
    # output, and with the flag replace that suffix by the prompt. The newline after the
    # opening tag is eaten by trim_blocks, so a template starting with one keeps it.
    suffix = _jinja_string(header.suffix)
    return (
        "{% set " + _CAPTURE + " %}\n" + body + "{%+ endset %}"
        "{%+ if add_generation_prompt and " + _CAPTURE + ".endswith(" + suffix + ") %}"
        "{{ " + _CAPTURE + "[:-" + str(len(header.suffix)) + "] ~ " + prompt + " }}"
        "{%+ else %}{{ " + _CAPTURE + " }}{% endif %}" + newline
    )


def _history_matches(source: str, header: Header, tokens: Mapping[str, str]) -> bool:
    """With the flag, the prompt ends exactly where training put an assistant answer.

    Between the two, only the header's `gap` (what the model writes itself) may come; a prompt
    that opens a reasoning block may instead end exactly where the answer's reasoning starts.
    """
    earlier = {"role": "assistant", "content": SENTINELS[0]}
    answer = {"role": "assistant", "content": SENTINELS[1]}
    reasoned = {**answer, "reasoning_content": _REASONING}
    prompt = _render_or_none(source, [_USER, earlier, _USER_2], tokens, True)
    if prompt is None or not prompt.endswith(header.text):
        return False
    full = _render_or_none(source, [_USER, earlier, _USER_2, answer], tokens, False)
    if (
        header.gap is not None
        and full is not None
        and full.startswith(prompt + header.gap + SENTINELS[1])
    ):
        return True
    # A prompt that opens the reasoning block ends where training put the reasoning.
    full = _render_or_none(source, [_USER, earlier, _USER_2, reasoned], tokens, False)
    return full is not None and full.startswith(prompt + _REASONING)


def splice_generation_prompt(
    source: str, special_tokens: Mapping[str, str], renders: RenderFn = render_all
) -> Splice:
    """Give a template that ignores `add_generation_prompt` a generation-prompt branch.

    The prompt is the assistant header (`assistant_header`). The new template appends it,
    when the flag is set, after everything the template prints (replacing the text a template
    ends every conversation with, if any). It is accepted only if, on every probe the old
    template renders: the render without the flag is unchanged; the render with the flag
    differs from it and ends with the header; and in a multi-turn conversation the prompt ends
    exactly where the template puts the next assistant answer (the spliced prompt equals what
    the template prints before historical assistant turns).

    Args:
        source (`str`): the template that ignores the flag.
        special_tokens (`Mapping[str, str]`): the checkpoint's special tokens.
        renders (`RenderFn`, *optional*): renders a template over the probes (pass
            `ctx.renders` to share its cache).

    Returns:
        `Splice`: with `source` set on success, else `reason` says what failed.
    """
    header, why = assistant_header(source, special_tokens)
    if header is None:
        return Splice(None, None, why)
    if not header.text.strip():
        return Splice(None, header, "the assistant header is only whitespace")
    spliced = _with_branch(source, header)
    old, new = renders(source, special_tokens), renders(spliced, special_tokens)
    if new.compile_error is not None:
        return Splice(None, header, f"the spliced template does not compile: {new.compile_error}")
    before, after = old.by_name(), new.by_name()
    if not before:
        return Splice(None, header, "the template renders no probe conversation")
    for name, probe in before.items():
        result = after.get(name)
        if result is None or result.plain != probe.plain:
            return Splice(None, header, f"splicing changes probe {name!r} without the flag")
        flagged, expected = result.with_prompt, probe.plain
        assert isinstance(expected, str)  # by_name() only holds probes that rendered
        if header.suffix and expected.endswith(header.suffix):
            expected = expected[: -len(header.suffix)]
        if flagged != expected + header.text:
            return Splice(None, header, f"with the flag probe {name!r} does not add the header")
    if not _history_matches(spliced, header, special_tokens):
        return Splice(
            None, header, "the prompt does not end where the template puts an assistant answer"
        )
    if header.thinking_off is not None and not _switch_closes_block(
        spliced, header, special_tokens
    ):
        return Splice(None, header, "enable_thinking=false does not close the reasoning block")
    return Splice(spliced, header)


def _switch_closes_block(source: str, header: Header, tokens: Mapping[str, str]) -> bool:
    """With `enable_thinking=False` the prompt is the header of an answer without reasoning."""
    try:
        plain = render(source, [_USER], special_tokens=tokens, enable_thinking=False)
        flagged = render(
            source,
            [_USER],
            add_generation_prompt=True,
            special_tokens=tokens,
            enable_thinking=False,
        )
    except TemplateRenderError:
        return False
    if header.suffix and plain.endswith(header.suffix):
        plain = plain[: -len(header.suffix)]
    return flagged == plain + str(header.thinking_off)


# --------------------------------------------------------------------------- markers
# Special-looking markers: <|im_start|>, DeepSeek's <｜Assistant｜>, <start_of_turn> / </s>,
# [INST] / [/INST]. `<<SYS>>` is prose (Llama 2 spells it out), hence the look-arounds.
_MARKER = re.compile(
    r"<\|[^<>|\s]{1,64}\|>"
    r"|<｜[^<>｜\s]{1,64}｜>"
    r"|(?<!<)</?[A-Za-z_][\w.:-]{0,63}>(?!>)"
    r"|\[/?[A-Z][A-Z0-9_]{1,63}\]"
)


def marker_style(marker: str) -> str:
    """`pipe` (`<|x|>`), `fullwidth` (`<｜x｜>`), `tag` (`<x>`, `</x>`) or `bracket` (`[X]`)."""
    if marker.startswith("<|"):
        return "pipe"
    if marker.startswith("<｜"):
        return "fullwidth"
    if marker.startswith("["):
        return "bracket"
    return "tag"


def is_marker(text: str) -> bool:
    """Whether `text` is, as a whole, one special-looking marker."""
    return _MARKER.fullmatch(text) is not None


def markers_in(text: str) -> list[str]:
    """Special-looking markers in `text`, in order, repeats included."""
    return [match.group(0) for match in _MARKER.finditer(text)]


def template_markers(renders: TemplateRenders) -> list[str]:
    """Special-looking markers in a template's renders, in order of first appearance."""
    seen: dict[str, None] = {}
    for text in _texts(renders):
        for marker in markers_in(text):
            seen.setdefault(marker, None)
    return list(seen)


def _texts(renders: TemplateRenders) -> Iterator[str]:
    for probe in renders.probes:
        for result in (probe.plain, probe.with_prompt):
            if isinstance(result, str):
                yield result
