"""The Fixer base class: what every rule is."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from ..analysis.context import Context, Need, Options
from ..analysis.gguf import GGUFContext
from ..findings import Finding, Fix, Severity

__all__ = [
    "Context",
    "Fixer",
    "GGUFContext",
    "GGUFFixer",
    "Need",
    "Options",
]  # re-exported for rule modules


class Fixer(ABC):
    """One rule: a code, a name, a severity, and a side-effect-free `check()`.

    The class docstring is the rule's user documentation (`ftfix explain CODE`), with the
    sections listed in `ftfix.registry.REQUIRED_SECTIONS`.

    `needs` lists the inputs the rule cannot judge without. The default, `{Need.BASE}`, runs the
    rule only when a base is available. A rule that can judge the fine-tune alone sets
    `needs = frozenset()` (or `{Need.TOKENIZER}`, ...) and reads `ctx.base_or_none`; reading
    `ctx.base` when there is none skips the rule at that point, it never fails the run.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    needs: ClassVar[frozenset[Need]] = frozenset({Need.BASE})
    # Other severities a finding may take when evidence decides (one truth: the rules table,
    # `ftfix explain` and `ftfix rules` show them all; a test holds the modules to them).
    other_severities: ClassVar[tuple[Severity, ...]] = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code} {self.name}>"

    @abstractmethod
    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield findings about `ctx.target`; never write, never print."""

    @classmethod
    def severities(cls) -> tuple[Severity, ...]:
        """Every severity this rule's findings may have, worst first."""
        found = {cls.severity, *cls.other_severities}
        return tuple(sorted(found, key=lambda s: -s.rank))

    @classmethod
    def severity_label(cls) -> str:
        """`error` or `error/warning`: what the rules table and `explain` show."""
        return "/".join(s.value for s in cls.severities())

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
        """Build a Finding of this rule.

        `severity` should be one the rule declares (`severities()`); tests/test_registry.py
        holds every rule module to that.
        """
        return Finding(
            code=self.code,
            name=self.name,
            severity=severity or self.severity,
            message=message,
            path=path,
            fix=fix,
            data=dict(data or {}),
        )


class GGUFFixer(Fixer):
    """A rule about a GGUF file (`ftfix check BASE model.gguf`); silent on folders."""

    needs: ClassVar[frozenset[Need]] = frozenset()  # judges a GGUF file, base or not

    def check(self, ctx: Context) -> Iterator[Finding]:
        """GGUF rules judge GGUF files only: nothing to say about a folder."""
        return iter(())

    @abstractmethod
    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield findings about `ctx.meta`; never write, never print."""
