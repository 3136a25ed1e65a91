"""Render chat templates exactly as transformers does, sandboxed and bounded.

This module owns ftfix's chat-template renderer. ``render`` gives a template the same
environment and the same variables as ``PreTrainedTokenizerBase.apply_chat_template`` in
transformers (checked byte for byte against the real thing over a corpus of ~800 templates by
``tests/test_templates_parity.py``), without importing transformers or torch:

* the Jinja environment: ``ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)``
  with the ``{% generation %}`` tag and ``loopcontrols``, transformers' ``tojson`` filter and
  the ``raise_exception``, ``strftime_now``, ``dict`` and ``namespace`` globals;
* the variables: ``messages`` with None-valued keys dropped, every input rebuilt from plain JSON
  types, reasoning fields aliased (``reasoning_content``/``thinking``/``reasoning``),
  ``tools``, ``documents``, ``add_generation_prompt`` and the special tokens as keyword
  variables, overridden by explicit keyword arguments.

Templates come from the Hub and are untrusted, so unlike transformers every render is bounded:

* output is streamed and rendering stops once it passes ``max_chars``;
* wall time is limited to ``timeout`` seconds. In the main thread a ``SIGALRM`` timer interrupts
  the template anywhere between two Python bytecodes. Signals can only be handled in the main
  thread, so elsewhere the deadline is checked at every call the template makes (``range()``,
  filters called as functions, macros, methods) and between output chunks; a loop that makes
  no call and emits nothing can overrun the deadline there, though ``range()`` caps each loop
  at 100,000 items.
* ``*`` and ``**`` are checked before they run, because a single huge string repetition or
  integer power runs in C where no timer can stop it. This also stops Jinja folding them at
  compile time, which in transformers can hang compilation itself; the one visible difference
  is that a template with a huge *constant* power fails in transformers when it compiles
  (``ValueError``), and here only if the expression is evaluated.
* memory is bounded: while a render runs, the process's address-space limit (``RLIMIT_AS``,
  soft) is lowered to what the process maps now plus ``_MEMORY_HEADROOM`` (256 MiB), and put
  back afterwards. Single C-level operations that no timer can stop (``'x'|center(10**9)``,
  ``'%0999999999d'|format(1)``, ``indent(10**9)``, a string doubled 34 times with ``~``)
  then fail at once with ``MemoryError`` (``"too-large"``) instead of taking gigabytes.
  Measured against a forked worker with its own ``RLIMIT_AS``: the worker costs ~40 ms per
  render (fork + pipe, 2 loaded cores) against ~0.05 ms in process, i.e. seconds per
  ``check`` and minutes over the 800-template corpus; guards on each width/indent/concat path
  would never be complete. The limit is process-wide for the few milliseconds a render lasts,
  which is why it is lifted again in a ``finally`` and never applied from two renders at once.
* a template has a total time budget in the process: renders slower than ``_SLOW_RENDER``
  add up, and once they pass ``_TEMPLATE_BUDGET`` the template is not rendered again (a
  template that takes 1.2 s, under the 2 s limit, would otherwise cost ~20 renders).

Failures never escape as arbitrary exceptions: ``render`` raises ``TemplateRenderError`` with a
``kind`` saying what went wrong. jinja2 is imported on first use, not at import time, because it
costs ~0.1 s and ftfix's check path must start fast.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, cast

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "Probe",
    "RenderErrorKind",
    "TemplateRenderError",
    "compile_template",
    "probe_conversations",
    "render",
    "render_probe",
]

RenderErrorKind = Literal["syntax", "raised", "security", "timeout", "too-large", "error"]

# Variables that render() passes itself; a special token or kwarg of the same name would make
# transformers' `template.render(messages=..., **kwargs)` fail with a duplicate-keyword TypeError.
_RESERVED_VARIABLES: Final = frozenset({"messages", "tools", "documents", "add_generation_prompt"})
# Arguments that apply_chat_template consumes itself instead of passing them to the template.
# render() does not implement them, and passing them on as template variables would silently
# render something transformers never would.
_UNSUPPORTED_KWARGS: Final = frozenset(
    {
        "chat_template",
        "continue_final_message",
        "return_assistant_tokens_mask",
        "sanitize_control_tokens",
        "tokenize",
        "return_dict",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "tokenizer_kwargs",
    }
)
# Names a message's reasoning can arrive under, in transformers' order of preference.
_REASONING_KEYS: Final = ("reasoning_content", "thinking", "reasoning")
# Bits allowed in the result of an integer `**`: far above anything a chat template needs (str()
# of an int refuses more than 4300 digits, ~14,000 bits, anyway) and still computed in
# microseconds, while `9 ** 999999999` would run in C for minutes beyond the reach of any timer.
_MAX_POWER_BITS: Final = 1 << 17
_MESSAGE_LIMIT: Final = 300
# Address space a render may add to the process (see the module docstring).
_MEMORY_HEADROOM: Final = 256 << 20
# Renders slower than this count towards a template's total budget in the process; healthy
# templates render in well under a millisecond to tens of milliseconds.
_SLOW_RENDER: Final = 0.25
_TEMPLATE_BUDGET: Final = 3.0
_COMPILE_CACHE_SIZE: Final = 128


class TemplateRenderError(Exception):
    """A chat template failed to compile or render.

    Attributes:
        kind: What went wrong: ``"syntax"`` (the template does not parse), ``"raised"`` (the
            template called ``raise_exception``), ``"security"`` (the sandbox blocked an
            unsafe operation), ``"timeout"``, ``"too-large"`` (output or an intermediate value
            passed the size limit) or ``"error"`` (anything else the template triggered, such
            as an undefined variable or a type error).
        message: A short one-line description; for ``"raised"`` it is the template's own text.
    """

    def __init__(self, kind: RenderErrorKind, message: str) -> None:
        self.kind: RenderErrorKind = kind
        self.message: str = _one_line(message)
        super().__init__(f"{kind}: {self.message}")

    def __reduce__(self) -> tuple[type[TemplateRenderError], tuple[RenderErrorKind, str]]:
        # The default reduction would call __init__ with the formatted text as its only
        # argument; keep the error picklable for callers that render in worker processes.
        return (type(self), (self.kind, self.message))


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _MESSAGE_LIMIT:
        return flat[: _MESSAGE_LIMIT - 1] + "…"
    return flat


class _OutputTooLarge(Exception):
    """Internal: a render's output or an intermediate value passed the size limit."""


class _DeadlinePassed(BaseException):
    """Internal: a render ran out of time.

    A BaseException so that no ``except Exception`` on the way out can swallow it: the alarm
    can fire anywhere, e.g. inside Jinja's constant folder, which turns any Exception into
    "cannot fold" and carries on compiling.
    """


@dataclasses.dataclass(frozen=True)
class _Limits:
    deadline: float  # time.monotonic() value; math.inf for no limit
    max_chars: int


# The limits of the render running in this thread (or task); None outside render().
_LIMITS: contextvars.ContextVar[_Limits | None] = contextvars.ContextVar(
    "ftfix_template_limits", default=None
)


def _check_deadline() -> None:
    limits = _LIMITS.get()
    if limits is not None and time.monotonic() > limits.deadline:
        raise _DeadlinePassed


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse a ``*`` or ``**`` whose result would be too large to build."""
    limits = _LIMITS.get()
    if operator == "*":
        max_items = limits.max_chars if limits is not None else 1_000_000
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                if len(sequence) * count > max_items:
                    raise _OutputTooLarge(
                        f"repetition would build {len(sequence) * count} items (limit {max_items})"
                    )
                return
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        bits = abs(left).bit_length() * right
        if abs(left) > 1 and bits > _MAX_POWER_BITS:
            raise _OutputTooLarge(f"integer power would have ~{bits} bits")


@dataclasses.dataclass(frozen=True)
class _Runtime:
    """jinja2 pieces, built on first use so that importing this module stays cheap."""

    environment: jinja2.Environment
    raised_error: type[Exception]
    security_error: type[Exception]
    syntax_error: type[jinja2.TemplateSyntaxError]


@lru_cache(maxsize=1)
def _runtime() -> _Runtime:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.parser
    import jinja2.runtime
    import jinja2.utils
    from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class RaisedByTemplate(TemplateError):
        """What ``raise_exception`` raises: still a TemplateError, as in transformers."""

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``: renders its body unchanged.

        transformers uses the tag to find assistant tokens for training masks; the output is
        the body either way, and that is all ftfix needs.
        """

        tags = {"generation"}  # noqa: RUF012 -- Jinja's own Extension API declares it so

        def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_render_body")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _render_body(self, caller: jinja2.runtime.Macro) -> str:
            return str(caller())

    class TemplateDict:
        """The ``dict`` global: builds dicts but exposes nothing of the ``dict`` type itself."""

        def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict.fromkeys(*args, **kwargs)

    def check_namespace_name(name: object) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(
                f"chat templates cannot store underscore-prefixed attributes on a namespace,"
                f" got {name!r}"
            )

    class TemplateNamespace(jinja2.utils.Namespace):
        """The ``namespace`` global: refuses underscore names, which could reach internals."""

        # Jinja's own positional trick: `self` stays bindable as a namespace attribute name.
        def __init__(*args: Any, **kwargs: Any) -> None:
            attrs = dict(*args[1:], **kwargs)
            for name in attrs:
                check_namespace_name(name)
            jinja2.utils.Namespace.__init__(args[0], attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            check_namespace_name(name)
            super().__setitem__(name, value)

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        """The sandbox, plus the deadline check on every call and guarded ``*``/``**``."""

        # Intercepted operators also stop Jinja folding them at compile time, so a constant
        # like `'x' * 10**12` cannot hang compile_template() either.
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(
            self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
        ) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(
            self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any
        ) -> Any:
            # The only timeout check outside the main thread that can fire mid-loop.
            _check_deadline()
            return super().call(context, obj, *args, **kwargs)

    def raise_exception(message: str) -> None:
        raise RaisedByTemplate(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | str | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        # Positional order as in transformers, so `x|tojson(4)` sets ensure_ascii there too;
        # unlike Jinja's builtin it does not HTML-escape.
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    def strftime_now(date_format: str) -> str:
        return datetime.now().strftime(date_format)

    environment = BoundedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTag, jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    environment.globals["dict"] = TemplateDict()
    environment.globals["namespace"] = TemplateNamespace
    return _Runtime(
        environment=environment,
        raised_error=RaisedByTemplate,
        security_error=SecurityError,
        syntax_error=TemplateSyntaxError,
    )


@lru_cache(maxsize=_COMPILE_CACHE_SIZE)
def _compile_or_syntax_error(source: str) -> jinja2.Template | TemplateRenderError:
    # Syntax errors are cached too: checking a broken template's many conversations should not
    # re-parse it for each one. Other failures (a timeout mid-compile) must not be cached.
    runtime = _runtime()
    try:
        return runtime.environment.from_string(source)
    except runtime.syntax_error as exc:
        return TemplateRenderError("syntax", f"{exc.message} (line {exc.lineno})")
    except SyntaxError as exc:
        # Jinja emits Python; a few templates it accepts compile to invalid Python
        # (`{% break %}` outside a loop): that is a syntax error of the template too.
        return TemplateRenderError("syntax", f"{exc.msg} (line {exc.lineno})")
    except RecursionError:
        # 3,000 nested `{% if %}` or 100,000 nested parentheses: the parser recurses per level.
        return TemplateRenderError("too-large", "the template is nested too deeply to compile")


def compile_template(source: str) -> jinja2.Template:
    """Compile a chat template in ftfix's sandboxed environment, caching by source.

    The environment matches transformers' (see the module docstring). Unlike transformers, one
    environment is shared by every template, which is safe because nothing a template does can
    change it.

    Args:
        source: The Jinja source of the chat template.

    Returns:
        The compiled template. Rendering it directly bypasses ``render``'s input normalisation
        and timeout; use ``render`` for anything untrusted.

    Raises:
        TemplateRenderError: With ``kind="syntax"`` if the source does not parse.
    """
    if source in _RUNAWAY:
        runaway = _RUNAWAY[source]
        raise TemplateRenderError(runaway.kind, runaway.message)
    bound = _MemoryBound(_MEMORY_HEADROOM)
    try:
        bound.start()
        compiled = _compile_or_syntax_error(source)
    except MemoryError:
        error = TemplateRenderError(
            "too-large", f"compiling needed more than {_MEMORY_HEADROOM >> 20} MiB of memory"
        )
        _remember_runaway(source, error)
        raise error from None
    finally:
        bound.stop()
    if isinstance(compiled, TemplateRenderError):
        # A fresh exception each time: re-raising one cached instance would grow its traceback.
        raise TemplateRenderError(compiled.kind, compiled.message)
    return compiled


def _plain(value: Any) -> Any:
    """Rebuild a value out of plain JSON-like types, as transformers does before rendering.

    Rich objects (enums, numpy scalars, dataclasses, pydantic models, arrays, images) carry
    methods the sandbox does not know to be dangerous, so transformers converts them and
    replaces anything unknown with an inert ``"<TypeName>"`` placeholder. The conversion
    changes what some templates render, so it is part of parity, not just safety.
    """
    exact = type(value)
    if value is None or exact is str or exact is int or exact is float or exact is bool:
        return value
    # Exact dicts and lists are most of what arrives; skip the ABC checks below for them.
    if exact is dict:
        return {_plain(key): _plain(item) for key, item in value.items()}
    if exact is list:
        return [_plain(item) for item in value]
    # Subclasses lose their extra methods (and their own __str__, hence the unbound calls).
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    # A numpy scalar can only exist if numpy was imported, so look it up instead of importing it.
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return _plain(model_dump())
    return f"<{exact.__name__}>"


def _alias_reasoning(message: dict[Any, Any]) -> dict[Any, Any]:
    # Templates read reasoning as `reasoning_content`, gpt-oss ones as `thinking`; transformers
    # fills both from whichever name the caller used. The dict is built in the same key order
    # because templates that loop over message.items() render in that order.
    for key in _REASONING_KEYS:
        reasoning = message.get(key)
        if reasoning is not None:
            return {"thinking": reasoning, **message, "reasoning_content": reasoning}
    return message


def _template_variables(
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    special_tokens: Mapping[str, str] | None,
    tools: list[dict[str, Any]] | None,
    documents: list[dict[str, Any]] | None,
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """Build the variables transformers' ``apply_chat_template`` hands the template."""
    unsupported = sorted(_UNSUPPORTED_KWARGS.intersection(kwargs))
    if unsupported:
        raise TemplateRenderError(
            "error", f"unsupported apply_chat_template argument(s): {unsupported}"
        )
    if not messages:
        # apply_chat_template refuses an empty conversation before rendering.
        raise TemplateRenderError("error", "cannot render an empty conversation")
    chat: list[dict[Any, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TemplateRenderError("error", f"message {index} is not a mapping: {message!r}")
        # Dropped before anything else, as apply_chat_template does: many templates handle a
        # missing key but print "None" or crash on a None one (e.g. OpenAI's content=None).
        present = {key: value for key, value in message.items() if value is not None}
        chat.append(_alias_reasoning(_plain(present)))
    if tools is not None and not all(isinstance(tool, dict) for tool in tools):
        # transformers would turn Python functions into JSON schemas; ftfix only needs schemas.
        raise TemplateRenderError("error", "tools must be JSON-schema dicts")
    if documents is not None and not all(isinstance(doc, dict) for doc in documents):
        raise TemplateRenderError("error", "documents must be dicts")
    # Special tokens first, so explicit keyword arguments override them, as in transformers.
    extra: dict[str, Any] = _plain({**(special_tokens or {}), **kwargs})
    clashing = sorted(_RESERVED_VARIABLES.intersection(extra))
    if clashing:
        raise TemplateRenderError("error", f"variable(s) {clashing} are set by render() itself")
    return {
        "messages": chat,
        "tools": _plain(tools),
        "documents": _plain(documents),
        "add_generation_prompt": add_generation_prompt,
        **extra,
    }


class _Alarm:
    """A one-shot ``SIGALRM`` that interrupts a render in the main thread.

    At most one alarm is ever delivered per instance, and ``stop`` is idempotent, so ``render``
    can call ``stop`` again after the alarm interrupted an earlier ``stop`` and still restore
    the previous handler and timer.
    """

    def __init__(self, seconds: float, previous_handler: Any) -> None:
        self._seconds = seconds
        self._previous_handler = previous_handler
        self._previous_timer = (0.0, 0.0)
        self._started = 0.0
        self._armed = False
        self._installed = False
        self._stopped = False

    @classmethod
    def prepare(cls, seconds: float) -> _Alarm | None:
        """An alarm for this thread, not started yet, or None where no timer can be used.

        A timer needs the main thread (only it handles signals), a finite limit and a previous
        handler that can be put back. Nothing is changed yet, so that the caller holds the
        alarm before it can fire.
        """
        if not (
            math.isfinite(seconds)
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        ):
            return None
        previous = signal.getsignal(signal.SIGALRM)
        if previous is None:  # installed outside Python: signal.signal() could not restore it
            return None
        return cls(seconds, previous)

    def start(self) -> None:
        """Install the handler and start the timer, remembering the timer that was running."""
        # Stored before the handler goes in, so that stop() can restore it whenever it fires.
        self._previous_timer = signal.getitimer(signal.ITIMER_REAL)
        self._started = time.monotonic()
        self._armed = self._installed = True
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self._seconds, 1e-6))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            self._armed = False
            raise _DeadlinePassed

    def stop(self) -> None:
        """Cancel the timer and restore the previous handler and timer."""
        if self._stopped or not self._installed:
            return
        # Cancel first: an alarm already pending is handled (by our handler) right after this
        # call returns, before the previous handler is back.
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._armed = False
        signal.signal(signal.SIGALRM, self._previous_handler)
        delay, interval = self._previous_timer
        if delay > 0:
            # Someone else's timer was running: give it back what is left of it. If it should
            # have fired while we held the timer, it fires now instead.
            left = delay - (time.monotonic() - self._started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), interval)
        self._stopped = True


class _MemoryBound:
    """Lower the soft ``RLIMIT_AS`` to the current address space plus a headroom, for a render.

    A no-op where it cannot apply: no ``resource`` module or ``/proc``, a tighter limit already
    set, or another render in the process holding the bound (the limit is process-wide).
    """

    _lock = threading.Lock()

    def __init__(self, headroom: int) -> None:
        self._headroom = headroom
        self._previous: tuple[int, int] | None = None
        self._held = False

    def start(self) -> None:
        if not self._lock.acquire(blocking=False):
            return
        self._held = True
        try:
            import resource

            with open("/proc/self/statm", "rb") as statm:
                mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = mapped + self._headroom
            infinity = resource.RLIM_INFINITY
            if (soft != infinity and soft <= limit) or (hard != infinity and limit > hard):
                return
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
            self._previous = (soft, hard)
        except (ImportError, OSError, ValueError):
            return

    def stop(self) -> None:
        if not self._held:
            return
        try:
            if self._previous is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, self._previous)
                self._previous = None
        finally:
            self._held = False
            self._lock.release()


def _stream(template: jinja2.Template, variables: dict[str, Any], limits: _Limits) -> str:
    chunks: list[str] = []
    total = 0
    # Template.generate is a generator function, though typed as returning an Iterator.
    generator = cast("Generator[str, None, None]", template.generate(variables))
    try:
        for chunk in generator:
            total += len(chunk)
            if total > limits.max_chars:
                raise _OutputTooLarge(f"output passed {limits.max_chars} characters")
            if time.monotonic() > limits.deadline:
                raise _DeadlinePassed
            chunks.append(chunk)
    finally:
        generator.close()
    # Template.render joins with "" as well (Environment.concat), so streaming changes nothing.
    return "".join(chunks)


def _classify(exc: Exception) -> TemplateRenderError:
    runtime = _runtime()
    if isinstance(exc, runtime.raised_error):
        return TemplateRenderError("raised", str(exc))
    # SecurityError is a TemplateError too, so it must be told apart before anything generic.
    if isinstance(exc, runtime.security_error):
        return TemplateRenderError("security", str(exc))
    if isinstance(exc, runtime.syntax_error):
        return TemplateRenderError("syntax", f"{exc.message} (line {exc.lineno})")
    return TemplateRenderError("error", f"{type(exc).__name__}: {exc}")


_RUNAWAY: dict[str, TemplateRenderError] = {}
# Seconds spent in slow renders of each template (see _TEMPLATE_BUDGET).
_SPENT: dict[str, float] = {}


def _remember_runaway(source: str, error: TemplateRenderError) -> None:
    if len(_RUNAWAY) >= 64:
        _RUNAWAY.pop(next(iter(_RUNAWAY)))
    _RUNAWAY[source] = error
    _SPENT.pop(source, None)


def _spend(source: str, started: float) -> None:
    """Add a slow render to its template's budget; stop the template once the budget is spent."""
    elapsed = time.monotonic() - started
    if elapsed < _SLOW_RENDER:
        return
    if len(_SPENT) >= 256:
        _SPENT.pop(next(iter(_SPENT)))
    spent = _SPENT[source] = _SPENT.get(source, 0.0) + elapsed
    if spent > _TEMPLATE_BUDGET:
        _remember_runaway(
            source,
            TemplateRenderError(
                "timeout",
                f"rendering took {spent:.1f} s in total, over the {_TEMPLATE_BUDGET:g} s budget "
                "of one template",
            ),
        )


def render(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, str] | None = None,
    tools: list[dict[str, Any]] | None = None,
    documents: list[dict[str, Any]] | None = None,
    timeout: float = 2.0,
    max_chars: int = 1_000_000,
    **kwargs: Any,
) -> str:
    """Render a chat template as ``tokenizer.apply_chat_template(..., tokenize=False)`` would.

    Args:
        source: The Jinja source of the chat template.
        messages: The conversation. Keys whose value is None are dropped, as transformers does.
        add_generation_prompt: Passed to the template as ``add_generation_prompt``.
        special_tokens: The tokenizer's ``special_tokens_map`` (``bos_token`` and so on), passed
            as template variables.
        tools: JSON-schema tool definitions, passed as ``tools``.
        documents: Retrieval documents (dicts), passed as ``documents``.
        timeout: Wall-clock limit in seconds for compiling and rendering (``math.inf`` for
            none). Enforced by ``SIGALRM`` in the main thread and by deadline checks elsewhere;
            see the module docstring for what the checks cannot interrupt.
        max_chars: The most characters the output may have.
        **kwargs: Further template variables; they override special tokens of the same name.
            The arguments ``apply_chat_template`` consumes itself (``continue_final_message``,
            ``tokenize``, ...) are not supported and give an ``"error"``.

    Returns:
        The rendered text.

    Raises:
        TemplateRenderError: For every failure; ``kind`` says which (see the class). Inputs
            transformers would refuse before rendering (an empty conversation, a message that
            is not a mapping, tools that are not dicts) are ``"error"`` too.
    """
    runaway = _RUNAWAY.get(source)
    if runaway is not None:
        # A template that already ran away is not run again: every rule renders each template
        # several times, and a hostile one would cost the full time limit on each call.
        raise TemplateRenderError(runaway.kind, runaway.message)
    limits = _Limits(
        deadline=time.monotonic() + timeout if math.isfinite(timeout) else math.inf,
        max_chars=max_chars,
    )
    alarm = _Alarm.prepare(timeout)
    bound = _MemoryBound(_MEMORY_HEADROOM)
    token = _LIMITS.set(limits)
    started = time.monotonic()
    try:
        try:
            bound.start()
            if alarm is not None:
                alarm.start()
            variables = _template_variables(
                messages, add_generation_prompt, special_tokens, tools, documents, kwargs
            )
            return _stream(compile_template(source), variables, limits)
        finally:
            if alarm is not None:
                alarm.stop()
            bound.stop()
            _spend(source, started)
    except _DeadlinePassed:
        if alarm is not None:
            alarm.stop()  # the alarm may have interrupted the stop() above
        error = TemplateRenderError("timeout", f"rendering took longer than {timeout:g} s")
        _remember_runaway(source, error)
        raise error from None
    except TemplateRenderError:
        raise
    except _OutputTooLarge as exc:
        error = TemplateRenderError("too-large", str(exc))
        _remember_runaway(source, error)
        raise error from None
    except MemoryError:
        error = TemplateRenderError(
            "too-large", f"rendering needed more than {_MEMORY_HEADROOM >> 20} MiB of memory"
        )
        _remember_runaway(source, error)
        raise error from None
    except Exception as exc:
        raise _classify(exc) from exc
    finally:
        _LIMITS.reset(token)


@dataclasses.dataclass(frozen=True)
class Probe:
    """A fixed conversation used to exercise a chat template.

    Attributes:
        name: A short identifier, e.g. ``"system-user"``.
        messages: Read-only ``{"role": ..., "content": ...}`` messages.
    """

    name: str
    messages: tuple[Mapping[str, str], ...]


def _message(role: str, content: str) -> Mapping[str, str]:
    return MappingProxyType({"role": role, "content": content})


_SYSTEM = _message("system", "you are helpful")
_PROBES: Final = (
    Probe("user", (_message("user", "hello"),)),
    Probe("system-user", (_SYSTEM, _message("user", "hello"))),
    Probe(
        "multi-turn",
        (
            _message("user", "hello"),
            _message("assistant", "hi there"),
            _message("user", "how are you"),
        ),
    ),
    Probe(
        "assistant-last", (_message("user", "how are you"), _message("assistant", "fine thanks"))
    ),
    Probe(
        "system-multi-turn",
        (
            _SYSTEM,
            _message("user", "hello"),
            _message("assistant", "hi there"),
            _message("user", "how are you"),
        ),
    ),
)


def probe_conversations() -> tuple[Probe, ...]:
    """Return the conversation shapes ftfix renders every chat template with.

    The shapes are ``user`` (one user turn), ``system-user``, ``multi-turn`` (user, assistant,
    user), ``assistant-last`` (user, assistant) and ``system-multi-turn`` (system, user,
    assistant, user). Contents are short plain words (``hello``, ``hi there``, ``how are you``,
    ``fine thanks``, ``you are helpful``) that a tiny test vocabulary can encode and that contain
    no markup or sentinel strings, so whatever else appears in a render comes from the template.
    Within a conversation each turn's content is distinct, so its position can be found.

    Returns:
        The probes, in a fixed order.
    """
    return _PROBES


def render_probe(
    source: str,
    probe: Probe,
    *,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, str] | None = None,
    timeout: float = 2.0,
    max_chars: int = 1_000_000,
) -> str | TemplateRenderError:
    """Render a probe conversation, returning the error instead of raising it.

    Args:
        source: The Jinja source of the chat template.
        probe: One of ``probe_conversations()``.
        add_generation_prompt: Passed to the template.
        special_tokens: The tokenizer's special tokens, passed as template variables.
        timeout: As for ``render``.
        max_chars: As for ``render``.

    Returns:
        The rendered text, or the ``TemplateRenderError`` that ``render`` raised.
    """
    try:
        return render(
            source,
            probe.messages,
            add_generation_prompt=add_generation_prompt,
            special_tokens=special_tokens,
            timeout=timeout,
            max_chars=max_chars,
        )
    except TemplateRenderError as exc:
        return exc
