"""FTX203 sampling-defaults-lost: restore the base's sampling keys the fine-tune dropped."""

from __future__ import annotations

import json

import pytest
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


def test_fix_restores_lost_keys_only_when_unsafe(make_checkpoint):
    """A file rebuilt from config.json lost do_sample/temperature/top_p: reported; restoring
    them switches decoding to sampling, so only --unsafe-fixes brings them back."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft")
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.fix.applicability.value == "unsafe"
    assert finding.message == (
        "generation_config.json lacks do_sample=true, temperature=0.6, top_p=0.9, "
        "which the base sets"
    )
    before = tree_digest(ft)
    report = ftfix.repair(base, ft)
    assert report.exit_code == 0
    assert tree_digest(ft) == before
    report = ftfix.repair(base, ft, unsafe_fixes=True)
    # Keys go into their sorted places, as transformers writes them: the files match exactly.
    assert (ft / "generation_config.json").read_bytes() == (
        base / "generation_config.json"
    ).read_bytes()
    assert _found(ftfix.check(base, ft)) == []


def test_fix_keeps_fine_tune_values(make_checkpoint):
    """Only missing keys are added; a key the fine-tune set keeps its value."""
    base = make_checkpoint("base", sampling={**SAMPLING, "top_k": 20})
    ft = make_checkpoint("ft", sampling={"do_sample": True, "temperature": 0.2})
    ftfix.repair(base, ft, unsafe_fixes=True)
    data = json.loads((ft / "generation_config.json").read_text())
    assert data["temperature"] == 0.2
    assert (data["do_sample"], data["top_p"], data["top_k"]) == (True, 0.9, 20)


def test_noop_pinned_greedy(make_checkpoint):
    """`do_sample: false` is a choice: sampling values would be inert and make transformers
    refuse the config, so nothing is reported or written, even with --unsafe-fixes."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft", sampling={"do_sample": False})
    assert _found(ftfix.check(base, ft)) == []
    before = tree_digest(ft)
    ftfix.repair(base, ft, unsafe_fixes=True)
    assert tree_digest(ft) == before


def _saves(folder, out):
    """What transformers does with the folder's generation config: load, validate strictly,
    save (raises "GenerationConfig is invalid" when it refuses)."""
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(str(folder))
    config.validate(strict=True)
    config.save_pretrained(str(out))
    return config


@pytest.mark.slow
@pytest.mark.parametrize("pin_greedy", [False, True])
def test_trl_finetune_untouched_by_plain_repair(tmp_path, pin_greedy):
    """Issue 13 item 1: a TRL ChatML fine-tune whose generation_config.json holds bos/eos/pad
    (and `do_sample: false` when the script pins greedy decoding): a plain repair leaves it
    byte-identical, and with --unsafe-fixes what is written still loads, validates strictly and
    saves with transformers."""
    from builders_precision import base_with_sampling, trl_finetune

    base = base_with_sampling(tmp_path / "base")
    ft = trl_finetune(
        tmp_path / "ft", base, base_generation_config=False, pin_greedy=pin_greedy, steps=2
    )
    written = json.loads((ft / "generation_config.json").read_text())
    assert "temperature" not in written and written.get("do_sample") is (
        False if pin_greedy else None
    )
    before = tree_digest(ft)
    report = ftfix.repair(base, ft)
    assert tree_digest(ft) == before, report.applied
    report = ftfix.repair(base, ft, unsafe_fixes=True)
    config = _saves(ft, tmp_path / "saved")
    assert config.do_sample is (not pin_greedy)
    if pin_greedy:
        assert tree_digest(ft) == before


def test_check_writes_nothing(make_checkpoint):
    """check() is read-only."""
    base = make_checkpoint("base", sampling=SAMPLING)
    ft = make_checkpoint("ft")
    before = tree_digest(ft)
    ftfix.check(base, ft)
    assert tree_digest(ft) == before
