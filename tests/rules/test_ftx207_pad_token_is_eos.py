"""FTX207 pad-token-is-eos: padding that is the stop token means eos was masked in training."""

from __future__ import annotations

import pytest
from ckpt_builders import CHATML_TEMPLATE, TOKEN_IDS, copy_checkpoint, tree_digest
from helpers import set_json_key

import ftfix

EOT = TOKEN_IDS["<|eot_id|>"]
END_OF_TEXT = TOKEN_IDS["<|end_of_text|>"]


def _found(report):
    return [f for f in report.findings if f.code == "FTX207"]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_pair(make_checkpoint, tmp_path, layout):
    """A dedicated pad token (<|finetune_pad|>)."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


def test_noop_pad_is_eos_but_not_the_turn_end(make_checkpoint):
    """Phi-3 style: pad == eos == <|end_of_text|> while turns end with <|eot_id|>: harmless."""
    kw = {"eos_token": "<|end_of_text|>", "pad_token": "<|end_of_text|>"}
    base = make_checkpoint("base", generation_eos=[END_OF_TEXT, EOT], **kw)
    ft = make_checkpoint("ft", generation_eos=[END_OF_TEXT, EOT], **kw)
    assert _found(ftfix.check(base, ft)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_warning_pad_is_eos(make_checkpoint, layout):
    """tokenizer.pad_token = tokenizer.eos_token on a Llama 3 style fine-tune."""
    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, pad_token="<|eot_id|>")
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.path == "tokenizer_config.json"
    assert finding.message == (
        "pad token is <|eot_id|> (5), the eos_token the model must emit to stop (in "
        "tokenizer_config.json); a collator that masks padding never trained it"
    )
    assert finding.fix is None
    before = tree_digest(ft)
    ftfix.repair(base, ft, select=["FTX207"])
    assert tree_digest(ft) == before


def test_warning_pad_is_the_turn_end(make_checkpoint):
    """pad == <|im_end|> while eos is <|end_of_text|>: the turn end is what gets masked."""
    kw = {"chat_template": CHATML_TEMPLATE, "eos_token": "<|end_of_text|>"}
    base = make_checkpoint("base", **kw)
    ft = make_checkpoint("ft", pad_token="<|im_end|>", **kw)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.message.startswith("pad token is <|im_end|> (7), the end-of-turn token")


def test_warning_config_pad_id(make_checkpoint):
    """config.json and generation_config.json pad_token_id equal to the turn end's id."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_json_key(ft / "config.json", "pad_token_id", EOT)
    set_json_key(ft / "generation_config.json", "pad_token_id", EOT)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.path == "config.json"
    assert finding.data["places"] == ["config.json", "generation_config.json"]


def test_error_when_row_is_also_untrained(make_checkpoint):
    """pad == eos and the eos output row is zero: the model cannot stop."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", pad_token="<|eot_id|>", zero_rows=[EOT])
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert finding.message.endswith(
        "and its output row (lm_head.weight in model.safetensors) is all zero"
    )
