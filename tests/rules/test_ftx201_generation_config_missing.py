"""FTX201 generation-config-missing: write a generation_config.json that stops on the turn end."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import CHATML_TEMPLATE, TOKEN_IDS, build_tokenizer, copy_checkpoint, tree_digest

import ftfix

EOT = TOKEN_IDS["<|eot_id|>"]
END_OF_TEXT = TOKEN_IDS["<|end_of_text|>"]
IM_END = TOKEN_IDS["<|im_end|>"]


def _found(report, code="FTX201"):
    return [f for f in report.findings if f.code == code]


def _generation_config(folder):
    return json.loads((folder / "generation_config.json").read_text("utf-8"))


def _fake_adapter(folder, **tokenizer_kw):
    """An adapter folder as trainers save it: adapter_config.json and the tokenizer."""
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 2}\n')
    build_tokenizer(folder, **tokenizer_kw)
    return folder


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_pair(make_checkpoint, tmp_path, layout):
    """A fine-tune with the base's generation_config.json gives no finding."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


def test_noop_config_json_stops_and_base_has_none(make_checkpoint):
    """No file on either side, and config.json's eos is the turn end: nothing is lost."""
    base = make_checkpoint("base", generation_eos=None)
    ft = make_checkpoint("ft", generation_eos=None)
    assert _found(ftfix.check(base, ft)) == []


def test_noop_base_file_adds_nothing(make_checkpoint):
    """The base's file only repeats config.json's ids: its absence loses nothing."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", generation_eos=None)
    assert _found(ftfix.check(base, ft)) == []


def test_noop_tokenizer_only_folder(make_checkpoint, tmp_path):
    """A folder with only a tokenizer has no model to generate with."""
    base = make_checkpoint("base")
    ft = build_tokenizer(tmp_path / "tok")
    assert _found(ftfix.check(base, ft)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_copies_base_file(make_checkpoint, layout):
    """config.json stops on <|end_of_text|> only: the base's file (stopping on eot) is copied."""
    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, generation_eos=None, config_eos=END_OF_TEXT)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert finding.path == "generation_config.json"
    assert "config.json's eos_token_id 2 (<|end_of_text|>)" in finding.message
    assert "<|eot_id|> (5)" in finding.message

    report = ftfix.repair(base, ft)
    assert report.exit_code == 0, report.render_text()
    assert (ft / "generation_config.json").read_bytes() == (
        base / "generation_config.json"
    ).read_bytes()
    assert ftfix.check(base, ft).findings == []


def test_fix_base_without_file_derives_from_config(make_checkpoint):
    """Neither side has the file: one is built from config.json's ids plus the end of turn."""
    from transformers import GenerationConfig

    base = make_checkpoint("base", generation_eos=None, config_eos=END_OF_TEXT)
    ft = make_checkpoint("ft", generation_eos=None, config_eos=END_OF_TEXT)
    ftfix.repair(base, ft)
    config = GenerationConfig.from_pretrained(str(ft))
    assert config.eos_token_id == [END_OF_TEXT, EOT]
    assert config.bos_token_id == TOKEN_IDS["<|begin_of_text|>"]
    assert _found(ftfix.check(base, ft)) == []


def test_fix_base_file_lacking_end_of_turn_gets_it(make_checkpoint):
    """A base model's file stops on <|end_of_text|>: the copy also stops on the fine-tune's eot."""
    base = make_checkpoint("base", chat_template=None, generation_eos=END_OF_TEXT)
    ft = make_checkpoint(
        "ft", chat_template=CHATML_TEMPLATE, generation_eos=None, config_eos=END_OF_TEXT
    )
    ftfix.repair(base, ft)
    assert _generation_config(ft)["eos_token_id"] == [END_OF_TEXT, IM_END]


def test_fix_warning_when_base_has_sampling_defaults(make_checkpoint):
    """Stopping works through config.json, but the base's sampling defaults would be lost."""
    sampling = {"do_sample": True, "temperature": 0.6, "top_p": 0.9}
    base = make_checkpoint("base", sampling=sampling)
    ft = make_checkpoint("ft", generation_eos=None)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert "do_sample, temperature, top_p" in finding.message
    assert finding.fix.applicability.value == "unsafe"  # greedy -> sampling is a choice
    before = tree_digest(ft)
    ftfix.repair(base, ft)
    assert tree_digest(ft) == before
    ftfix.repair(base, ft, unsafe_fixes=True)
    assert (ft / "generation_config.json").read_bytes() == (
        base / "generation_config.json"
    ).read_bytes()


def test_fix_adapter_gets_its_own_file(make_checkpoint, tmp_path):
    """An adapter runs with the base's config, which stops on <|end_of_text|> only."""
    from transformers import GenerationConfig

    base = make_checkpoint(
        "base", chat_template=None, eos_token="<|end_of_text|>", generation_eos=END_OF_TEXT
    )
    adapter = _fake_adapter(
        tmp_path / "adapter", chat_template=CHATML_TEMPLATE, eos_token="<|end_of_text|>"
    )
    finding = _found(ftfix.check(base, adapter))[0]
    assert finding.severity.value == "error"
    assert "the base's generation_config.json is used" in finding.message
    base_files = tree_digest(base)
    report = ftfix.repair(base, adapter)
    assert report.exit_code == 0, report.render_text()
    assert GenerationConfig.from_pretrained(str(adapter)).eos_token_id == [END_OF_TEXT, IM_END]
    assert tree_digest(base) == base_files  # the base is never written


def test_noop_adapter_when_base_stops(make_checkpoint, tmp_path):
    """An adapter over a base whose generation config stops on the end of turn is fine."""
    base = make_checkpoint("base")
    adapter = _fake_adapter(tmp_path / "adapter")
    assert _found(ftfix.check(base, adapter)) == []


def test_check_writes_nothing(make_checkpoint):
    """check() never creates the file."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", generation_eos=None, config_eos=END_OF_TEXT)
    before = tree_digest(ft)
    ftfix.check(base, ft)
    assert tree_digest(ft) == before


def test_noop_adapter_base_without_stop_files(make_checkpoint, tmp_path):
    """Issue 13 item 3: the base has neither generation_config.json nor config.json (a
    tokenizer-only copy): nothing says what it stops on, so no "never stops" conclusion."""
    base = build_tokenizer(tmp_path / "base", chat_template=None, eos_token="<|end_of_text|>")
    adapter = _fake_adapter(
        tmp_path / "adapter", chat_template=CHATML_TEMPLATE, eos_token="<|end_of_text|>"
    )
    report = ftfix.check(base, adapter)
    assert _found(report) == [] and _found(report, "FTX202") == []


def test_noop_merged_without_config_json(make_checkpoint):
    """A fine-tune folder without config.json: what generation falls back to is unknown."""
    base = make_checkpoint("base", chat_template=None, eos_token="<|end_of_text|>")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, generation_eos=None)
    (ft / "config.json").unlink()
    assert _found(ftfix.check(base, ft)) == []


def test_fix_keeps_base_eos_ids_and_keys_without_sampling(make_checkpoint):
    """The written file is the base's: its other eos ids and keys are kept, the end of turn is
    added; its sampling defaults are left out (the fine-tune decoded greedily so far)."""
    from transformers import GenerationConfig

    base = make_checkpoint(
        "base",
        chat_template=None,
        eos_token="<|end_of_text|>",
        generation_eos=[END_OF_TEXT, EOT],
        sampling={"do_sample": True, "temperature": 0.6, "max_length": 4096},
    )
    ft = make_checkpoint(
        "ft", chat_template=CHATML_TEMPLATE, eos_token="<|end_of_text|>", generation_eos=None,
        config_eos=END_OF_TEXT,
    )  # fmt: skip
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    ftfix.repair(base, ft)
    data = _generation_config(ft)
    assert data["eos_token_id"] == [END_OF_TEXT, EOT, IM_END]
    assert data["max_length"] == 4096
    assert "do_sample" not in data and "temperature" not in data
    config = GenerationConfig.from_pretrained(str(ft))
    config.validate(strict=True)


def test_adapter_finding_and_summary_say_how_it_takes_effect(make_checkpoint, tmp_path):
    """Issue 13 item 11: peft's loaders ignore the adapter's file; finding and summary say so."""
    base = make_checkpoint(
        "base", chat_template=None, eos_token="<|end_of_text|>", generation_eos=END_OF_TEXT
    )
    adapter = _fake_adapter(
        tmp_path / "adapter", chat_template=CHATML_TEMPLATE, eos_token="<|end_of_text|>"
    )
    finding = _found(ftfix.check(base, adapter))[0]
    assert "GenerationConfig.from_pretrained(ADAPTER)" in finding.message
    assert "--generation-config ADAPTER" in finding.message
    report = ftfix.repair(base, adapter)
    assert "FTX201" in [f.code for f in report.applied]
    summary = report.render_text().splitlines()[-1]
    assert summary.startswith("Note (FTX201): ")
    assert "AutoPeftModelForCausalLM" in summary and "merge the adapter" in summary
