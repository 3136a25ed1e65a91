"""Ollama: how `ollama create` reads a GGUF's template, and a Modelfile that does not depend on it.

From Ollama's source (`template/template.go`, `Named`): the GGUF's `tokenizer.chat_template`
is compared with every template of Ollama's own library by Levenshtein distance; the closest is
used when the distance is below 100, else the model gets the default template `{{ .Prompt }}`
(no roles, no stop words). A Modelfile's `TEMPLATE` and `PARAMETER stop` lines override that.

The Modelfile's Go template is derived by rendering the Jinja template with sentinel texts in
place of the system prompt, the user prompt and the answer, cutting the render at the sentinels,
and checked by running it the way Ollama runs a legacy (`.System`/`.Prompt`/`.Response`)
template, one execution per turn, against the Jinja renders of the probe conversations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .render import TemplateRenderError, render

__all__ = ["MATCH_DISTANCE", "OllamaTemplate", "convert", "levenshtein_below", "modelfile"]

MATCH_DISTANCE = 100  # Ollama's template.Named: `score < 100`
_SYS, _PROMPT, _RESP = "zqxsystemtext", "zqxprompttext", "zqxresponsetext"
_FIRST, _ANSWER = "zqxfirstprompt", "zqxfirstanswer"


def levenshtein_below(a: str, b: str, limit: int = MATCH_DISTANCE) -> int | None:
    """The edit distance of `a` and `b` when it is below `limit`, else `None` (banded: cheap)."""
    if abs(len(a) - len(b)) >= limit:
        return None
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        lo, hi = max(1, i - limit), min(len(b), i + limit)
        current = [limit] * (len(b) + 1)
        current[0] = i if i < limit else limit
        for j in range(lo, hi + 1):
            cost = 0 if ca == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        if min(current[max(0, lo - 1) : hi + 1]) >= limit:
            return None
        previous = current
    return previous[len(b)] if previous[len(b)] < limit else None


@dataclass(frozen=True)
class OllamaTemplate:
    """A Go template for a Modelfile, and what goes with it.

    Args:
        template (`str`): the `TEMPLATE` body.
        system (`str`, *optional*): a system prompt the Jinja template prints when none is given.
        stops (`tuple[str, ...]`): `PARAMETER stop` strings.
    """

    template: str
    system: str | None
    stops: tuple[str, ...]


def _r(source: str, messages: list[dict[str, str]], gen: bool, tokens: Mapping[str, str]) -> str:
    return render(source, messages, add_generation_prompt=gen, special_tokens=tokens)


def _literal(text: str) -> str:
    if "{{" in text or "}}" in text or '"""' in text:
        raise ValueError("the template prints text that a Modelfile cannot hold literally")
    return text


def convert(
    source: str, special_tokens: Mapping[str, str], stops: Sequence[str]
) -> OllamaTemplate | str:
    """The Ollama template equivalent to the Jinja `source`, or why there is none.

    BOS is left out (llama.cpp adds it from the GGUF's `add_bos_token`). The result is
    returned only when `check_equivalent` finds it renders every probe as the Jinja template.
    """
    tokens = {**special_tokens, "bos_token": ""}
    user = {"role": "user", "content": _PROMPT}
    system = {"role": "system", "content": _SYS}
    answer = {"role": "assistant", "content": _RESP}
    try:
        prompted = _r(source, [user], True, tokens)
        plain = _r(source, [user], False, tokens)
        second = _r(
            source,
            [{"role": "user", "content": _FIRST}, {"role": "assistant", "content": _RESP}, user],
            True,
            tokens,
        )
    except TemplateRenderError as exc:
        return f"the template does not render a user conversation ({exc})"
    try:
        with_system: str | None = _r(source, [system, user], True, tokens)
        full = _r(source, [system, user, answer], False, tokens)
    except TemplateRenderError:
        with_system = None  # no system role (Gemma): the Modelfile has no system block either
        full = _r(source, [user, answer], False, tokens)
    opened = prompted if with_system is None else with_system
    texts = (prompted, plain, opened, full, second)
    if any(t.count(_PROMPT) != 1 for t in texts) or (
        with_system is not None and with_system.count(_SYS) != 1
    ):
        return "the template does not print the messages verbatim"
    at = prompted.index(_PROMPT)
    user_start, after_prompt = prompted[:at], prompted[at + len(_PROMPT) :]
    if not plain.startswith(prompted[: at + len(_PROMPT)]):
        return "the user turn renders differently with the generation prompt"
    # What closes the user turn: the plain render may add more after it (Phi-3 prints eos
    # when no generation prompt is asked for), so only the part both renders share.
    user_end = _common_start(plain[at + len(_PROMPT) :], after_prompt)
    if after_prompt == user_end:
        return "the generation prompt does not follow the user turn"
    header = after_prompt[len(user_end) :]
    if not opened.endswith(_PROMPT + after_prompt) or not full.startswith(opened):
        return "the system prompt changes how the user turn renders"
    if not full[len(opened) :].startswith(_RESP):
        return "the answer is not printed after the generation prompt"
    between = second[second.index(_RESP) + len(_RESP) : second.index(_PROMPT)]
    # What ends an answer is what a final answer and one followed by another turn share.
    trailer = _common_start(full[len(opened) + len(_RESP) :], between)
    user_header = between[len(trailer) :]
    sys_prefix = opened[: opened.index(_PROMPT)]
    if not sys_prefix.endswith(user_header) or not user_start.endswith(user_header):
        return "the first user turn starts differently from the next ones"
    default = user_start[: len(user_start) - len(user_header)]
    before = after = ""
    if with_system is not None:
        sys_block = sys_prefix[: len(sys_prefix) - len(user_header)]
        before, _, after = sys_block.partition(_SYS)
    baked: str | None = None
    if default:
        if with_system is None or not (default.startswith(before) and default.endswith(after)):
            return "the template prints a fixed preamble that is not a system turn"
        baked = default[len(before) : len(default) - len(after)]
    try:
        system_block = (
            "" if with_system is None
            else "{{ if .System }}" + _literal(before) + "{{ .System }}" + _literal(after)
            + "{{ end }}"
        )  # fmt: skip
        body = (
            system_block
            + "{{ if .Prompt }}"
            + _literal(user_header)
            + "{{ .Prompt }}"
            + _literal(user_end)
            + "{{ end }}"
            + _literal(header)
            + "{{ .Response }}"
            + _literal(trailer)
        )
    except ValueError as exc:
        return str(exc)
    result = OllamaTemplate(body, baked or None, tuple(dict.fromkeys(s for s in stops if s)))
    problem = check_equivalent(source, special_tokens, result)
    return problem if problem else result


def _common_start(a: str, b: str) -> str:
    """The common start of `a` and `b`, cut before a marker both only begin (`<|end|>` + `<|`)."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    common = a[:n]
    if n < min(len(a), len(b)):
        for opening, closing in (("<", ">"), ("[", "]")):
            cut = common.rfind(opening)
            if cut > common.rfind(closing):
                common = common[:cut]
    return common


# --------------------------------------------------------- running it the way Ollama does
_ACTION = re.compile(r"\{\{ (if \.(\w+)|end|\.(\w+)) \}\}")


def _execute(template: str, values: Mapping[str, str], *, cut: bool) -> str:
    """Run the Go template subset `convert` writes (`{{ if .X }}`, `{{ end }}`, `{{ .X }}`).

    With `cut`, stop right after `{{ .Response }}` (Ollama drops what follows it in the last
    turn, so the model writes the answer).
    """
    out: list[str] = []
    skipping = 0
    pos = 0
    for match in _ACTION.finditer(template):
        if not skipping:
            out.append(template[pos : match.start()])
        pos = match.end()
        if match.group(2):
            if skipping or not values.get(match.group(2)):
                skipping += 1
        elif match.group(1) == "end":
            skipping = max(0, skipping - 1)
        elif not skipping:
            name = match.group(3)
            out.append(values.get(name, ""))
            if cut and name == "Response":
                return "".join(out)
    if not skipping:
        out.append(template[pos:])
    return "".join(out)


def ollama_render(result: OllamaTemplate, messages: Sequence[Mapping[str, str]]) -> str:
    """What Ollama prompts the model with for `messages` under the Modelfile (legacy path)."""
    msgs = list(messages)
    if result.system and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": result.system})
    out: list[str] = []
    system = prompt = response = ""
    for message in msgs:
        role, content = message["role"], message["content"]
        if role == "system":
            if prompt or response:
                out.append(
                    _execute(result.template, {"System": system, "Prompt": prompt,
                                               "Response": response}, cut=False)
                )  # fmt: skip
                system = prompt = response = ""
            system = content
        elif role == "user":
            if response:
                out.append(
                    _execute(result.template, {"System": system, "Prompt": prompt,
                                               "Response": response}, cut=False)
                )  # fmt: skip
                system = prompt = response = ""
            prompt = content
        elif role == "assistant":
            response = content
    values = {"System": system, "Prompt": prompt, "Response": response}
    out.append(_execute(result.template, values, cut=True))
    return "".join(out)


_PROBES: tuple[tuple[dict[str, str], ...], ...] = (
    ({"role": "user", "content": "hello there"},),
    ({"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}),
    (
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello, how can i help?"},
        {"role": "user", "content": "tell me a joke"},
    ),
    (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ),
)


def check_equivalent(
    source: str, special_tokens: Mapping[str, str], result: OllamaTemplate
) -> str | None:
    """`None` when Ollama's render equals the Jinja render (without BOS) on every probe."""
    tokens = {**special_tokens, "bos_token": ""}
    for probe in _PROBES:
        try:
            want = _r(source, [dict(m) for m in probe], True, tokens)
        except TemplateRenderError:
            continue  # a shape the template refuses (e.g. no system role)
        got = ollama_render(result, probe)
        if got != want:
            return (
                f"the converted template renders {got!r} where the chat template renders {want!r}"
            )
    return None


def _quote(text: str) -> str:
    if '"""' in text:
        raise ValueError('text contains """')
    return f'"""{text}"""'


def modelfile(gguf_name: str, result: OllamaTemplate) -> str:
    """The Modelfile text: FROM, TEMPLATE, SYSTEM (when baked in), one PARAMETER stop each."""
    lines = [
        "# Written by ftfix from the GGUF's chat template; `ollama create NAME -f Modelfile`",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quote(result.template)}",
    ]
    if result.system:
        lines.append(f"SYSTEM {_quote(result.system)}")
    lines += [f'PARAMETER stop "{stop}"' for stop in result.stops if '"' not in stop]
    return "\n".join(lines) + "\n"
