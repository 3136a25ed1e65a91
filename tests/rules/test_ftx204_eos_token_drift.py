"""FTX204 eos-token-drift: the eos converters read must be the template's end of turn."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import CHATML_TEMPLATE, TOKEN_IDS, copy_checkpoint, tree_digest

import ftfix

EOT = TOKEN_IDS["<|eot_id|>"]
END_OF_TEXT = TOKEN_IDS["<|end_of_text|>"]


def _found(report):
    return [f for f in report.findings if f.code == "FTX204"]


def _eos_token(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder)).eos_token


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_pair(make_checkpoint, tmp_path, layout):
    """Tokenizer eos and config.json eos are the turn end."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


def test_noop_chat_base_pairs_eos_with_other_turn_end(make_checkpoint, tmp_path):
    """Gemma / Phi-3 style: eos differs from the turn end by design, in the base too."""
    kw = {"eos_token": "<|end_of_text|>", "generation_eos": [END_OF_TEXT, EOT]}
    base = make_checkpoint("base", **kw)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_drifted_eos_restored_safely(make_checkpoint, layout):
    """The training script set eos to <|end_of_text|>; the base's <|eot_id|> ends turns."""
    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, eos_token="<|end_of_text|>")
    found = {f.path: f for f in _found(ftfix.check(base, ft))}
    tokenizer = found["tokenizer_config.json"]
    assert tokenizer.severity.value == "error"
    assert tokenizer.message.startswith(
        "tokenizer eos_token is <|end_of_text|> but the base's is <|eot_id|>"
    )
    assert tokenizer.fix is not None and tokenizer.fix.applicability.value == "safe"
    # config.json's eos followed the tokenizer's; generation_config.json still stops: a warning.
    assert found["config.json"].severity.value == "warning"

    report = ftfix.repair(base, ft)
    assert report.exit_code == 0, report.render_text()
    assert _eos_token(ft) == "<|eot_id|>"
    assert json.loads((ft / "config.json").read_text())["eos_token_id"] == EOT
    if layout == "v4":
        legacy = json.loads((ft / "special_tokens_map.json").read_text())
        assert legacy["eos_token"]["content"] == "<|eot_id|>"
    assert _found(ftfix.check(base, ft)) == []


def test_fix_unsafe_when_turn_end_is_not_the_bases_eos(make_checkpoint):
    """A switch to ChatML with a drifted eos: setting eos to <|im_end|> is unsafe."""
    base = make_checkpoint("base")
    ft = make_checkpoint(
        "ft", chat_template=CHATML_TEMPLATE, eos_token="<|end_of_text|>", config_eos=EOT
    )
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"

    before = tree_digest(ft)
    report = ftfix.repair(base, ft, select=["FTX204"])
    assert tree_digest(ft) == before
    assert report.exit_code == 1
    ftfix.repair(base, ft, select=["FTX204"], unsafe_fixes=True)
    assert _eos_token(ft) == "<|im_end|>"


def test_fix_unsafe_when_vocabulary_differs(make_checkpoint):
    """Restoring the base's eos is only safe on the base's vocabulary."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", eos_token="<|end_of_text|>", added_tokens=("<tool>",))
    finding = next(f for f in _found(ftfix.check(base, ft)) if f.path == "tokenizer_config.json")
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"


def test_warning_base_model_turned_chat(make_checkpoint):
    """The base's eos is kept, but the base had no template: converters stop on the wrong token."""
    kw = {"eos_token": "<|end_of_text|>", "generation_eos": END_OF_TEXT}
    base = make_checkpoint("base", chat_template=None, **kw)
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, bos_token=None, **kw)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert "converters that read one eos (llama.cpp's) stop on <|end_of_text|>" in finding.message
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"


def test_config_drift_is_error_without_generation_config(make_checkpoint):
    """config.json lost the turn end the base's had, and nothing else stops there."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", config_eos=END_OF_TEXT, generation_eos=None)
    finding = _found(ftfix.check(base, ft, select=["FTX204"]))[0]
    assert finding.path == "config.json"
    assert finding.severity.value == "error"
    assert "config.json eos_token_id is 2 (<|end_of_text|>) but the base's is 5" in finding.message
    ftfix.repair(base, ft, select=["FTX204"])
    assert json.loads((ft / "config.json").read_text())["eos_token_id"] == EOT
