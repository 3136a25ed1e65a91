"""Repair a fine-tune on the Hub by pull request: the planned small-file edits become one PR.

Only safe fixes whose edits are whole small files (configs, tokenizer files, templates) are
pushed; row edits, grown tensors, rewritten weight headers and unsafe fixes are never pushed,
only reported. The PR's description is generated from the findings: what was wrong, the
evidence, what changed (the diff).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import api, registry
from ._version import __version__
from .errors import CheckpointNotFoundError, UsageError
from .findings import FileEdit, Finding, Severity
from .io.remote import WEIGHT_PATTERNS, _matches
from .plan import Plan
from .report import Report

__all__ = ["describe", "repair_by_pull_request"]

PathLike = str | os.PathLike[str]


def _pushable(plan: Plan) -> tuple[dict[str, FileEdit], list[Finding], list[Finding]]:
    """(edits to push, findings they fix, applied findings left out: they change weights)."""
    tensor_files = {e.path for e in plan.tensor_edits}
    fixed, left = [], []
    edits: dict[str, FileEdit] = {}
    for finding in plan.applied:
        mine = finding.fix.edits if finding.fix is not None else ()
        small = all(
            isinstance(e, FileEdit)
            and not _matches(e.path, WEIGHT_PATTERNS)
            and e.path not in tensor_files
            for e in mine
        )
        if small and mine:
            fixed.append(finding)
            for edit in mine:
                assert isinstance(edit, FileEdit)
                edits[edit.path] = plan.file_edits.get(edit.path, edit)  # the merged edit
        else:
            left.append(finding)
    return edits, fixed, left


def _diff(edits: dict[str, FileEdit]) -> str:
    return Plan(file_edits=dict(edits)).diff()


def describe(
    repo_id: str,
    revision: str,
    *,
    fixed: Sequence[Finding],
    not_fixed: Sequence[Finding],
    edits: dict[str, FileEdit],
    base: str | None,
) -> tuple[str, str]:
    """The pull request's title and description (Markdown), from the findings and the diff."""
    titles = list(dict.fromkeys(f.fix.title for f in fixed if f.fix is not None))
    title = "ftfix: " + "; ".join(titles)
    if len(title) > 96:
        title = f"ftfix: fix {len(fixed)} problem{'s' if len(fixed) != 1 else ''} in " + ", ".join(
            sorted(edits)
        )
        title = title if len(title) <= 96 else title[:93] + "..."
    lines = [
        f"[ftfix](https://pypi.org/project/ftfix/) {__version__} checked this repository at "
        f"`{revision[:12]}`"
        + (f" against its base `{base}`" if base else "")
        + f" and found {len(fixed) + len(not_fixed)} problem"
        + ("s" if len(fixed) + len(not_fixed) != 1 else "")
        + f". This pull request fixes {len(fixed)} of them by changing small files only "
        "(no weights).",
        "",
        "## What was wrong, and what this changes",
        "",
    ]
    for finding in fixed:
        rule = registry.get(finding.code)
        where = f" (`{finding.path}`)" if finding.path else ""
        lines.append(f"- **{finding.code} `{finding.name}`** ({finding.severity.value}){where}:")
        lines.append(f"  {finding.message}")
        lines.append(f"  *Why it matters:* {rule.summary()}")
        if finding.fix is not None:
            lines.append(f"  *Change:* {finding.fix.title}.")
    if not_fixed:
        lines += ["", "## Not changed by this pull request", ""]
        for finding in not_fixed:
            where = f" (`{finding.path}`)" if finding.path else ""
            why = (
                "its fix changes weights or replaces content (unsafe): not pushed"
                if finding.fixable
                else "no automatic fix"
            )
            lines.append(
                f"- **{finding.code} `{finding.name}`** ({finding.severity.value}){where}: "
                f"{finding.message} — {why}."
            )
    lines += ["", "## Diff", "", "```diff", _diff(edits).rstrip("\n"), "```", ""]
    lines.append(f"Reproduce: `ftfix repair {base + ' ' if base else ''}{repo_id} --pr --dry-run`.")
    return title, "\n".join(lines) + "\n"


def repair_by_pull_request(
    base: PathLike | None,
    repo_id: str,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    dry_run: bool = False,
    fail_on: Severity | str = Severity.ERROR,
    template: PathLike | str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Report:
    """Check `repo_id` on the Hub and open one pull request with its small-file fixes.

    Returns:
        `Report`: mode `"dry-run"` or `"repair"`; `remaining` is what a re-check of the
        repository with the PR merged finds; `pull_request` has the title, the description,
        the files and (unless `dry_run`) the PR's URL.

    Raises:
        `CheckpointNotFoundError`: no such repository, or private/gated without a token; or
            the push was refused (no token with write access).
    """
    fixers = registry.resolve(select, ignore)
    options = api._options(template, base_id=api._given_base_id(base))
    found, target, hub = api._prepare(base, repo_id, writer=False, revision=revision)
    if hub is None:
        raise UsageError(
            repo_id, "is not reachable on the Hub (offline?)", hint="unset HF_HUB_OFFLINE"
        )
    try:
        plan = api._build(found, target, fixers, options, apply_fixes=True, unsafe_fixes=False)
        edits, fixed, left = _pushable(plan)
        staged = target.staged({path: edit.after for path, edit in edits.items()})
        recheck = api._build(found, staged, fixers, options, apply_fixes=False)
    finally:
        hub.close()
    report = api._report("dry-run" if dry_run else "repair", found, target, plan, fail_on, fixers)
    report.applied = list(fixed)
    for finding in left:
        report.skipped[finding.key()] = "changes weights: never pushed"
    report.remaining = list(recheck.findings)
    report.diff = _diff(edits)
    fixed_keys = {f.key() for f in fixed}
    not_fixed = [f for f in plan.findings if f.key() not in fixed_keys]
    title, description = describe(
        repo_id, hub.revision, fixed=fixed, not_fixed=not_fixed, edits=edits, base=report.base
    )
    pull: dict[str, Any] = {
        "repo_id": repo_id,
        "parent_commit": hub.revision,
        "title": title,
        "description": description,
        "files": sorted(edits),
        "url": None,
    }
    report.fetched = {"repo_id": hub.repo_id, "revision": hub.revision, **hub.transfer.to_dict()}
    report.pull_request = pull
    if dry_run or not edits:
        return report
    pull["url"] = _push(repo_id, hub.revision, edits, title, description, token)
    report.written = sorted(edits)
    return report


def _push(
    repo_id: str,
    parent: str,
    edits: dict[str, FileEdit],
    title: str,
    description: str,
    token: str | bool | None,
) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api_ = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    operations = [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=edit.after)
        for path, edit in sorted(edits.items())
    ]
    try:
        info = api_.create_commit(
            repo_id,
            operations,
            commit_message=title,
            commit_description=description,
            create_pr=True,
            parent_commit=parent,
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise CheckpointNotFoundError(
                repo_id,
                "the Hub refused the pull request: no token, or one without write access",
                hint="`hf auth login` (or set HF_TOKEN) with a token that can open pull "
                "requests; `--dry-run` shows the PR without a token",
            ) from exc
        raise CheckpointNotFoundError(
            repo_id, f"the pull request could not be opened: {exc}", hint="try again"
        ) from exc
    return str(info.pr_url)
