"""Stop tokens end to end: a tiny model trained on CPU never stops, ftfix repairs it, it stops.

Each model is trained in the test on ChatML (or InternLM-style) conversations whose answers
always end with the end-of-turn token, then saved the way real training runs leave it: with
`generation_config.json` stopping only on the pre-training eos (`<|end_of_text|>`, the Qwen-base
case), without a generation config, or as a PEFT adapter over a base that stops on
`<|end_of_text|>`. Greedy `generate` runs to `max_new_tokens` before the repair and stops right
after the answer afterwards.
"""

from __future__ import annotations

import pytest
from ckpt_builders import TOKEN_IDS, copy_checkpoint
from tiny_training import (
    ANSWERS,
    INTERNLM_TEMPLATE,
    INTERNLM_TOKENS,
    QUESTIONS,
    build_base,
    generate_ids,
    load_model,
    train_chat_lora,
    train_chat_model,
)

import ftfix

pytestmark = pytest.mark.slow

MAX_NEW = 24
IM_END = TOKEN_IDS["<|im_end|>"]


def _expected(folder, answer, eot):
    """The ids of `answer` followed by the end-of-turn token, as the tokenizer encodes them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return tokenizer(answer + eot, add_special_tokens=False)["input_ids"]


def _answers(model, tokenizer_dir, generation_config=None):
    return [
        generate_ids(
            model, tokenizer_dir, q, max_new_tokens=MAX_NEW, generation_config=generation_config
        )
        for q in QUESTIONS
    ]


def _stop_errors(report):
    """Error codes of the stop-token rules (FTX2xx) in a report."""
    return [
        f.code for f in report.findings if f.code.startswith("FTX2") and f.severity.value == "error"
    ]


def _assert_runs_on(outputs, expected):
    """Before the repair: the model answers and ends its turn, but generation never stops."""
    for out, exp in zip(outputs, expected, strict=True):
        assert out[: len(exp)] == exp, "the tiny model did not learn its answers"
        assert len(out) == MAX_NEW


def _assert_stops(outputs, expected):
    """After the repair: the answer, the end-of-turn token, nothing more."""
    assert outputs == expected


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    """A base model (no template, eos <|end_of_text|>) fully fine-tuned on ChatML."""
    root = tmp_path_factory.mktemp("chatml")
    base = build_base(root / "base")
    return base, train_chat_model(root / "ft", base=base)


def test_qwen_base_case_stops_after_repair(chatml, tmp_path):
    """generation_config stops only on <|end_of_text|>: FTX202 adds <|im_end|>, generation stops."""
    base, trained = chatml
    ft = copy_checkpoint(trained, tmp_path / "ft")
    expected = [_expected(ft, a, "<|im_end|>") for a in ANSWERS]
    _assert_runs_on(_answers(load_model(ft), ft), expected)

    report = ftfix.check(base, ft)
    assert report.exit_code == 1
    assert _stop_errors(report) == ["FTX202"]

    repaired = ftfix.repair(base, ft)
    assert repaired.exit_code == 0, repaired.render_text()
    assert [f.code for f in repaired.applied if f.code.startswith("FTX2")] == ["FTX202"]
    _assert_stops(_answers(load_model(ft), ft), expected)


def test_missing_generation_config_stops_after_repair(chatml, tmp_path):
    """No generation_config.json: config.json's eos is used; FTX201 writes one that stops."""
    base, trained = chatml
    ft = copy_checkpoint(trained, tmp_path / "ft")
    (ft / "generation_config.json").unlink()
    expected = [_expected(ft, a, "<|im_end|>") for a in ANSWERS]
    _assert_runs_on(_answers(load_model(ft), ft), expected)

    repaired = ftfix.repair(base, ft)
    assert [f.code for f in repaired.applied if f.code.startswith("FTX2")] == ["FTX201"]
    assert repaired.exit_code == 0, repaired.render_text()
    _assert_stops(_answers(load_model(ft), ft), expected)


def test_internlm_eoa_stops_after_repair(tmp_path):
    """InternLM-style turns ending in an added <eoa> token: looping before, stopping after."""
    base = build_base(tmp_path / "base", added_tokens=INTERNLM_TOKENS)
    ft = train_chat_model(
        tmp_path / "ft",
        base=base,
        template=INTERNLM_TEMPLATE,
        eot_token="<eoa>",
        added_tokens=INTERNLM_TOKENS,
    )
    expected = [_expected(ft, a, "<eoa>") for a in ANSWERS]
    _assert_runs_on(_answers(load_model(ft), ft), expected)

    report = ftfix.check(base, ft)
    finding = next(f for f in report.findings if f.code == "FTX202")
    assert finding.data["end_of_turn"] == "<eoa>"

    repaired = ftfix.repair(base, ft)
    assert repaired.exit_code == 0, repaired.render_text()
    _assert_stops(_answers(load_model(ft), ft), expected)


def test_lora_adapter_stops_after_repair(tmp_path):
    """A LoRA (with a trained lm_head) on a base that stops on <|end_of_text|> only."""
    from transformers import GenerationConfig

    base = build_base(tmp_path / "base")
    adapter = train_chat_lora(tmp_path / "adapter", base)
    expected = [_expected(adapter, a, "<|im_end|>") for a in ANSWERS]
    model = load_model(base, adapter=adapter)
    _assert_runs_on(_answers(model, adapter), expected)

    report = ftfix.check(base, adapter)
    assert _stop_errors(report) == ["FTX201"]

    repaired = ftfix.repair(base, adapter)
    assert repaired.exit_code == 0, repaired.render_text()
    config = GenerationConfig.from_pretrained(str(adapter))
    assert config.eos_token_id == [TOKEN_IDS["<|end_of_text|>"], IM_END]
    # peft takes the base's generation config; the repaired one is loaded as documented.
    _assert_stops(_answers(model, adapter, generation_config=config), expected)
