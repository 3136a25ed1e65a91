"""FTX202 chat-stop-token-not-eos: the template's end of turn joins generation_config's eos."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    LLAMA3_TEMPLATE,
    TOKEN_IDS,
    copy_checkpoint,
    vocab_for,
)
from helpers import set_json_key

import ftfix
from ftfix.analysis.stops import eos_ids, eos_value

EOT = TOKEN_IDS["<|eot_id|>"]
END_OF_TEXT = TOKEN_IDS["<|end_of_text|>"]
IM_END = TOKEN_IDS["<|im_end|>"]
# InternLM (v1) ends assistant turns with an added <eoa>; its generation config stopped on </s>.
EOA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|User|>:' + message['content'] + '<eoh>\\n' }}"
    "{% else %}{{ '<|Bot|>:' + message['content'] + '<eoa>\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|Bot|>:' }}{% endif %}"
)
EOA_TOKENS = ("<|User|>", "<|Bot|>", "<eoh>", "<eoa>")


def _found(report):
    return [f for f in report.findings if f.code == "FTX202"]


def _eos(folder):
    return json.loads((folder / "generation_config.json").read_text("utf-8"))["eos_token_id"]


def test_eos_ids_normalise_int_and_list():
    """eos values are ints, lists, or absent; bools and junk are not ids."""
    assert eos_ids(2) == (2,)
    assert eos_ids([151645, 151643]) == (151645, 151643)
    assert eos_ids(None) == ()
    assert eos_ids(True) == ()
    assert eos_ids([1, "x", None, False]) == (1,)
    assert eos_value((2,)) == 2
    assert eos_value((2,), like=[2]) == [2]
    assert eos_value((2, 7), like=2) == [2, 7]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_pair(make_checkpoint, tmp_path, layout):
    """The base's eos is the turn end: nothing to add."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


def test_noop_end_of_turn_in_eos_list(make_checkpoint):
    """Llama 3.1 style: a list of several stop ids that includes the turn end."""
    base = make_checkpoint("base", generation_eos=[END_OF_TEXT, EOT])
    ft = make_checkpoint("ft", generation_eos=[END_OF_TEXT, EOT])
    assert _found(ftfix.check(base, ft)) == []


def test_noop_no_template_anywhere(make_checkpoint):
    """A base model fine-tuned on plain text has no turn end to stop on."""
    base = make_checkpoint("base", chat_template=None, generation_eos=END_OF_TEXT)
    ft = make_checkpoint("ft", chat_template=None, generation_eos=END_OF_TEXT)
    assert _found(ftfix.check(base, ft)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_int_eos_becomes_list(make_checkpoint, layout):
    """eos 2 (<|end_of_text|>) with turns ending in <|eot_id|>: [2, 5], original kept."""
    from transformers import GenerationConfig

    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, generation_eos=END_OF_TEXT)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert finding.message == (
        "eos_token_id is 2 (<|end_of_text|>) but assistant turns end with <|eot_id|> (5)"
    )
    assert finding.fix is not None and finding.fix.applicability.value == "safe"

    report = ftfix.repair(base, ft)
    assert report.exit_code == 0, report.render_text()
    assert GenerationConfig.from_pretrained(str(ft)).eos_token_id == [END_OF_TEXT, EOT]
    assert _found(ftfix.check(base, ft)) == []


def test_fix_list_is_extended(make_checkpoint):
    """A list without the turn end gets it appended; the ids already there stay in order."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", generation_eos=[END_OF_TEXT, IM_END])
    ftfix.repair(base, ft)
    assert _eos(ft) == [END_OF_TEXT, IM_END, EOT]


def test_fix_only_eos_line_changes(make_checkpoint):
    """The edit keeps key order and formatting: the diff is the eos value only."""
    base = make_checkpoint("base")
    ft = make_checkpoint(
        "ft", generation_eos=END_OF_TEXT, sampling={"do_sample": True, "temperature": 0.6}
    )
    report = ftfix.repair(base, ft, dry_run=True)
    removed = [
        line for line in report.diff.splitlines() if line.startswith("-") and "---" not in line
    ]
    assert removed == ['-  "eos_token_id": 2,']


def test_fix_base_model_turned_chat(make_checkpoint):
    """The Qwen-base case: base without template (eos <|end_of_text|>), ChatML fine-tune."""
    kw = {"eos_token": "<|end_of_text|>", "generation_eos": END_OF_TEXT}
    base = make_checkpoint("base", chat_template=None, **kw)
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, bos_token=None, **kw)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.data["template"] == "fine-tune"
    assert "<|im_end|> (7)" in finding.message
    ftfix.repair(base, ft)
    assert _eos(ft) == [END_OF_TEXT, IM_END]


def test_fix_from_template_option(make_checkpoint, tmp_path):
    """No template anywhere: --template says how the model was trained."""
    template = tmp_path / "chatml.jinja"
    template.write_text(CHATML_TEMPLATE)
    base = make_checkpoint("base", chat_template=None, generation_eos=END_OF_TEXT)
    ft = make_checkpoint("ft", chat_template=None, generation_eos=END_OF_TEXT)
    assert _found(ftfix.check(base, ft)) == []
    finding = _found(ftfix.check(base, ft, template=template))[0]
    assert finding.data["template"] == "--template"
    ftfix.repair(base, ft, template=template)
    assert _eos(ft) == [END_OF_TEXT, IM_END]


def test_fix_eos_key_missing(make_checkpoint):
    """A generation_config.json without eos_token_id: config.json's ids plus the turn end."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", config_eos=END_OF_TEXT)
    set_json_key(ft / "generation_config.json", "eos_token_id", None)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.message.startswith("eos_token_id is not set")
    ftfix.repair(base, ft)
    assert _eos(ft) == [END_OF_TEXT, EOT]


def test_fix_internlm_style_added_token(make_checkpoint):
    """Turns end with the added token <eoa>; the config stops on <|end_of_text|> only."""
    eoa = vocab_for(EOA_TOKENS)["<eoa>"]
    kw = {"added_tokens": EOA_TOKENS, "eos_token": "<|end_of_text|>"}
    base = make_checkpoint("base", chat_template=None, generation_eos=END_OF_TEXT, **kw)
    ft = make_checkpoint("ft", chat_template=EOA_TEMPLATE, generation_eos=END_OF_TEXT, **kw)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.data["end_of_turn"] == "<eoa>"
    assert finding.data["end_of_turn_id"] == eoa
    ftfix.repair(base, ft)
    assert _eos(ft) == [END_OF_TEXT, eoa]


def test_fix_llama3_template_with_llama3_tokenizer_named_eot(make_checkpoint):
    """The Llama 3 template's trailer <|eot_id|> is found among the tokenizer's added tokens."""
    base = make_checkpoint("base", chat_template=LLAMA3_TEMPLATE)
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE, generation_eos=IM_END)
    assert _found(ftfix.check(base, ft))[0].data["end_of_turn"] == "<|eot_id|>"


def test_noop_eos_missing_and_config_json_absent(make_checkpoint):
    """Issue 13 item 3: generation_config.json without eos_token_id and no config.json to fall
    back to: the files do not say it never stops, so nothing is concluded."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, generation_eos=None)
    (ft / "generation_config.json").write_text('{\n  "do_sample": false\n}\n')
    (ft / "config.json").unlink()
    assert _found(ftfix.check(base, ft)) == []
