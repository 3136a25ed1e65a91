"""Issue 19: a Rust panic (a BaseException) inside a rule is that rule's failure, not a crash."""

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


def test_a_rust_panic_in_a_rule_is_its_failure_and_the_others_run(pair, monkeypatch):
    base, ft = pair
    panic = type("PanicException", (BaseException,), {})  # what pyo3 raises
    monkeypatch.setattr(type(registry.get("FTX207")), "check", _raise(panic("index out of bounds")))
    report = ftfix.check(base, ft)
    assert [f.code for f in report.internal_errors] == ["FTX207"]
    assert "PanicException: index out of bounds" in report.internal_errors[0].message


def test_interrupts_are_not_swallowed(pair, monkeypatch):
    base, ft = pair
    monkeypatch.setattr(type(registry.get("FTX207")), "check", _raise(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        ftfix.check(base, ft)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_eos_id_out_of_range_ends_cleanly(pair, capsys, value):
    base, ft = pair
    path = ft / "generation_config.json"
    data = json.loads(path.read_text())
    data["eos_token_id"] = value
    path.write_text(json.dumps(data))
    assert main(["check", str(base), str(ft)]) in (0, 1, 2)
    assert "Traceback" not in capsys.readouterr().err
