"""FTX103 mean-initialized-token-rows: rows initialized at the mean but never trained (warning)."""

from __future__ import annotations

import pytest
from ckpt_builders import BASE_VOCAB_SIZE, TOKEN_IDS, build_merged, build_tokenizer
from test_embeddings import EMBED, EOT, HEAD, HEADER, shift_rows

import ftfix

RULES = ["FTX1"]


def _codes(report):
    return [f.code for f in report.findings]


def test_noop_healthy_pair(pair):
    """Trained rows are not 'initialized'."""
    assert ftfix.check(*pair, select=["FTX103"]).findings == []


def test_warns_for_mean_rows_and_recommends_verify(make_checkpoint):
    """Rows at the mean of trained rows: a warning, not an error; eos gets `ftfix verify`."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", mean_rows=[EOT, HEADER])
    for tensor in (EMBED, HEAD):
        shift_rows(ft, tensor)
    report = ftfix.check(base, ft, select=RULES)
    assert _codes(report) == ["FTX103", "FTX103"]
    assert report.exit_code == 0  # warnings do not fail a check
    header, eot = report.findings
    assert "input row is at the mean of trained rows" in header.message
    assert "initialized but never trained" in header.message and "verify" not in header.message
    assert "run `ftfix verify`" in eot.message
    assert eot.fix is None and eot.severity.value == "warning"
    assert ftfix.check(base, ft, select=RULES, fail_on="warning").exit_code == 1


def test_after_ftx102_repair(make_checkpoint):
    """ftfix's own mean repair is recognised on the next check: initialized, not untrained."""
    base = make_checkpoint("base", tied=True)
    ft = make_checkpoint("ft", tied=True, zero_rows=[EOT])
    assert _codes(ftfix.check(base, ft, select=RULES)) == ["FTX102"]
    ftfix.repair(base, ft, select=RULES, unsafe_fixes=True)
    (finding,) = ftfix.check(base, ft, select=RULES).findings
    assert finding.code == "FTX103"
    assert finding.message.startswith("<|eot_id|> (id 5,")
    assert "input/output row (tied) is at the mean" in finding.message


@pytest.mark.slow
def test_transformers_mean_resizing(tmp_path):
    """Tokens added with resize_token_embeddings (mean init) and never trained: FTX103."""
    from transformers import LlamaForCausalLM

    added = ["<|im_start|>x", "<think>"]
    base = build_merged(tmp_path / "base", full_model=True)
    for tensor in (EMBED, HEAD):
        shift_rows(base, tensor)
    model = LlamaForCausalLM.from_pretrained(str(base))
    model.resize_token_embeddings(BASE_VOCAB_SIZE + len(added))  # mean_resizing=True
    ft = tmp_path / "ft"
    model.save_pretrained(str(ft))
    build_tokenizer(ft, added_tokens=added)
    report = ftfix.check(base, ft, select=RULES)
    assert _codes(report) == ["FTX103", "FTX103"]
    assert all("added by the fine-tune" in f.message for f in report.findings)
    assert report.findings[0].data["tokens"][0]["id"] == BASE_VOCAB_SIZE
    assert TOKEN_IDS["<|eot_id|>"] == EOT
