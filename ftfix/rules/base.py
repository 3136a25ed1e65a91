"""The Fixer base class and the Context a rule reads through."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..findings import Finding, Fix, Severity
from ..io.checkpoint import Checkpoint
from ..probes import TemplateRenders, render_all

__all__ = ["Context", "Fixer", "Options"]


@dataclass(frozen=True)
class Options:
    """User options rules may read.

    Args:
        template (`str`, *optional*): a chat template the user says the model was trained with.
        init (`str`, *optional*, defaults to `"mean"`): how embedding repairs initialise rows:
            `"mean"` (mean of trained rows) or `"subtokens"` (mean of the rows of the pieces the
            token's text splits into).
    """

    template: str | None = None
    init: str = "mean"


@dataclass
class Context:
    """What a rule sees: the base, the target through the edits planned so far, and options."""

    base: Checkpoint
    target: Checkpoint
    options: Options = field(default_factory=Options)
    _render_cache: dict[tuple[str, tuple[tuple[str, str], ...]], TemplateRenders] = field(
        default_factory=dict, repr=False
    )

    def renders(self, source: str, special_tokens: Mapping[str, str]) -> TemplateRenders:
        """Render `source` over every probe conversation, with and without the generation prompt.

        Cached per (template, special tokens), and shared by all rules of one run.
        """
        key = (source, tuple(sorted(special_tokens.items())))
        if key not in self._render_cache:
            self._render_cache[key] = render_all(source, special_tokens)
        return self._render_cache[key]

    def with_target(self, target: Checkpoint) -> Context:
        """The same context with a new staged target (the render cache is kept)."""
        return Context(self.base, target, self.options, self._render_cache)


class Fixer(ABC):
    """One rule: a code, a name, a severity, and a side-effect-free `check()`.

    The class docstring is the rule's user documentation (`ftfix explain CODE`), with the
    sections listed in `ftfix.registry.REQUIRED_SECTIONS`.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code} {self.name}>"

    @abstractmethod
    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield findings about `ctx.target`; never write, never print."""

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return inspect.cleandoc(cls.__doc__ or "").splitlines()[0]

    @classmethod
    def documentation(cls) -> str:
        """The whole docstring, dedented: what `ftfix explain` prints."""
        return inspect.cleandoc(cls.__doc__ or "")

    def finding(
        self,
        message: str,
        *,
        path: str | None = None,
        fix: Fix | None = None,
        severity: Severity | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Finding:
        """Build a Finding of this rule."""
        return Finding(
            code=self.code,
            name=self.name,
            severity=severity or self.severity,
            message=message,
            path=path,
            fix=fix,
            data=dict(data or {}),
        )
