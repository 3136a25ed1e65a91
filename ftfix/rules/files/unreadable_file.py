"""FTX901 unreadable-file."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.problems import ProblemKind
from ...registry import register
from ..base import Fixer
from ._report import problems_of


@register
class UnreadableFile(Fixer):
    """A file of the checkpoint is damaged: it does not parse as what its name says.

    ## What it checks
    The files ftfix reads: the JSON configs (config.json, generation_config.json,
    tokenizer_config.json, special_tokens_map.json, added_tokens.json, adapter_config.json,
    the safetensors index, chat_template.json, the processor configs), tokenizer.json, the
    `.jinja` templates, and the safetensors headers (truncated file, header that is not JSON,
    offsets past the end, an index that names tensors its shards lack or paths outside the
    folder).

    ## Why is this bad?
    transformers, vLLM and llama.cpp fail to load a checkpoint with any of these files
    damaged. ftfix reports it and skips only the checks that need the file.

    ## Example
    A `tokenizer_config.json` cut off mid-way by an interrupted copy: `{"chat_template": "...`.

    ## Fix
    Copy the file again from where it came from (the base model for tokenizer files), or
    re-save the model with `save_pretrained()`.

    ## Fix safety
    No fix is offered: ftfix does not guess the content of a damaged file.
    """

    code = "FTX901"
    name = "unreadable-file"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per damaged file."""
        yield from problems_of(self, ctx, ProblemKind.UNREADABLE)
