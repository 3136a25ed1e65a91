"""The result of a check or repair: findings, what was fixed, what remains; text, JSON, HTML."""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .findings import Applicability, Finding, RuleFailure, RuleSkip, Severity
from .runtimes import Answer
from .runtimes.table import render_html as runtimes_html
from .runtimes.table import render_text as runtimes_text

__all__ = ["JSON_SCHEMA_VERSION", "Report"]

JSON_SCHEMA_VERSION = 1
_EDIT_KINDS = {
    "FileEdit": "file",
    "TensorRowsEdit": "tensor-rows",
    "TensorResizeEdit": "tensor-resize",
}
Mode = Literal["check", "dry-run", "repair"]


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class Report:
    """What `ftfix.check()` / `ftfix.repair()` found and did.

    Args:
        base (`str`, *optional*): the base as given or found, `None` when there is none.
        finetuned (`str`): the fine-tuned checkpoint as given (the folder actually checked).
        mode (`str`): `"check"`, `"dry-run"` or `"repair"`.
        findings (`list[Finding]`): what was found before any fix.
        applied (`list[Finding]`): findings whose fix was written (repair) or would be (dry-run).
        skipped (`dict`): finding key -> why its fix was not applied.
        remaining (`list[Finding]`): problems left: a re-check after a repair, else the unfixed.
        errors (`list[str]`): fixes that did not hold, and other failures of the run.
        diff (`str`): unified diff of the planned edits.
        written (`list[str]`): files changed (repair only).
        backup (`str`, *optional*): backup folder of this repair (for `ftfix undo`).
        output (`str`, *optional*): where the repaired copy was written, with `output=`.
        fail_on (`Severity`): the lowest severity that fails (`exit_code` 1).
        base_source (`str`, *optional*): where the base came from: `"given"`, or the file that
            names it (`adapter_config.json`, `config.json`, `README.md`, a trainer root's).
        skipped_rules (`list[RuleSkip]`): rules not run for want of an input (the base, a
            readable file), with why; printed as one notice.
        internal_errors (`list[RuleFailure]`): rules that raised (a bug in ftfix); the other
            rules ran; `exit_code` 3.
        runtimes (`list[Answer]`): each runtime's answer, when asked for (`runtimes=True`).
        checked (`list[str]`): codes of the rules selected for this run (run or skipped), for
            reports with one entry per rule (JUnit).
        fetched (`dict`, *optional*): for a fine-tune on the Hub, the repo, the revision read
            and the bytes fetched (small files, weight headers and rows, range requests).
        pull_request (`dict`, *optional*): `repair --pr` of a Hub repo: `title`,
            `description`, `files`, `parent_commit`, and `url` once opened (`None` on a dry run).
    """

    base: str | None
    finetuned: str
    mode: Mode
    findings: list[Finding] = field(default_factory=list)
    applied: list[Finding] = field(default_factory=list)
    skipped: dict[tuple[str, str | None], str] = field(default_factory=dict)
    remaining: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    diff: str = ""
    written: list[str] = field(default_factory=list)
    backup: str | None = None
    output: str | None = None
    fail_on: Severity = Severity.ERROR
    base_source: str | None = None
    skipped_rules: list[RuleSkip] = field(default_factory=list)
    internal_errors: list[RuleFailure] = field(default_factory=list)
    runtimes: list[Answer] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    fetched: dict[str, Any] | None = None
    pull_request: dict[str, Any] | None = None

    # ------------------------------------------------------------- verdict
    @property
    def ok(self) -> bool:
        """No error remains (or nothing at `fail_on` or above) and the run had no errors."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """0 clean, 1 problems at or above `fail_on` remain, 2 the run failed, 3 a rule failed."""
        if self.errors:
            return 2
        if self.internal_errors:
            return 3
        if any(f.severity.rank >= self.fail_on.rank for f in self.remaining):
            return 1
        return 0

    def _where(self, finding: Finding) -> str:
        root = self.output or self.finetuned
        return f"{root.rstrip('/')}/{finding.path}" if finding.path else root

    def _line(self, finding: Finding, marker: str = "") -> str:
        where, sev = self._where(finding), finding.severity.value
        return f"{where}: {finding.code} {sev} {marker}{finding.message}"

    # ---------------------------------------------------------------- text
    def notice(self) -> str | None:
        """One plain note: which rules were skipped, why, and how to run them; `None` if none."""
        if not self.skipped_rules:
            return None
        groups: dict[tuple[str, str], list[str]] = {}
        for skip in self.skipped_rules:
            groups.setdefault((skip.needs, skip.reason), []).append(skip.code)
        parts = [
            f"{_plural(len(codes), 'check')} that need {needs} ({', '.join(codes)}): {reason}"
            for (needs, reason), codes in groups.items()
        ]
        return "note: skipped " + "; ".join(parts) + "."

    def render_text(self, *, show_fixes: bool = True, debug: bool = False) -> str:
        """ruff-like lines (`path: CODE severity [*] message`), a notice, and a summary.

        With `debug`, the traceback of each rule that failed follows its line.
        """
        lines = []
        applied = {f.key() for f in self.applied}
        shown: Sequence[Finding] = self.findings
        for finding in shown:
            if finding.key() in applied:
                marker = "[fixed] " if self.mode == "repair" else "[*] "
            elif finding.fix and finding.fix.applicability is Applicability.SAFE:
                marker = "[*] "
            else:
                marker = ""
            lines.append(self._line(finding, marker))
            if show_fixes and finding.fix and finding.key() not in applied and self.mode != "check":
                reason = self.skipped.get(finding.key())
                if reason and reason not in ("no fix", "check only"):
                    lines.append(f"  fix not applied: {finding.fix.title} - {reason}")
        if self.mode == "repair":
            for finding in self.remaining:
                if finding.key() not in {f.key() for f in self.findings}:
                    lines.append(self._line(finding))
        for error in self.errors:
            lines.append(f"error: {error}")
        for failure in self.internal_errors:
            lines.append(
                f"internal error: {failure.code} {failure.name} failed: {failure.message} "
                "(the other checks ran; please report it"
                + (")" if debug else ", with the traceback --debug prints)")
            )
            if debug and failure.traceback:
                lines.append(failure.traceback.rstrip())
        notice = self.notice()
        if notice:
            lines.append(notice)
        if self.runtimes:
            lines.append(runtimes_text(self.runtimes))
        if self.fetched:
            lines.append(self.fetched_line())
        if self.pull_request:
            lines.append(self.pull_request_text())
        lines.append(self.summary())
        return "\n".join(lines)

    def pull_request_text(self) -> str:
        """The pull request opened (its URL), or on a dry run the one that would be."""
        pr = self.pull_request or {}
        files = ", ".join(pr.get("files", []))
        if not files:
            return f"No pull request: nothing in {pr.get('repo_id')} can be fixed by small files."
        if pr.get("url"):
            return f"Opened a pull request on {pr.get('repo_id')} ({files}): {pr['url']}"
        body = "\n".join("  " + line if line else "" for line in pr["description"].splitlines())
        return (
            f"Would open a pull request on {pr.get('repo_id')} changing {files}:\n"
            f"  title: {pr['title']}\n{body}"
        )

    def fetched_line(self) -> str:
        """What reading a fine-tune on the Hub cost, in one line."""
        f = self.fetched or {}
        weights = f.get("weight_file_bytes", 0)
        parts = [
            f"small files {_size(f.get('small_file_bytes', 0))} "
            f"({len(f.get('downloaded', []))} downloaded, {len(f.get('cached', []))} from the "
            f"cache, {len(f.get('from_base', []))} identical to the base's)",
            f"weights {_size(f.get('weight_bytes', 0))} of {_size(weights)} in "
            f"{_plural(f.get('range_requests', 0), 'range request')}",
        ]
        rev = str(f.get("revision", ""))[:12]
        return (
            f"Read {f.get('repo_id')} at {rev} from the Hub: fetched "
            f"{_size(f.get('bytes', 0))}: " + "; ".join(parts) + "."
        )

    def summary(self) -> str:
        """One or two closing lines: counts, what to run next."""
        if not self.findings and not self.remaining and not self.errors:
            if self.internal_errors:
                return f"No problems found; {_plural(len(self.internal_errors), 'check')} failed."
            return "All checks passed." if not self.skipped_rules else "All checks run passed."
        parts = []
        if self.mode == "check":
            parts.append(f"Found {self._counts(self.findings)}.")
            safe = sum(
                1 for f in self.findings if f.fix and f.fix.applicability is Applicability.SAFE
            )
            unsafe = sum(
                1 for f in self.findings if f.fix and f.fix.applicability is Applicability.UNSAFE
            )
            if safe:
                parts.append(f'{safe} fixable with "ftfix repair".')
            if unsafe:
                parts.append(f"{unsafe} more with --unsafe-fixes.")
        else:
            verb = "Would fix" if self.mode == "dry-run" else "Fixed"
            parts.append(f"{verb} {_plural(len(self.applied), 'problem')};")
            left = self.remaining
            parts.append(f"{self._counts(left)} remaining." if left else "none remaining.")
            if self.backup:
                parts.append(f'Backup in {self.backup}; "ftfix undo {self.finetuned}" restores it.')
        notes = [
            f"Note ({f.code}): {f.data['takes_effect']}."
            for f in self.applied
            if f.data.get("takes_effect")
        ]
        return " ".join(parts) + "".join("\n" + note for note in notes)

    @staticmethod
    def _counts(findings: Sequence[Finding]) -> str:
        by = Counter(f.severity for f in findings)
        detail = ", ".join(
            _plural(by[s], s.value)
            for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)
            if by[s]
        )
        return f"{_plural(len(findings), 'problem')}" + (f" ({detail})" if detail else "")

    def __str__(self) -> str:
        return self.render_text()

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """The stable JSON document (schema version `JSON_SCHEMA_VERSION`, see README)."""
        from ._version import __version__
        from .registry import get

        applied = {f.key() for f in self.applied}

        def item(finding: Finding) -> dict[str, Any]:
            fix = None
            if finding.fix is not None:
                fix = {
                    "title": finding.fix.title,
                    "applicability": finding.fix.applicability.value,
                    "applied": finding.key() in applied,
                    "skipped_reason": self.skipped.get(finding.key()),
                    "edits": [
                        {"path": e.path, "kind": _EDIT_KINDS.get(type(e).__name__, "file")}
                        for e in finding.fix.edits
                    ],
                }
            return {
                "code": finding.code,
                "name": finding.name,
                "severity": finding.severity.value,
                "message": finding.message,
                "path": finding.path,
                "fix": fix,
                "data": dict(finding.data),
                "explanation": get(finding.code).summary(),
            }

        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "ftfix_version": __version__,
            "mode": self.mode,
            "base": self.base,
            "finetuned": self.finetuned,
            "output": self.output,
            "findings": [item(f) for f in self.findings],
            "remaining": [item(f) for f in self.remaining],
            "written": list(self.written),
            "backup": self.backup,
            "errors": list(self.errors),
            "exit_code": self.exit_code,
            "base_source": self.base_source,
            "skipped_rules": [
                {"code": s.code, "name": s.name, "needs": s.needs, "reason": s.reason}
                for s in self.skipped_rules
            ],
            "internal_errors": [
                {"code": f.code, "name": f.name, "message": f.message, "traceback": f.traceback}
                for f in self.internal_errors
            ],
            **({"runtimes": [a.to_dict() for a in self.runtimes]} if self.runtimes else {}),
            "fetched": self.fetched,
            "pull_request": self.pull_request,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """`to_dict()` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    # ---------------------------------------------------------------- HTML
    def _repr_html_(self) -> str:
        """A table for notebooks."""
        applied = {f.key() for f in self.applied}
        rows = []
        for finding in self.findings or self.remaining:
            status = (
                "fixed"
                if finding.key() in applied and self.mode == "repair"
                else (
                    "would fix"
                    if finding.key() in applied
                    else ("fix available" if finding.fixable else "")
                )
            )
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(cell))}</td>"
                    for cell in (
                        finding.code,
                        finding.severity.value,
                        finding.path or "",
                        finding.message,
                        status,
                    )
                )
                + "</tr>"
            )
        head = "".join(f"<th>{h}</th>" for h in ("code", "severity", "path", "message", "status"))
        table = (
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            if rows
            else ""
        )
        return (
            f"<div><p><b>ftfix {html.escape(self.mode)}</b> {html.escape(self.finetuned)} "
            f"(base {html.escape(self.base or 'none')})</p>{table}"
            + (runtimes_html(self.runtimes) if self.runtimes else "")
            + f"<p>{html.escape(self.summary())}</p></div>"
        )
