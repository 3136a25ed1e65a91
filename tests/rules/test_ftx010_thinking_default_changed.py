"""FTX010 thinking-default-changed: Qwen3's switch kept, its default turned around."""

from __future__ import annotations

from builders_capabilities import edit, qwen3
from ckpt_builders import SPECIALS_CHATML

import ftfix

SWITCH = "{%- if enable_thinking is defined and enable_thinking is false %}"
# Off unless asked for: the fine-tune's template appends the empty think block by default.
OFF_BY_DEFAULT = "{%- if not (enable_thinking is defined and enable_thinking is true) %}"


def _prompt(path, **kwargs) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], add_generation_prompt=True, tokenize=False, **kwargs
    )
    assert isinstance(text, str)
    return text


def test_default_turned_off(make_checkpoint):
    """The base thinks unless told not to; the fine-tune does not unless told to: a warning."""
    original = qwen3()
    base = make_checkpoint("base", chat_template=original, **SPECIALS_CHATML)
    ft = make_checkpoint(
        "ft", chat_template=edit(original, SWITCH, OFF_BY_DEFAULT), **SPECIALS_CHATML
    )
    assert _prompt(base).endswith("<|im_start|>assistant\n")
    assert _prompt(ft).endswith("<think>\n\n</think>\n\n")
    # The serve-side switch the message names gives the base's behaviour back.
    assert _prompt(ft, enable_thinking=True) == _prompt(base)

    report = ftfix.check(base, ft, select=["FTX010"])
    assert [f.code for f in report.findings] == ["FTX010"]
    finding = report.findings[0]
    assert finding.severity.value == "warning"
    assert finding.fix is None
    assert '"enable_thinking": true' in finding.message
    assert finding.data == {"thinks_by_default": False, "reference_thinks_by_default": True}
    assert report.exit_code == 0


def test_default_turned_on(make_checkpoint):
    """The reverse: a base off by default, a fine-tune that thinks unless told not to."""
    original = qwen3()
    base = make_checkpoint(
        "base", chat_template=edit(original, SWITCH, OFF_BY_DEFAULT), **SPECIALS_CHATML
    )
    ft = make_checkpoint("ft", chat_template=original, **SPECIALS_CHATML)
    finding = ftfix.check(base, ft, select=["FTX010"]).findings[0]
    assert '"enable_thinking": false' in finding.message
    assert finding.data["thinks_by_default"] is True


def test_noop_same_default(make_checkpoint):
    """Same switch, same default: nothing to say."""
    original = qwen3()
    base = make_checkpoint("base", chat_template=original, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=original + "\n", **SPECIALS_CHATML)
    assert ftfix.check(base, ft, select=["FTX010"]).findings == []


def test_noop_switch_removed(make_checkpoint):
    """A template without the switch has no default to compare: FTX009 speaks instead."""
    original = qwen3()
    stripped = edit(original, SWITCH, "{%- if false %}")
    base = make_checkpoint("base", chat_template=original, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=stripped, **SPECIALS_CHATML)
    codes = [f.code for f in ftfix.check(base, ft, select=["FTX009", "FTX010"]).findings]
    assert codes == ["FTX009"]
