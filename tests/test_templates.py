"""ftfix.analysis.render: limits, sandbox, error kinds, inputs transformers gives a template."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import ftfix.analysis.render
from ftfix.analysis.render import (
    Probe,
    TemplateRenderError,
    compile_template,
    probe_conversations,
    render,
    render_probe,
)

USER = [{"role": "user", "content": "hello"}]
NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
HAS_ALARM = hasattr(signal, "setitimer")
TEMPLATES_PY = str(Path(ftfix.analysis.render.__file__))


@pytest.fixture(autouse=True)
def _forget_runaway_templates():
    """Each test renders its hostile templates afresh (render() remembers runaway templates)."""
    ftfix.analysis.render._RUNAWAY.clear()
    yield
    ftfix.analysis.render._RUNAWAY.clear()


def render_error(source: str, messages: Any = None, **kwargs: Any) -> TemplateRenderError:
    with pytest.raises(TemplateRenderError) as info:
        render(source, USER if messages is None else messages, **kwargs)
    return info.value


def in_thread(function: Callable[[], Any]) -> Any:
    """Run `function` in a fresh thread (no signals there) and return or re-raise its result."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = function()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    return box["result"]


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_ALARM, reason="no setitimer on this platform")
def test_timeout_in_main_thread_interrupts_the_template() -> None:
    assert threading.current_thread() is threading.main_thread()
    started = time.monotonic()
    error = render_error(NESTED_LOOPS, timeout=0.5)
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert "0.5 s" in error.message
    assert elapsed < 0.5 + 0.5


def test_timeout_outside_the_main_thread_uses_deadline_checks() -> None:
    started = time.monotonic()
    error = in_thread(lambda: render_error(NESTED_LOOPS, timeout=0.5))
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert elapsed < 0.5 + 0.5


def test_timeout_outside_the_main_thread_in_a_recursive_macro() -> None:
    # No loop, no output: only the deadline check at each call stops it.
    source = (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{% set x = f(40) %}"
    )
    started = time.monotonic()
    error = in_thread(lambda: render_error(source, timeout=0.3))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 0.3 + 0.5


@pytest.fixture
def sigalrm_state() -> Iterator[None]:
    """Leave SIGALRM and ITIMER_REAL as the test found them, whatever it does."""
    handler = signal.getsignal(signal.SIGALRM)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, handler)


@pytest.mark.skipif(not HAS_ALARM, reason="no setitimer on this platform")
@pytest.mark.usefixtures("sigalrm_state")
@pytest.mark.parametrize("source", ["{{ 'ok' }}", NESTED_LOOPS, "{{ raise_exception('no') }}"])
def test_signal_handler_and_timer_are_restored(source: str) -> None:
    before = signal.getsignal(signal.SIGALRM)
    with contextlib.suppress(TemplateRenderError):
        assert render(source, USER, timeout=0.3) == "ok"
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.skipif(not HAS_ALARM, reason="no setitimer on this platform")
@pytest.mark.usefixtures("sigalrm_state")
def test_alarms_landing_anywhere_still_restore_the_handler() -> None:
    # Timeouts so short that the alarm fires at every possible point of render(), including
    # inside the code that installs and removes it.
    before = signal.getsignal(signal.SIGALRM)
    kinds = set()
    for attempt in range(300):
        try:
            render("{{ messages[0].content }}", USER, timeout=(attempt % 30 + 1) * 2e-6)
            kinds.add("ok")
        except TemplateRenderError as exc:
            kinds.add(exc.kind)
        assert signal.getsignal(signal.SIGALRM) == before
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert kinds <= {"ok", "timeout"}
    assert "timeout" in kinds


@pytest.mark.skipif(not HAS_ALARM, reason="no setitimer on this platform")
@pytest.mark.usefixtures("sigalrm_state")
def test_a_previous_timer_is_given_back_what_is_left() -> None:
    fired: list[int] = []

    def outer_handler(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    signal.signal(signal.SIGALRM, outer_handler)
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    assert render_error(NESTED_LOOPS, timeout=0.3).kind == "timeout"
    assert signal.getsignal(signal.SIGALRM) is outer_handler
    left, interval = signal.getitimer(signal.ITIMER_REAL)
    assert 28.0 < left <= 29.8
    assert interval == 0.0
    assert not fired


@pytest.mark.skipif(not HAS_ALARM, reason="no setitimer on this platform")
@pytest.mark.usefixtures("sigalrm_state")
def test_a_previous_timer_that_expired_meanwhile_still_fires() -> None:
    fired: list[int] = []

    def outer_handler(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    signal.signal(signal.SIGALRM, outer_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    assert render_error(NESTED_LOOPS, timeout=0.4).kind == "timeout"
    deadline = time.monotonic() + 2
    while not fired and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fired == [signal.SIGALRM]


def test_infinite_timeout_sets_no_timer() -> None:
    assert render("{{ messages[0].content }}", USER, timeout=float("inf")) == "hello"


def test_output_past_max_chars_is_too_large() -> None:
    source = "{% for i in range(100000) %}0123456789{% endfor %}"
    error = render_error(source, max_chars=1000)
    assert error.kind == "too-large"
    assert "1000" in error.message


def test_output_of_exactly_max_chars_renders() -> None:
    assert render("{{ 'x' * 10 }}", USER, max_chars=10) == "x" * 10
    assert render_error("{{ 'x' * 10 }}!", max_chars=10).kind == "too-large"


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**12 }}",  # would allocate a terabyte in one C call
        "{{ ([1] * 10**12)|length }}",  # not even printed: the intermediate is refused
        "{{ 10 * 'x' * 10**6 }}",
        "{{ 7 ** 10000000 }}",  # a bigint power that no signal could interrupt
    ],
)
def test_huge_single_operations_are_refused_before_they_run(source: str) -> None:
    started = time.monotonic()
    assert render_error(source, timeout=5).kind == "too-large"
    assert time.monotonic() - started < 1


def test_huge_constant_expressions_do_not_hang_compilation() -> None:
    # Jinja folds constant expressions at compile time, outside any render-time check.
    started = time.monotonic()
    compile_template("{% if false %}{{ 'x' * 10**12 }}{{ 9 ** 999999999 }}{% endif %}")
    assert time.monotonic() - started < 1


def test_small_operations_still_work() -> None:
    source = "{{ '=' * 3 }}{{ [0] * 2 }}{{ 2 ** 10 }}{{ 2.0 ** 0.5 > 1 }}{{ 3 * 4 }}"
    assert render(source, USER) == "===[0, 0]1024True12"


# --- sandbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ raise_exception.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ messages.append({'role': 'user'}) }}",  # the immutable sandbox: no mutation
        "{{ messages[0].update({'content': 'x'}) }}",
        "{{ namespace(_x=1) }}",
        "{% set ns = namespace() %}{% set ns._x = 1 %}",
        "{{ namespace({'__class__': 1}) }}",
    ],
)
def test_sandbox_escapes_are_security_errors(source: str) -> None:
    assert render_error(source).kind == "security"


@pytest.mark.parametrize(
    "source", ["{{ ''.__class__ }}", "{{ raise_exception.__globals__ }}", "{{ dict.__init__ }}"]
)
def test_a_lone_unsafe_attribute_is_an_empty_undefined(source: str) -> None:
    # Jinja's sandbox hands back an Undefined that raises SecurityError on use; printing it
    # prints nothing, as in transformers (see test_sandbox_outcomes_match_transformers).
    assert render(source, USER) == ""
    assert render(source.replace(" }}", " is defined }}"), USER) == "False"


SANDBOX_PROBES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{{ raise_exception.__globals__ }}",
    "{{ raise_exception.__globals__.os }}",
    "{{ messages.append({'role': 'user'}) }}",
    "{{ namespace(_x=1) }}",
    "{% set ns = namespace() %}{% set ns._x = 1 %}",
    "{{ dict(a=1) }}{{ dict.fromkeys(['b'], 2) }}",
    "{{ dict.__class__ }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ 'x'|tojson(true, 2) }}",
    "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}",
]


@pytest.mark.parametrize("source", SANDBOX_PROBES)
def test_sandbox_outcomes_match_transformers(source: str) -> None:
    pytest.importorskip("transformers")
    from jinja2.exceptions import SecurityError
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        expected: str | type[Exception] = render_jinja_template(
            conversations=[USER], chat_template=source
        )[0][0]
    except SecurityError:
        expected = SecurityError
    try:
        actual = render(source, USER)
    except TemplateRenderError as exc:
        actual = exc.kind
    assert actual == ("security" if expected is SecurityError else expected)


def test_dict_global_builds_dicts_but_exposes_nothing() -> None:
    assert render("{{ dict(a=1) }}{{ dict.fromkeys(['b'], 2) }}", USER) == "{'a': 1}{'b': 2}"
    assert render_error("{{ dict.__class__.__mro__ }}").kind == "security"


def test_namespace_works_for_plain_names() -> None:
    source = (
        "{% set ns = namespace(n=0, self=1) %}"
        "{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}{{ ns.self }}"
    )
    assert render(source, USER * 3) == "31"


# --- error kinds ------------------------------------------------------------------------------


def test_raise_exception_is_raised_with_its_message() -> None:
    error = render_error(
        "{{ raise_exception('Conversation roles must alternate\nuser/assistant') }}"
    )
    assert error.kind == "raised"
    assert error.message == "Conversation roles must alternate user/assistant"
    assert str(error) == "raised: Conversation roles must alternate user/assistant"


def test_long_messages_are_shortened_to_one_line() -> None:
    error = render_error("{{ raise_exception('word ' * 200) }}")
    assert len(error.message) <= 300
    assert error.message.endswith("…")
    assert "\n" not in error.message


@pytest.mark.parametrize(
    "source", ["{% if %}", "{% for m in messages %}", "{{ x|no_such_filter }}"]
)
def test_syntax_errors(source: str) -> None:
    assert render_error(source).kind == "syntax"
    with pytest.raises(TemplateRenderError) as info:
        compile_template(source)
    assert info.value.kind == "syntax"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ undefined_thing.attr }}", "UndefinedError"),
        ("{{ 1 + 'a' }}", "TypeError"),
        ("{{ messages[5] + 1 }}", "UndefinedError"),
        ("{% include 'other.jinja' %}", "TypeError"),  # no loader: templates cannot read files
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ],
)
def test_other_failures_are_errors(source: str, fragment: str) -> None:
    error = render_error(source)
    assert error.kind == "error"
    assert fragment in error.message
    assert isinstance(error.__cause__, Exception)


def test_compile_errors_are_cached_but_raised_fresh() -> None:
    with pytest.raises(TemplateRenderError) as first:
        compile_template("{% endif %}")
    with pytest.raises(TemplateRenderError) as second:
        compile_template("{% endif %}")
    assert first.value is not second.value
    assert first.value.message == second.value.message


def test_compiled_templates_are_cached() -> None:
    source = "{{ messages|length }}"
    assert compile_template(source) is compile_template(source)


def test_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(TemplateRenderError("raised", "no system role")))
    assert (error.kind, error.message, str(error)) == (
        "raised",
        "no system role",
        "raised: no system role",
    )


# --- what the template sees -------------------------------------------------------------------


def test_generation_tag_renders_its_body() -> None:
    source = (
        "{% for m in messages %}{% if m.role == 'assistant' %}"
        "{% generation %}[{{ m.content }}]{% endgeneration %}"
        "{% else %}{{ m.content }}{% endif %}{% endfor %}"
        "{%- generation -%}  !  {%- endgeneration %}"
    )
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    assert render(source, messages) == "hi[ok]!"


def test_none_valued_keys_are_dropped() -> None:
    source = "{% for m in messages %}{{ m|tojson }}|{{ 'name' in m }}{% endfor %}"
    messages = [{"role": "user", "content": "hello", "name": None}]
    assert render(source, messages) == '{"role": "user", "content": "hello"}|False'


def test_reasoning_fields_are_aliased_like_transformers() -> None:
    source = "{% for m in messages %}{{ m|tojson }}{% endfor %}"
    messages = [{"role": "assistant", "content": "ok", "reasoning": "why"}]
    assert render(source, messages) == (
        '{"thinking": "why", "role": "assistant", "content": "ok", "reasoning": "why",'
        ' "reasoning_content": "why"}'
    )
    # An explicit `thinking` keeps its own value but moves first, as transformers'
    # {"thinking": ..., **message, ...} does.
    messages = [{"role": "assistant", "thinking": "t", "reasoning_content": "r"}]
    assert render(source, messages) == (
        '{"thinking": "t", "role": "assistant", "reasoning_content": "r"}'
    )


def test_special_tokens_tools_documents_and_kwargs() -> None:
    source = (
        "{{ bos_token }}{{ eos_token }}|{{ tools|tojson }}|{{ documents[0].title }}"
        "|{{ add_generation_prompt }}|{{ enable_thinking }}"
    )
    out = render(
        source,
        USER,
        add_generation_prompt=True,
        special_tokens={"bos_token": "<s>", "eos_token": "</s>"},
        tools=[{"name": "f", "description": "é<&>"}],
        documents=[{"title": "good", "text": "yes"}],
        eos_token="<|end|>",  # kwargs override special tokens
        enable_thinking=False,
    )
    assert out == '<s><|end|>|[{"name": "f", "description": "é<&>"}]|good|True|False'


def test_unset_variables_are_undefined_not_none() -> None:
    source = "{{ tools is none }}{{ documents is none }}{{ bos_token is defined }}"
    assert render(source, USER) == "TrueTrueFalse"


def test_tojson_takes_transformers_arguments() -> None:
    value = "{{ {'b': 1, 'a': 'é'}|tojson(indent=2, sort_keys=true) }}"
    assert render(value, USER) == '{\n  "a": "é",\n  "b": 1\n}'
    # The first positional argument is ensure_ascii, as in transformers.
    assert render("{{ 'é'|tojson(true) }}", USER) == '"\\u00e9"'
    assert render("{{ [1, 2]|tojson(separators=(',', ':')) }}", USER) == "[1,2]"


def test_strftime_now() -> None:
    year = render("{{ strftime_now('%Y') }}", USER)
    assert year in {time.strftime("%Y"), str(int(time.strftime("%Y")) - 1)}


class Colour(str, enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: tuple[int, int]


class Opaque:
    pass


def test_inputs_are_rebuilt_from_plain_types() -> None:
    # Enum members lose their class (and its __str__), dataclasses become dicts, tuples stay
    # tuples and unknown objects become an inert placeholder, as in transformers.
    source = "{{ messages[0].content }}|{{ messages[0].point }}|{{ messages[0].obj }}"
    messages = [{"role": "user", "content": Colour.RED, "point": Point(1, (2, 3)), "obj": Opaque()}]
    assert render(source, messages) == "red|{'x': 1, 'y': (2, 3)}|<Opaque>"


def test_empty_conversation_is_refused_like_apply_chat_template() -> None:
    assert render_error("{{ 'x' }}", []).kind == "error"


@pytest.mark.parametrize(
    "kwargs",
    [{"continue_final_message": True}, {"tokenize": True}, {"special_tokens": {"messages": "x"}}],
)
def test_arguments_transformers_would_not_pass_to_the_template(kwargs: dict[str, Any]) -> None:
    assert render_error("{{ 'x' }}", **kwargs).kind == "error"


def test_non_mapping_messages_and_tools_are_errors() -> None:
    assert render_error("{{ 'x' }}", ["hello"]).kind == "error"
    assert render_error("{{ 'x' }}", tools=[len]).kind == "error"
    assert render_error("{{ 'x' }}", documents=["text"]).kind == "error"


# --- probes -----------------------------------------------------------------------------------

# The words another test helper's tiny tokenizer knows.
VOCABULARY = {"hello", "hi", "there", "how", "are", "you", "fine", "thanks", "helpful"} | {
    "ok",
    "bye",
    "what",
    "is",
    "it",
    "good",
    "yes",
    "no",
}


def test_probe_conversations_have_the_documented_shapes() -> None:
    shapes = {p.name: tuple(m["role"] for m in p.messages) for p in probe_conversations()}
    assert shapes == {
        "user": ("user",),
        "system-user": ("system", "user"),
        "multi-turn": ("user", "assistant", "user"),
        "assistant-last": ("user", "assistant"),
        "system-multi-turn": ("system", "user", "assistant", "user"),
    }


def test_probe_contents_are_plain_known_words() -> None:
    for probe in probe_conversations():
        assert all(set(m) == {"role", "content"} for m in probe.messages)
        contents = [m["content"] for m in probe.messages]
        assert len(set(contents)) == len(contents)
        for content in contents:
            assert set(content.split()) <= VOCABULARY
            assert "zqx" not in content  # ftfix.analysis.turns' sentinel answers


def test_probes_are_immutable() -> None:
    probe = probe_conversations()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        probe.messages[0]["content"] = "bye"  # type: ignore[index]
    assert probe_conversations() == probe_conversations()


def test_render_probe_returns_text_or_the_error() -> None:
    probe = Probe("user", ({"role": "user", "content": "hello"},))
    source = "{% for m in messages %}{{ bos_token }}{{ m.content }}{% endfor %}"
    rendered = render_probe(source, probe, special_tokens={"bos_token": "<s>"})
    assert rendered == "<s>hello"
    error = render_probe("{{ raise_exception('no') }}", probe, add_generation_prompt=True)
    assert isinstance(error, TemplateRenderError)
    assert error.kind == "raised"


# --- import cost ------------------------------------------------------------------------------


def test_module_alone_imports_neither_jinja2_transformers_nor_torch() -> None:
    # Loaded by path, so that what the rest of the ftfix package imports does not count.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('templates_alone', {TEMPLATES_PY!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['templates_alone'] = module\n"
        "spec.loader.exec_module(module)\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(roots & {'jinja2', 'transformers', 'torch'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_package_import_loads_neither_transformers_nor_torch() -> None:
    code = (
        "import sys, ftfix.analysis.render\n"
        "print([m for m in ('transformers', 'torch') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_runaway_template_is_not_run_twice():
    """A template that timed out fails at once on the next render (rules render it many times)."""
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateRenderError):
        render(source, [{"role": "user", "content": "hi"}], timeout=0.2)
    start = time.monotonic()
    with pytest.raises(TemplateRenderError) as info:
        render(source, [{"role": "user", "content": "hello"}], timeout=0.2)
    assert info.value.kind == "timeout"
    assert time.monotonic() - start < 0.05
