"""FTX921 rule-failed: a rule that raises on the folder's content is a finding, not a crash."""

from __future__ import annotations

import json

import pytest

import ftfix
from ftfix import registry
from ftfix.cli import main


def _raise(exc):
    def check(self, ctx):
        raise exc
        yield  # pragma: no cover - a generator, like every rule's check

    return check


def test_a_raising_rule_becomes_a_finding_and_the_others_run(pair, monkeypatch):
    base, ft = pair
    rule = registry.get("FTX207")
    monkeypatch.setattr(type(rule), "check", _raise(OverflowError("can't convert negative int")))
    report = ftfix.check(base, ft)
    [finding] = [f for f in report.findings if f.code == "FTX921"]
    assert finding.data == {
        "rule": "FTX207",
        "error": "OverflowError",
        "message": "can't convert negative int",
    }
    assert "FTX207 pad-token-is-eos could not check" in finding.message
    assert report.exit_code == 1


def test_a_rust_panic_is_a_finding(pair, monkeypatch):
    base, ft = pair
    panic = type("PanicException", (BaseException,), {})
    monkeypatch.setattr(type(registry.get("FTX207")), "check", _raise(panic("index out of bounds")))
    report = ftfix.check(base, ft)
    assert [f.data["error"] for f in report.findings if f.code == "FTX921"] == ["PanicException"]


def test_interrupts_are_not_swallowed(pair, monkeypatch):
    base, ft = pair
    monkeypatch.setattr(type(registry.get("FTX207")), "check", _raise(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        ftfix.check(base, ft)


def test_eos_id_out_of_range_ends_cleanly(pair, capsys):
    base, ft = pair
    path = ft / "generation_config.json"
    data = json.loads(path.read_text())
    data["eos_token_id"] = 2**64
    path.write_text(json.dumps(data))
    assert main(["check", str(base), str(ft)]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err
