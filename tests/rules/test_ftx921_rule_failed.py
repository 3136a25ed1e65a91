"""A rule that raises on the folder's content is an internal error of that rule, not a crash.

(Written for FTX921 rule-failed; the merged design reports it in `report.internal_errors`.)
"""

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


def test_a_raising_rule_is_an_internal_error_and_the_others_run(pair, monkeypatch):
    """(FTX921 is not registered: a raising rule is an internal error of that rule, exit 3.)"""
    base, ft = pair
    (ft / "chat_template.jinja").unlink()  # FTX001 still reports this
    rule = registry.get("FTX207")
    monkeypatch.setattr(type(rule), "check", _raise(OverflowError("can't convert negative int")))
    report = ftfix.check(base, ft)
    assert [(f.code, f.message) for f in report.internal_errors] == [
        ("FTX207", "OverflowError: can't convert negative int")
    ]
    assert "FTX001" in {f.code for f in report.findings}
    assert report.exit_code == 3


def test_a_rust_panic_is_an_internal_error(pair, monkeypatch):
    base, ft = pair
    panic = type("PanicException", (BaseException,), {})
    monkeypatch.setattr(type(registry.get("FTX207")), "check", _raise(panic("index out of bounds")))
    report = ftfix.check(base, ft)
    assert [f.message for f in report.internal_errors] == ["PanicException: index out of bounds"]


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
