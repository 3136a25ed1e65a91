"""FTX900 git-lfs-pointer."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Finding, Severity
from ...io.problems import ProblemKind
from ...registry import register
from ..base import Fixer
from ._report import problems_of


@register
class GitLfsPointer(Fixer):
    """A file of the checkpoint is a Git LFS pointer, not the file it stands for.

    ## What it checks
    Every file of the folder (JSON, Jinja, safetensors, `.bin`, `tokenizer.model`,
    `vocab.json`, `merges.txt`, ...) for the Git LFS pointer text: `version
    https://git-lfs.github.com/spec/v1`, an `oid` and the `size` of the real file.

    ## Why is this bad?
    A repository cloned without Git LFS (or with `GIT_LFS_SKIP_SMUDGE=1`) holds a 130-byte
    text where a 2 GB shard or a tokenizer.json should be. Every loader fails on it with an
    unrelated message ("header too large", "invalid JSON"), and ftfix cannot check what the
    file would have said: the checks that need it are skipped.

    ## Example
    `model-00001-of-00004.safetensors` is `version https://git-lfs.github.com/spec/v1`,
    `oid sha256:...`, `size 4976698672`.

    ## Fix
    Run `git lfs pull` in the clone (or download the file from where the model is published),
    then check again.

    ## Fix safety
    No fix is offered: ftfix cannot create the missing content.
    """

    code = "FTX900"
    name = "git-lfs-pointer"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per pointer file."""
        yield from problems_of(self, ctx, ProblemKind.LFS_POINTER)
