"""FTX104 reserved-token-rows-untrained: one summary for untrained rows of unused specials."""

from __future__ import annotations

from ckpt_builders import TOKEN_IDS
from test_embeddings import EMBED, set_rows

import ftfix

RESERVED = [f"<|reserved_special_token_{i}|>" for i in range(2, 252)]
RULES = ["FTX1"]


def test_noop_healthy_pair(pair):
    """Trained rows of unused specials are not reported."""
    assert ftfix.check(*pair, select=["FTX104"]).findings == []


def test_one_summary_for_hundreds_of_reserved_tokens(make_checkpoint):
    """250 reserved tokens untrained since the base (a Llama-3 base): one warning, never 250."""
    ids = list(range(98, 98 + len(RESERVED)))
    base = make_checkpoint("base", added_tokens=RESERVED, zero_rows=ids)
    ft = make_checkpoint("ft", added_tokens=RESERVED, zero_rows=ids)
    report = ftfix.check(base, ft, select=RULES)
    (finding,) = report.findings
    assert finding.code == "FTX104" and finding.severity.value == "warning"
    assert finding.message.startswith(
        "250 special tokens nothing uses have untrained rows (input: 250 all zeros; "
        "output: 250 all zeros; all unchanged from the base): <|reserved_special_token_2|> (98)"
    )
    assert finding.message.endswith("and 247 more; harmless until one is used")
    assert finding.data["count"] == 250 and finding.fix is None
    assert report.exit_code == 0


def test_changed_in_the_fine_tune_is_counted(make_checkpoint):
    """Rows the fine-tune itself zeroed are reported too, and counted as not inherited."""
    reserved = TOKEN_IDS["<|reserved_special_token_0|>"]
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_rows(ft, EMBED, [reserved], 0.0)
    (finding,) = ftfix.check(base, ft, select=RULES).findings
    assert "(input: 1 all zeros; 0 of them unchanged from the base)" in finding.message
    assert finding.message.startswith("1 special token nothing uses has untrained rows")


def test_extra_stop_ids_are_not_errors(make_checkpoint):
    """A stop id only generation_config.json lists (Llama 3.1's eom) is summarised, not failed."""
    stops = [TOKEN_IDS["<|end_of_text|>"], TOKEN_IDS["<|eot_id|>"], TOKEN_IDS["<|im_end|>"]]
    base = make_checkpoint("base", generation_eos=stops)
    ft = make_checkpoint("ft", generation_eos=stops, zero_rows=[TOKEN_IDS["<|im_end|>"]])
    (finding,) = ftfix.check(base, ft, select=RULES).findings
    assert finding.code == "FTX104" and "<|im_end|> (7)" in finding.message
    broken = make_checkpoint("broken", generation_eos=stops, zero_rows=[TOKEN_IDS["<|eot_id|>"]])
    assert [f.code for f in ftfix.check(base, broken, select=RULES).findings] == ["FTX102"]
