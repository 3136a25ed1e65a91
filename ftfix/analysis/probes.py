"""Render a chat template over the probe conversations and compare the results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .render import TemplateRenderError, compile_template, probe_conversations, render

__all__ = ["ProbeRender", "TemplateRenders", "first_difference", "render_all"]


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
