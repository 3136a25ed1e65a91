"""The Context a rule reads through: base, staged target, user options, shared render cache."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..io.checkpoint import Checkpoint
from ..io.samples import TrainingSample
from .probes import ShapeRenders, TemplateRenders, render_all, render_shapes

__all__ = ["Context", "InputMissing", "Need", "Options"]


class Need(str, Enum):
    """An input a rule cannot judge without (declared in `Fixer.needs`).

    The runner skips a rule whose need is not met, records why, and runs the others.
    `BASE`: the base's small files (configs, tokenizer, templates). `BASE_WEIGHTS`: the base's
    safetensors (a base fetched from the Hub has only its small files). `WEIGHTS`: the
    fine-tune's safetensors, readable (a folder without weights meets it: there is nothing to
    read). `TOKENIZER`: the fine-tune's tokenizer.json, parsed (likewise met when absent).
    """

    BASE = "base"
    BASE_WEIGHTS = "base-weights"
    WEIGHTS = "weights"
    TOKENIZER = "tokenizer"

    @property
    def describe(self) -> str:
        """What the need is, for the skip notice ("they need ...")."""
        return {
            "base": "the base model",
            "base-weights": "the base model's weights",
            "weights": "the fine-tune's weights",
            "tokenizer": "the fine-tune's tokenizer.json",
        }[self.value]


class InputMissing(LookupError):
    """Raised by `Context.base` when there is no base: the runner skips the rule, not fails it.

    Args:
        need (`Need`): what was asked for.
    """

    def __init__(self, need: Need):
        self.need = need
        super().__init__(need.describe)


@dataclass(frozen=True)
class Options:
    """User options rules may read.

    Args:
        template (`str`, *optional*): a chat template the user says the model was trained with.
        init (`str`, *optional*, defaults to `"mean"`): how embedding repairs initialise rows:
            `"mean"` (mean of trained rows) or `"subtokens"` (mean of the rows of the pieces the
            token's text splits into).
        base_id (`str`, *optional*): the base as the user named it when it is a Hub id
            (`org/name`); rules may write it into files that should name the base.
        trained_on (`tuple[TrainingSample, ...]`): training rows as the trainer fed them
            (`--trained-on FILE.jsonl`), compared with what the saved template renders.
    """

    template: str | None = None
    init: str = "mean"
    base_id: str | None = None
    trained_on: tuple[TrainingSample, ...] = ()


@dataclass
class Context:
    """What a rule sees: the base (if any), the target through the edits planned so far, options.

    `ctx.base` is the base checkpoint; reading it when there is none raises `InputMissing`,
    which skips the rule (it never fails the run). A rule that can judge without the base
    declares `needs` without `Need.BASE` and reads `ctx.base_or_none` instead.
    """

    base_or_none: Checkpoint | None
    target: Checkpoint
    options: Options = field(default_factory=Options)
    _render_cache: dict[tuple[str, tuple[tuple[str, str], ...]], TemplateRenders] = field(
        default_factory=dict, repr=False
    )
    _shape_cache: dict[tuple[str, tuple[tuple[str, str], ...]], ShapeRenders] = field(
        default_factory=dict, repr=False
    )

    @property
    def base(self) -> Checkpoint:
        """The base checkpoint.

        Raises:
            `InputMissing`: there is no base (the runner skips the rule that asked).
        """
        if self.base_or_none is None:
            raise InputMissing(Need.BASE)
        return self.base_or_none

    @property
    def has_base(self) -> bool:
        """Whether a base is available."""
        return self.base_or_none is not None

    def renders(self, source: str, special_tokens: Mapping[str, str]) -> TemplateRenders:
        """Render `source` over every probe conversation, with and without the generation prompt.

        Cached per (template, special tokens), and shared by all rules of one run.
        """
        key = (source, tuple(sorted(special_tokens.items())))
        if key not in self._render_cache:
            self._render_cache[key] = render_all(source, special_tokens)
        return self._render_cache[key]

    def shape_renders(self, source: str, special_tokens: Mapping[str, str]) -> ShapeRenders:
        """Render `source` over the shapes of today's chat (`probes.shapes()`), cached per run."""
        key = (source, tuple(sorted(special_tokens.items())))
        if key not in self._shape_cache:
            self._shape_cache[key] = render_shapes(source, special_tokens)
        return self._shape_cache[key]

    def with_target(self, target: Checkpoint) -> Context:
        """The same context with a new staged target (the render caches are kept)."""
        return Context(
            self.base_or_none, target, self.options, self._render_cache, self._shape_cache
        )
