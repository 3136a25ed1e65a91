"""The Context a rule reads through: base, staged target, user options, shared render cache."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..io.checkpoint import Checkpoint
from .probes import TemplateRenders, render_all

__all__ = ["Context", "Options"]


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
