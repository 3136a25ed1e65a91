"""Reports in the formats CI systems read: GitHub workflow annotations, SARIF 2.1.0, JUnit XML.

Each renderer takes every report of one run (one per checkpoint) and returns one document. What
is judged is what is wrong now: the findings of a check or dry run, what remains after a repair.
Findings carry no line numbers (they are about files and their keys), so annotations and SARIF
regions point at line 1 of the file; a finding about the whole folder points at the folder.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import registry
from ._version import __version__
from .findings import Finding, Severity
from .report import Report

__all__ = ["FORMATS", "github", "junit", "render", "sarif"]

FORMATS = ("github", "sarif", "junit")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
# XML 1.0 forbids most control characters even escaped; token texts may hold some.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _judged(report: Report) -> list[Finding]:
    """What is wrong now: a repair's re-check, else the findings."""
    return list(report.remaining if report.mode == "repair" else report.findings)


def _relative(path: str) -> str:
    """`path` relative to the working directory when it lies inside it, POSIX separators.

    GitHub attaches annotations and code-scanning alerts to paths relative to the checkout,
    which is the working directory of a workflow step.
    """
    here = Path.cwd().absolute()
    full = Path(path).expanduser().absolute()
    try:
        return full.relative_to(here).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _location(report: Report, finding: Finding) -> tuple[str, bool]:
    """(path of the finding's file, or of the checkpoint folder; whether it is a file)."""
    root = report.output or report.finetuned
    if finding.path:
        return _relative(os.path.join(root, finding.path)), True
    return _relative(root), False


# ------------------------------------------------------------------------------------ GitHub
def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, message: str, **properties: str | int) -> str:
    props = ",".join(f"{key}={_escape_property(str(value))}" for key, value in properties.items())
    return f"::{level}{' ' + props if props else ''}::{_escape_data(message)}"


def github(reports: Sequence[Report]) -> str:
    """GitHub Actions workflow commands: one `::error file=...,line=...,title=...::message` each.

    Severities map to `error`, `warning` and `notice`; rules skipped for want of an input
    give one `::notice::`; rules that failed internally and failed repairs give `::error::`.
    """
    lines = []
    for report in reports:
        for finding in _judged(report):
            where, is_file = _location(report, finding)
            title = f"{finding.code} {finding.name}"
            message = f"{finding.message} ({where})" if not is_file else finding.message
            if is_file:
                lines.append(
                    _command(
                        _GITHUB_LEVEL[finding.severity], message, file=where, line=1, title=title
                    )
                )
            else:
                lines.append(_command(_GITHUB_LEVEL[finding.severity], message, title=title))
        for failure in report.internal_errors:
            lines.append(
                _command(
                    "error",
                    f"{failure.message} (the other checks ran; please report it)",
                    title=f"{failure.code} {failure.name} failed internally",
                )
            )
        for error in report.errors:
            lines.append(_command("error", error, title="ftfix"))
        notice = report.notice()
        if notice:
            lines.append(_command("notice", notice, title=f"ftfix {report.finetuned}"))
        lines.append(f"{report.finetuned}: {report.summary()}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- SARIF
def _uri(path: str) -> str:
    """A URI reference: relative paths stay relative (to `%SRCROOT%`); a folder ends in `/`."""
    if os.path.isabs(path):
        return Path(path).as_uri() + ("/" if path.endswith("/") else "")
    return quote(path, safe="/")


def _section(doc: str, title: str) -> str:
    """The text under `## title` of a rule's documentation, joined into one paragraph."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", doc, re.DOTALL | re.MULTILINE)
    return " ".join(match.group(1).split()) if match else ""


def _rule_descriptor(code: str) -> dict[str, Any]:
    fixer = registry.get(code)
    doc = fixer.documentation().strip()
    return {
        "id": fixer.code,
        "name": fixer.name,
        "shortDescription": {"text": fixer.summary()},
        "fullDescription": {"text": _section(doc, "What it checks") or fixer.summary()},
        "help": {"text": doc or fixer.summary(), "markdown": doc or fixer.summary()},
        "defaultConfiguration": {"level": _SARIF_LEVEL[fixer.severity]},
        "properties": {"tags": ["ftfix", fixer.severity.value]},
    }


def sarif(reports: Sequence[Report]) -> dict[str, Any]:
    """One SARIF 2.1.0 log (one run of ftfix over every checkpoint), for code scanning.

    Each finding is a result at line 1 of its file (relative to the working directory, the
    `%SRCROOT%` base); rules skipped for want of an input and rules that failed are the run's
    tool notifications.
    """
    codes: list[str] = []
    for report in reports:
        for code in [
            *report.checked,
            *(f.code for f in _judged(report)),
            *(s.code for s in report.skipped_rules),
            *(f.code for f in report.internal_errors),
        ]:
            if code not in codes:
                codes.append(code)
    codes.sort()
    index = {code: i for i, code in enumerate(codes)}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for report in reports:
        for finding in _judged(report):
            where, is_file = _location(report, finding)
            artifact = {"uri": _uri(where if is_file else where.rstrip("/") + "/")}
            if not os.path.isabs(where):
                artifact["uriBaseId"] = "%SRCROOT%"
            physical: dict[str, Any] = {"artifactLocation": artifact}
            if is_file:
                physical["region"] = {"startLine": 1}
            result: dict[str, Any] = {
                "ruleId": finding.code,
                "ruleIndex": index[finding.code],
                "level": _SARIF_LEVEL[finding.severity],
                "message": {"text": finding.message},
                "locations": [{"physicalLocation": physical}],
                "properties": {
                    "checkpoint": report.finetuned,
                    "fixable": finding.fixable,
                    "data": json.loads(json.dumps(dict(finding.data), default=str)),
                },
            }
            if finding.fix is not None:
                result["properties"]["fix"] = {
                    "title": finding.fix.title,
                    "applicability": finding.fix.applicability.value,
                }
            results.append(result)
        for skip in report.skipped_rules:
            notifications.append(
                {
                    "level": "note",
                    "message": {
                        "text": f"{report.finetuned}: skipped, needs {skip.needs}: {skip.reason}"
                    },
                    "descriptor": {"id": skip.code},
                }
            )
        for failure in report.internal_errors:
            notifications.append(
                {
                    "level": "error",
                    "message": {"text": f"{report.finetuned}: {failure.message}"},
                    "descriptor": {"id": failure.code},
                }
            )
        for error in report.errors:
            notifications.append({"level": "error", "message": {"text": error}})
    cwd = Path.cwd().absolute().as_uri().rstrip("/") + "/"
    invocation: dict[str, Any] = {
        "executionSuccessful": not any(r.internal_errors or r.errors for r in reports),
    }
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ftfix",
                        "version": __version__,
                        "rules": [_rule_descriptor(code) for code in codes],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": cwd}},
                "invocations": [invocation],
                "results": results,
            }
        ],
    }


# ------------------------------------------------------------------------------------- JUnit
def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit(reports: Sequence[Report]) -> str:
    """JUnit XML: a testsuite per checkpoint, a testcase per rule checked.

    A rule fails when it found a problem at or above the report's `fail_on` (so the XML agrees
    with the exit code); findings below it are the testcase's output. A rule skipped for want
    of an input is skipped; a rule that failed internally, or a fix that did not hold, is an
    error.
    """
    suites = ET.Element("testsuites", name="ftfix")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for report in reports:
        suite = ET.SubElement(suites, "testsuite", name=report.finetuned)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        judged = _judged(report)
        skipped = {s.code: s for s in report.skipped_rules}
        failed = {f.code: f for f in report.internal_errors}
        codes = sorted(
            {*report.checked, *(f.code for f in judged), *skipped, *failed},
        )
        for code in codes:
            fixer = registry.get(code)
            case = ET.SubElement(
                suite,
                "testcase",
                classname=report.finetuned,
                name=f"{code} {fixer.name}",
            )
            counts["tests"] += 1
            mine = [f for f in judged if f.code == code]
            failing = [f for f in mine if f.severity.rank >= report.fail_on.rank]
            lines = [
                f"{_location(report, f)[0]}: {f.code} {f.severity.value} {f.message}" for f in mine
            ]
            if code in failed:
                error = ET.SubElement(
                    case, "error", message=_xml_text(failed[code].message), type="internal error"
                )
                error.text = _xml_text(failed[code].traceback)
                counts["errors"] += 1
            elif failing:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=_xml_text(failing[0].message),
                    type=failing[0].severity.value,
                )
                failure.text = _xml_text("\n".join(lines))
                counts["failures"] += 1
            elif code in skipped:
                ET.SubElement(
                    case,
                    "skipped",
                    message=_xml_text(f"needs {skipped[code].needs}: {skipped[code].reason}"),
                )
                counts["skipped"] += 1
            elif lines:
                ET.SubElement(case, "system-out").text = _xml_text("\n".join(lines))
        if report.errors:
            case = ET.SubElement(suite, "testcase", classname=report.finetuned, name="repair")
            error = ET.SubElement(case, "error", message=_xml_text(report.errors[0]), type="ftfix")
            error.text = _xml_text("\n".join(report.errors))
            counts["tests"] += 1
            counts["errors"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        suites.set(key, str(value))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


def render(fmt: str, reports: Sequence[Report]) -> str:
    """The document of `fmt` (`github`, `sarif` or `junit`) for every report of one run."""
    if fmt == "github":
        return github(reports)
    if fmt == "sarif":
        return json.dumps(sarif(reports), indent=2, ensure_ascii=False)
    if fmt == "junit":
        return junit(reports)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
