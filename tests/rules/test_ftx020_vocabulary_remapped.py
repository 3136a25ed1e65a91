"""FTX020 vocabulary-remapped: vocabularies compared by content; remapped is an error, no fix."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import build_tokenizer, copy_checkpoint, tree_digest

import ftfix

OURS = ["FTX02"]


def _codes(report):
    return [f.code for f in report.findings]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_same_vocabulary(make_checkpoint, tmp_path, layout):
    """A re-saved tokenizer with the same tokens at the same ids is not remapped."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    # Re-serialise tokenizer.json (different bytes, same content): still the same vocabulary.
    data = json.loads((ft / "tokenizer.json").read_text("utf-8"))
    (ft / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    assert "FTX020" not in _codes(ftfix.check(base, ft, select=OURS))


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_extended_vocabulary(make_checkpoint, layout):
    """Tokens appended after the base's are an extension, not a remapping."""
    base = make_checkpoint("base", layout=layout, added_tokens=["<tool>"])
    ft = make_checkpoint("ft", layout=layout, added_tokens=["<tool>", "<think>", "</think>"])
    assert ftfix.check(base, ft, select=OURS).findings == []


def test_noop_adapter_without_tokenizer(make_checkpoint, tmp_path):
    """An adapter that ships no tokenizer uses the base's: nothing to compare."""
    base = make_checkpoint("base")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert ftfix.check(base, adapter, select=OURS).findings == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_swapped_tokens_error_and_nothing_written(make_checkpoint, layout):
    """Two added tokens in the other order: error with examples, and repair writes nothing."""
    base = make_checkpoint("base", layout=layout, added_tokens=["<a>", "<b>"])
    ft = make_checkpoint("ft", layout=layout, added_tokens=["<b>", "<a>"])
    (ft / "tokenizer_config.json").unlink()  # a missing file must not be copied either
    report = ftfix.check(base, ft, select=OURS)
    finding = next(f for f in report.findings if f.code == "FTX020")
    assert finding.severity.value == "error"
    assert finding.fix is None
    assert "'<a>' 98 -> 99" in finding.message
    assert finding.data["n_changed"] == 2
    assert report.exit_code == 1

    before = tree_digest(ft)
    repaired = ftfix.repair(base, ft, select=OURS)
    assert tree_digest(ft) == before
    assert "FTX020" in [f.code for f in repaired.remaining]
    missing = next(f for f in repaired.findings if f.code == "FTX021")
    assert missing.fix is None
    assert "remapped" in missing.message


def test_fix_lost_added_tokens_is_remapped(make_checkpoint):
    """A fine-tune whose tokenizer lost tokens the base had cannot take the base's files."""
    base = make_checkpoint("base", added_tokens=["<tool>"])
    ft = make_checkpoint("ft")
    finding = next(f for f in ftfix.check(base, ft, select=OURS).findings if f.code == "FTX020")
    assert "1 base token(s) missing" in finding.message
    assert "'<tool>' (98)" in finding.message


def test_fix_partial_vocabulary_id_clash(tmp_path):
    """Without tokenizer.json, added_tokens_decoder entries that clash with the base still show."""
    base = build_tokenizer(tmp_path / "base", layout="v4", added_tokens=["<a>"])
    ft = build_tokenizer(tmp_path / "ft", layout="v4", added_tokens=["<b>"])
    for folder in (base, ft):
        (folder / "tokenizer.json").unlink()
    finding = next(f for f in ftfix.check(base, ft, select=OURS).findings if f.code == "FTX020")
    assert "id 98 '<a>' -> '<b>'" in finding.message


def test_fix_transformers_sees_the_remapping(make_checkpoint):
    """What the rule reports is what transformers loads: the same text gets other ids."""
    from transformers import AutoTokenizer

    base = make_checkpoint("base", added_tokens=["<a>", "<b>"])
    ft = make_checkpoint("ft", added_tokens=["<b>", "<a>"])
    old = AutoTokenizer.from_pretrained(str(base))("<a> hello")["input_ids"]
    new = AutoTokenizer.from_pretrained(str(ft))("<a> hello")["input_ids"]
    assert old != new
    assert "FTX020" in _codes(ftfix.check(base, ft, select=OURS))
