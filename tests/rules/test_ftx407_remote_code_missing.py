"""FTX407 remote-code-missing: auto_map names .py files the folder lost."""

from __future__ import annotations

from builders_config import set_json

import ftfix

CODE = b"# modeling code of the base; ftfix copies it and never runs it\nraise SystemExit(3)\n"
AUTO_MAP = {
    "AutoConfig": "configuration_tiny.TinyConfig",
    "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
}


def _found(report):
    return [f for f in report.findings if f.code == "FTX407"]


def _with_code(folder, files=("configuration_tiny.py", "modeling_tiny.py")):
    set_json(folder, "config.json", auto_map=AUTO_MAP)
    for name in files:
        (folder / name).write_bytes(CODE)


def test_noop_healthy_pair(pair):
    """No auto_map: nothing."""
    assert _found(ftfix.check(*pair)) == []


def test_noop_files_present_or_elsewhere(pair):
    """Files present, and an entry pointing into another repository, are fine."""
    base, ft = pair
    _with_code(base)
    _with_code(ft)
    set_json(
        ft,
        "tokenizer_config.json",
        auto_map={"AutoTokenizer": ["org/repo--tokenization_x.XTokenizer", None]},
    )
    assert _found(ftfix.check(base, ft)) == []


def test_fix_copies_from_base(pair):
    """Both files missing: each is copied byte for byte, and never executed."""
    base, ft = pair
    _with_code(base)
    _with_code(ft, files=())
    found = _found(ftfix.check(base, ft))
    assert {f.path for f in found} == {"configuration_tiny.py", "modeling_tiny.py"}
    assert all(f.fix.applicability.value == "safe" for f in found)

    report = ftfix.repair(base, ft)
    assert report.exit_code == 0, report.render_text()
    assert (ft / "modeling_tiny.py").read_bytes() == CODE
    assert (ft / "configuration_tiny.py").read_bytes() == CODE
    assert _found(ftfix.check(base, ft)) == []


def test_tokenizer_auto_map_and_no_base_copy(pair):
    """A tokenizer's [slow, fast] entry counts; without a base copy there is no fix."""
    base, ft = pair
    set_json(
        ft,
        "tokenizer_config.json",
        auto_map={"AutoTokenizer": ["tokenization_tiny.TinyTokenizer", None]},
    )
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.path == "tokenization_tiny.py"
    assert finding.fix is None
    assert "tokenizer_config.json" in finding.message
