"""FTX203 sampling-defaults-lost: restore the base's sampling keys the fine-tune dropped."""

from __future__ import annotations

import json

from ckpt_builders import copy_checkpoint, tree_digest

import ftfix

SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.9}


def _found(report):
    return [f for f in report.findings if f.code == "FTX203"]


def test_noop_healthy_pair(pair):
    """Same generation config on both sides."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_noop_same_sampling(make_checkpoint, tmp_path):
    """The fine-tune kept the base's sampling defaults."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


def test_noop_changed_value_is_a_choice(make_checkpoint):
    """A different temperature is deliberate, not lost."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft", sampling={**SAMPLING, "temperature": 0.2})
    assert _found(ftfix.check(base, ft)) == []


def test_noop_missing_file_is_ftx201s(make_checkpoint):
    """Without a generation_config.json the loss is reported by FTX201, not here."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft", generation_eos=None)
    report = ftfix.check(base, ft)
    assert _found(report) == []
    assert "FTX201" in [f.code for f in report.findings]


def test_fix_restores_lost_keys(make_checkpoint):
    """A file rebuilt from config.json lost do_sample/temperature/top_p: they come back."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft")
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.message == (
        "generation_config.json lacks do_sample=true, temperature=0.6, top_p=0.9, "
        "which the base sets"
    )
    report = ftfix.repair(base, ft)
    assert report.exit_code == 0
    # Keys go into their sorted places, as transformers writes them: the files match exactly.
    assert (ft / "generation_config.json").read_bytes() == (
        base / "generation_config.json"
    ).read_bytes()
    assert _found(ftfix.check(base, ft)) == []


def test_fix_keeps_fine_tune_values(make_checkpoint):
    """Only missing keys are added; a key the fine-tune set keeps its value."""
    base = make_checkpoint("base", sampling={**SAMPLING, "top_k": 20})
    ft = make_checkpoint("ft", sampling={"temperature": 0.2})
    ftfix.repair(base, ft)
    data = json.loads((ft / "generation_config.json").read_text())
    assert data["temperature"] == 0.2
    assert (data["do_sample"], data["top_p"], data["top_k"]) == (True, 0.9, 20)


def test_check_writes_nothing(make_checkpoint):
    """check() is read-only."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft")
    before = tree_digest(ft)
    ftfix.check(base, ft)
    assert tree_digest(ft) == before
