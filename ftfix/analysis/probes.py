"""Render a chat template over the probe conversations and compare the results.

Two sets of conversations exercise a template:

* the probe conversations (`render.probe_conversations`): plain system / user / assistant
  turns, each rendered with and without `add_generation_prompt` (`render_all`);
* the shapes of today's chat (`shapes`): a `tools` list, assistant `tool_calls` (arguments as a
  dict and as a JSON string, content empty or absent), `tool` results with and without
  `tool_call_id`/`name`, `reasoning_content`, content given as a list of parts, and the
  `enable_thinking` switch (true, false, unset). Each shape belongs to a capability and carries
  a signal, the text its render shows when the template uses what the shape carries
  (`render_shapes`). Templates refuse shapes they do not handle ("tool calls not supported");
  such refusals are kept as errors and only mean the template lacks that capability.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from .render import TemplateRenderError, compile_template, probe_conversations, render

__all__ = [
    "CAPABILITIES",
    "ProbeRender",
    "Shape",
    "ShapeRenders",
    "TemplateRenders",
    "first_difference",
    "render_all",
    "render_shapes",
    "shapes",
]


@dataclass(frozen=True)
class ProbeRender:
    """One probe conversation rendered without and with `add_generation_prompt`."""

    probe: str
    plain: str | TemplateRenderError
    with_prompt: str | TemplateRenderError

    @property
    def ok(self) -> bool:
        """Both renders succeeded."""
        return isinstance(self.plain, str) and isinstance(self.with_prompt, str)

    @property
    def generation_prompt(self) -> str | None:
        """What the flag appends, when the flagged render extends the plain one."""
        plain, flagged = self.plain, self.with_prompt
        if isinstance(plain, str) and isinstance(flagged, str) and flagged.startswith(plain):
            return flagged[len(plain) :]
        return None


@dataclass(frozen=True)
class TemplateRenders:
    """A template rendered over every probe conversation.

    Shapes a template refuses (e.g. "system role not supported") are kept as errors and skipped
    in comparisons, not counted as failures.
    """

    source: str
    compile_error: TemplateRenderError | None
    probes: tuple[ProbeRender, ...]

    def by_name(self) -> dict[str, ProbeRender]:
        """Probes that rendered both ways, by name."""
        return {p.probe: p for p in self.probes if p.ok}

    @property
    def broken(self) -> bool:
        """The template does not compile, or no probe renders."""
        return self.compile_error is not None or not self.by_name()

    def first_error(self) -> TemplateRenderError | None:
        """The compile error, or the first render error."""
        if self.compile_error is not None:
            return self.compile_error
        for p in self.probes:
            for result in (p.plain, p.with_prompt):
                if isinstance(result, TemplateRenderError):
                    return result
        return None

    def ignores_generation_prompt(self) -> bool:
        """Every probe that renders gives the same text with and without the flag."""
        rendered = self.by_name()
        return bool(rendered) and all(p.plain == p.with_prompt for p in rendered.values())


def render_all(source: str, special_tokens: Mapping[str, str]) -> TemplateRenders:
    """Render `source` over `probe_conversations()` with and without the generation prompt."""
    try:
        compile_template(source)
    except TemplateRenderError as exc:
        return TemplateRenders(source, exc, ())
    results = []
    # A runaway template would spend the whole timeout on every render: stop at the first.
    timed_out: TemplateRenderError | None = None
    for probe in probe_conversations():
        pair: list[str | TemplateRenderError] = []
        for flag in (False, True):
            if timed_out is not None:
                pair.append(timed_out)
                continue
            try:
                pair.append(
                    render(
                        source,
                        probe.messages,
                        add_generation_prompt=flag,
                        special_tokens=special_tokens,
                    )
                )
            except TemplateRenderError as exc:
                pair.append(exc)
                if exc.kind == "timeout":
                    timed_out = exc
        results.append(ProbeRender(probe.name, pair[0], pair[1]))
    return TemplateRenders(source, None, tuple(results))


def first_difference(a: str, b: str, *, context: int = 30) -> tuple[str, str]:
    """Short excerpts of `a` and `b` starting a little before their first differing character."""
    index = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    start = max(0, index - 10)
    return a[start : index + context], b[start : index + context]


# --------------------------------------------------------------------------- today's shapes
CAPABILITIES: Final = (
    "tools",
    "tool calls",
    "tool results",
    "reasoning",
    "thinking switch",
    "content parts",
)

# Contents are plain words; the call id is nine letters and digits because Mistral's templates
# refuse any other id. Signals are words no template prints on its own.
_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
_ASK = {"role": "user", "content": "what is the weather like"}
_CALL_ID = "call00001"
_RESULT = "sunny and warm"
_REASONING = "the user greets me so i greet back"


def _call(arguments: Any, *, content: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": _CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": arguments},
            }
        ],
    }
    if content:
        message["content"] = ""
    return message


def _result(*, ids: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "tool", "content": _RESULT}
    if ids:
        message.update(tool_call_id=_CALL_ID, name="get_weather")
    return message


_DICT_ARGS = {"city": "paris"}
_STRING_ARGS = json.dumps(_DICT_ARGS)


@dataclass(frozen=True)
class Shape:
    """One conversation of today's chat, as `apply_chat_template` would be called with it.

    Attributes:
        name: A short identifier, e.g. `"tool-call-dict"`.
        capability: The capability it exercises, one of `CAPABILITIES`.
        add_generation_prompt: The flag it is rendered with.
        signal: Text the render shows when the template uses the capability (`""` for the
            thinking switch, judged by comparing its settings instead).
        kwargs: Extra template variables (`enable_thinking`).
    """

    name: str
    capability: str
    add_generation_prompt: bool
    signal: str
    _messages: str
    _tools: str = "null"
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A fresh copy of the conversation (plain lists and dicts, as callers pass them)."""
        return list(json.loads(self._messages))

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        """A fresh copy of the tool definitions, or None."""
        tools: list[dict[str, Any]] | None = json.loads(self._tools)
        return tools

    def render(
        self, source: str, special_tokens: Mapping[str, str], *, timeout: float = 2.0
    ) -> str | TemplateRenderError:
        """Render the shape with `source`, returning the error instead of raising it."""
        try:
            return render(
                source,
                self.messages,
                add_generation_prompt=self.add_generation_prompt,
                special_tokens=special_tokens,
                tools=self.tools,
                timeout=timeout,
                **dict(self.kwargs),
            )
        except TemplateRenderError as exc:
            return exc


def _shape(
    name: str,
    capability: str,
    messages: list[dict[str, Any]],
    *,
    flag: bool,
    signal: str,
    tools: list[dict[str, Any]] | None = None,
    kwargs: tuple[tuple[str, Any], ...] = (),
) -> Shape:
    return Shape(name, capability, flag, signal, json.dumps(messages), json.dumps(tools), kwargs)


@lru_cache(maxsize=1)
def shapes() -> tuple[Shape, ...]:
    """The conversation shapes of today's chat, in a fixed order (see the module docstring)."""
    hello = {"role": "user", "content": "hello"}
    answer = {"role": "assistant", "content": "fine thanks", "reasoning_content": _REASONING}
    result: list[Shape] = [
        _shape("tools", "tools", [_ASK], flag=True, signal="get_weather", tools=[_TOOL])
    ]
    for args_name, args in (("dict", _DICT_ARGS), ("string", _STRING_ARGS)):
        for content in (True, False):
            suffix = "" if content else "-no-content"
            result.append(
                _shape(
                    f"tool-call-{args_name}{suffix}",
                    "tool calls",
                    [_ASK, _call(args, content=content)],
                    flag=False,
                    signal="paris",
                )
            )
    for args_name, args in (("dict", _DICT_ARGS), ("string", _STRING_ARGS)):
        for ids in (True, False):
            suffix = "" if ids else "-bare"
            result.append(
                _shape(
                    f"tool-result-{args_name}{suffix}",
                    "tool results",
                    [_ASK, _call(args, content=True), _result(ids=ids)],
                    flag=True,
                    signal=_RESULT,
                )
            )
    result.append(_shape("reasoning", "reasoning", [hello, answer], flag=False, signal=_REASONING))
    for setting, kwargs in (
        ("on", (("enable_thinking", True),)),
        ("off", (("enable_thinking", False),)),
        ("unset", ()),
    ):
        result.append(
            _shape(
                f"thinking-{setting}",
                "thinking switch",
                [hello],
                flag=True,
                signal="",
                kwargs=kwargs,
            )
        )
    text_part = {"type": "text", "text": "hello"}
    result.append(
        _shape(
            "content-text-part",
            "content parts",
            [{"role": "user", "content": [text_part]}],
            flag=True,
            signal="hello",
        )
    )
    result.append(
        _shape(
            "content-image-part",
            "content parts",
            [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": "what is it"}],
                }
            ],
            flag=True,
            signal="what is it",
        )
    )
    return tuple(result)


@dataclass(frozen=True)
class ShapeRenders:
    """A template rendered over every shape of `shapes()`, by shape name."""

    source: str
    results: Mapping[str, str | TemplateRenderError]

    def rendered(self, capability: str) -> dict[str, str]:
        """The renders of the capability's shapes that did not fail, by shape name."""
        return {
            shape.name: text
            for shape in shapes()
            if shape.capability == capability
            and isinstance(text := self.results.get(shape.name), str)
        }

    def shows(self, capability: str) -> bool:
        """The template uses the capability: a shape's render shows its signal.

        The thinking switch shows when `enable_thinking` true and false render differently.
        """
        if capability == "thinking switch":
            on, off = self.results.get("thinking-on"), self.results.get("thinking-off")
            return isinstance(on, str) and isinstance(off, str) and on != off
        signals = {shape.name: shape.signal for shape in shapes()}
        return any(signals[name] in text for name, text in self.rendered(capability).items())

    def capabilities(self) -> list[str]:
        """The capabilities the template uses, in `CAPABILITIES` order."""
        return [capability for capability in CAPABILITIES if self.shows(capability)]


def render_shapes(source: str, special_tokens: Mapping[str, str]) -> ShapeRenders:
    """Render `source` over every shape of `shapes()` (an error per shape where it fails)."""
    try:
        compile_template(source)
    except TemplateRenderError as exc:
        return ShapeRenders(source, {shape.name: exc for shape in shapes()})
    results: dict[str, str | TemplateRenderError] = {}
    timed_out: TemplateRenderError | None = None
    for shape in shapes():
        if timed_out is not None:
            results[shape.name] = timed_out
            continue
        result = shape.render(source, special_tokens)
        if isinstance(result, TemplateRenderError) and result.kind == "timeout":
            timed_out = result
        results[shape.name] = result
    return ShapeRenders(source, results)
