"""FTX205 end-of-turn-not-single-token: a stop token must be one token id."""

from __future__ import annotations

from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE, copy_checkpoint, tree_digest
from helpers import set_json_key

import ftfix

# Turns end with <|end|>, which the test vocabulary does not have.
UNKNOWN_MARKER_TEMPLATE = LLAMA3_TEMPLATE.replace("<|eot_id|>", "<|end|>")
# Turns end with eos_token, whatever the tokenizer names it.
EOS_VARIABLE_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Alpaca style: the turn ends with a blank line, no special token.
TEXT_END_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '### instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### response:\\n' + message['content'] + '\\n\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### response:\\n' }}{% endif %}"
)


def _found(report):
    return [f for f in report.findings if f.code == "FTX205"]


def test_noop_healthy_pair(pair):
    """<|eot_id|> is one token."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_noop_chatml(make_checkpoint, tmp_path):
    """<|im_end|> is one token."""
    base = make_checkpoint("base", chat_template=CHATML_TEMPLATE)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []


def test_error_marker_not_in_vocabulary(make_checkpoint):
    """Turns end with <|end|>, which the tokenizer splits into pieces."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=UNKNOWN_MARKER_TEMPLATE)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert finding.message.startswith(
        "assistant turns end with '<|end|>', which is not one token of the tokenizer"
    )
    assert "encodes as" in finding.message
    assert finding.fix is None


def test_error_named_eos_missing_from_tokenizer(make_checkpoint):
    """The template ends turns with eos_token, a name tokenizer.json does not have."""
    base = make_checkpoint("base", chat_template=EOS_VARIABLE_TEMPLATE)
    ft = make_checkpoint("ft", chat_template=EOS_VARIABLE_TEMPLATE)
    set_json_key(ft / "tokenizer_config.json", "eos_token", "<|endofturn|>")
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert "'<|endofturn|>'" in finding.message


def test_warning_plain_text_turn_end(make_checkpoint):
    """A blank line ends the turn: only a learned eos can stop generation."""
    base = make_checkpoint("base", chat_template=TEXT_END_TEMPLATE)
    ft = make_checkpoint("ft", chat_template=TEXT_END_TEMPLATE)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.message.startswith("assistant turns end with '\\n\\n', not with a special token")


def test_repair_changes_nothing(make_checkpoint):
    """There is no fix: repair leaves the folder as it is."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=UNKNOWN_MARKER_TEMPLATE)
    before = tree_digest(ft)
    report = ftfix.repair(base, ft, select=["FTX205"])
    assert tree_digest(ft) == before
    assert report.exit_code == 1
