"""FTX402 use-cache-disabled: `use_cache: false` left from gradient checkpointing."""

from __future__ import annotations

from builders_config import read_json, set_json

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX402"]


def test_noop_healthy_pair(pair):
    """Both true: nothing."""
    assert _found(ftfix.check(*pair)) == []


def test_noop_base_also_false(pair):
    """The base itself ships use_cache false: the fine-tune kept the base's choice."""
    base, ft = pair
    set_json(base, "config.json", use_cache=False)
    set_json(ft, "config.json", use_cache=False)
    assert _found(ftfix.check(base, ft)) == []


def test_fix_restores_true(pair):
    """use_cache false (base true) is restored, and transformers then reads true."""
    from transformers import AutoConfig

    base, ft = pair
    set_json(ft, "config.json", use_cache=False)
    assert AutoConfig.from_pretrained(str(ft)).use_cache is False
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.fix.applicability.value == "safe"

    ftfix.repair(base, ft)
    assert read_json(ft)["use_cache"] is True
    assert AutoConfig.from_pretrained(str(ft)).use_cache is True
    assert (ft / "config.json").read_bytes() == (base / "config.json").read_bytes()
    assert _found(ftfix.check(base, ft)) == []
