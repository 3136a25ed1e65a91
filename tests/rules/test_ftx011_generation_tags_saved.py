"""FTX011 generation-tags-saved: TRL's training tags removed, renders byte-identical."""

from __future__ import annotations

import json

import pytest
from builders_capabilities import edit, qwen3
from ckpt_builders import CHATML_TEMPLATE, SPECIALS_CHATML
from helpers import set_json_key

import ftfix
from ftfix.analysis.capabilities import generation_tags
from ftfix.findings import Applicability

# Qwen3's assistant turn wrapped in the tags TRL's assistant_only_loss needs.
ASSISTANT = "        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}"


def _tagged_qwen3() -> str:
    source = qwen3()
    source = edit(
        source,
        '    {%- elif message.role == "assistant" %}\n',
        '    {%- elif message.role == "assistant" %}\n    {%- generation %}\n',
    )
    return edit(
        source,
        ASSISTANT,
        "        {{- '<|im_end|>\\n' }}\n    {%- endgeneration %}\n"
        '    {%- elif message.role == "tool" %}',
    )


def _renders(path) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    conversations = [
        [{"role": "user", "content": "hello"}],
        [
            {"role": "system", "content": "you are helpful"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there", "reasoning_content": "greet back"},
            {"role": "user", "content": "how are you"},
        ],
    ]
    return [
        tokenizer.apply_chat_template(c, add_generation_prompt=flag, tokenize=False)
        for c in conversations
        for flag in (False, True)
    ]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_tags_removed_and_renders_unchanged(make_checkpoint, layout):
    """A saved training template loses its tags; transformers renders exactly as before."""
    tagged = _tagged_qwen3()
    base = make_checkpoint("base", chat_template=qwen3(), layout=layout, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=tagged, layout=layout, **SPECIALS_CHATML)
    before = _renders(ft)

    report = ftfix.check(base, ft, select=["FTX011"])
    assert [f.code for f in report.findings] == ["FTX011"]
    finding = report.findings[0]
    assert finding.data["tags"] == 2
    assert finding.fix is not None
    assert finding.fix.applicability is Applicability.SAFE

    ftfix.repair(base, ft, select=["FTX011"])
    if layout == "v5":
        saved = (ft / "chat_template.jinja").read_text("utf-8")
    else:
        saved = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))["chat_template"]
    assert generation_tags(saved) == []
    assert _renders(ft) == before
    assert ftfix.check(base, ft, select=["FTX011"]).findings == []


def test_named_templates_cleaned_too(make_checkpoint):
    """Tags in a named template (v4 list form) are removed as well; the default is kept."""
    tagged = CHATML_TEMPLATE.replace(
        "{{ '<|im_start|>' + message['role']", "{% generation %}{{ '<|im_start|>' + message['role']"
    ).replace("{% endfor %}", "{% endgeneration %}{% endfor %}", 1)
    base = make_checkpoint("base", chat_template=CHATML_TEMPLATE, layout="v4", **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, layout="v4", **SPECIALS_CHATML)
    set_json_key(
        ft / "tokenizer_config.json",
        "chat_template",
        [{"name": "default", "template": CHATML_TEMPLATE}, {"name": "train", "template": tagged}],
    )
    finding = ftfix.check(base, ft, select=["FTX011"]).findings[0]
    assert finding.data["templates"] == ["train"]
    ftfix.repair(base, ft, select=["FTX011"])
    saved = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))["chat_template"]
    assert {t["name"]: generation_tags(t["template"]) for t in saved} == {
        "default": [],
        "train": [],
    }
    assert saved[0]["template"] == CHATML_TEMPLATE


def test_noop_without_tags(make_checkpoint):
    """A template without the tags is left alone."""
    base = make_checkpoint("base", chat_template=qwen3(), **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=qwen3(), **SPECIALS_CHATML)
    assert ftfix.check(base, ft, select=["FTX011"]).findings == []


def test_no_fix_when_removal_would_change_a_render(make_checkpoint):
    """Tag text in a string printed only with tools: removal would change that render, no fix."""
    tagged = CHATML_TEMPLATE.replace(
        "{% for message in messages %}",
        "{% if tools %}{{ 'train with {% generation %} tags' }}{% endif %}"
        "{% for message in messages %}{% generation %}",
    ).replace("{% endfor %}", "{% endgeneration %}{% endfor %}", 1)
    base = make_checkpoint("base", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=tagged, **SPECIALS_CHATML)
    before = (ft / "chat_template.jinja").read_bytes()
    finding = ftfix.check(base, ft, select=["FTX011"]).findings[0]
    assert finding.fix is None
    assert finding.data["renders_identical"] is False
    ftfix.repair(base, ft, select=["FTX011"], unsafe_fixes=True)
    assert (ft / "chat_template.jinja").read_bytes() == before


def test_judged_without_a_base(make_checkpoint):
    """The fine-tune's own templates are enough: with no base the tags are found and removed."""
    ft = make_checkpoint("ft", chat_template=_tagged_qwen3(), **SPECIALS_CHATML)
    before = _renders(ft)
    report = ftfix.check(ft, select=["FTX011"])
    assert [f.code for f in report.findings] == ["FTX011"]
    ftfix.repair(ft, select=["FTX011"])
    assert generation_tags((ft / "chat_template.jinja").read_text("utf-8")) == []
    assert _renders(ft) == before
