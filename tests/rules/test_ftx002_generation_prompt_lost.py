"""FTX002 generation-prompt-lost: judged by rendering; restore the base template."""

from __future__ import annotations

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    CHATML_TEMPLATE_NO_GEN_PROMPT,
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    SPECIALS_CHATML,
)
from helpers import (
    CHATML_ASSISTANT_HEADER,
    LLAMA3_ASSISTANT_HEADER,
    set_json_key,
    transformers_render,
)

import ftfix


def _codes(report):
    """Codes of the chat-template rules (FTX001-FTX009) only: other rules judge other files."""
    return [f.code for f in report.findings if f.code < "FTX010"]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_llama3_tail_lost(make_checkpoint, layout):
    """The Llama-3 case: the saved template lacks the add_generation_prompt tail."""
    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    assert not transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)

    report = ftfix.check(base, ft)
    assert _codes(report) == ["FTX002"]
    finding = report.findings[0]
    assert "appends nothing" in finding.message
    assert repr(LLAMA3_ASSISTANT_HEADER) in finding.message
    assert finding.data["expected_generation_prompt"] == LLAMA3_ASSISTANT_HEADER

    repaired = ftfix.repair(base, ft)
    assert repaired.exit_code == 0, repaired.render_text()
    assert transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)
    assert transformers_render(ft, add_generation_prompt=False) == transformers_render(
        base, add_generation_prompt=False
    )


def test_fix_chatml_tail_lost(make_checkpoint):
    """A ChatML fine-tune saved without the tail (LLaMA-Factory style) gets it back."""
    kw = {"chat_template": CHATML_TEMPLATE, **SPECIALS_CHATML}
    base = make_checkpoint("base", **kw)
    ft = make_checkpoint("ft", **{**kw, "chat_template": CHATML_TEMPLATE_NO_GEN_PROMPT})
    assert _codes(ftfix.check(base, ft)) == ["FTX002"]
    ftfix.repair(base, ft)
    assert transformers_render(ft).endswith(CHATML_ASSISTANT_HEADER)


def test_fix_every_location_restored(make_checkpoint):
    """When the broken template sits in both the .jinja file and the key, both are restored."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    set_json_key(ft / "tokenizer_config.json", "chat_template", LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    ftfix.repair(base, ft)
    import json

    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
    assert (
        json.loads((ft / "tokenizer_config.json").read_text())["chat_template"] == LLAMA3_TEMPLATE
    )


def test_noop_deliberate_format_change(make_checkpoint):
    """A fine-tune that switched to ChatML is not 'generation prompt lost': renders differ."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE_NO_GEN_PROMPT)
    assert "FTX002" not in _codes(ftfix.check(base, ft))


def test_noop_same_behaviour_different_text(make_checkpoint):
    """A template that differs in text but renders the same (whitespace control) is fine."""
    base = make_checkpoint("base")
    ft = make_checkpoint(
        "ft", chat_template=LLAMA3_TEMPLATE.replace("{% endfor %}", "{%- endfor %}")
    )
    assert _codes(ftfix.check(base, ft)) == []


def test_noop_base_ignores_flag_too(make_checkpoint):
    """If the base itself has no generation prompt, nothing was lost."""
    base = make_checkpoint("base", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT.replace("}}", " }}"))
    assert "FTX002" not in _codes(ftfix.check(base, ft))


def _deepseek_adapter(shared_dir, tmp_path, prompt):
    """A DeepSeek-R1-Distill adapter folder whose template's generation prompt is `prompt`
    (the real base template appends `<｜Assistant｜>`)."""
    import json as _json

    source = shared_dir / "realworld" / "deepseek-r1-distill-qwen-32b" / "tokenizer_config.json"
    config = _json.loads(source.read_text("utf-8"))
    old = "{{'<｜Assistant｜>'}}{% endif %}"
    assert config["chat_template"].endswith(old)
    config["chat_template"] = config["chat_template"][: -len(old)] + prompt + "{% endif %}"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}\n')
    (adapter / "tokenizer_config.json").write_text(_json.dumps(config, ensure_ascii=False))
    return shared_dir / "realworld" / "deepseek-r1-distill-qwen-32b", adapter


def test_noop_newer_deepseek_prompt_is_a_change_not_a_loss(shared_dir, tmp_path):
    """Issue 13 item 4: the newer R1 template opens `<｜Assistant｜><think>\\n`; the base's
    opens `<｜Assistant｜>`. Nothing was lost: no finding, and repair keeps the newer template."""
    from ckpt_builders import tree_digest

    base, adapter = _deepseek_adapter(shared_dir, tmp_path, "{{'<｜Assistant｜><think>\\n'}}")
    assert [f for f in ftfix.check(base, adapter).findings if f.code == "FTX002"] == []
    before = tree_digest(adapter)
    ftfix.repair(base, adapter)
    assert tree_digest(adapter) == before


def test_changed_prompt_missing_the_base_s_is_unsafe(shared_dir, tmp_path):
    """A non-empty prompt that lacks what the base's opens: reported, but never replaced
    without --unsafe-fixes."""
    from ckpt_builders import tree_digest

    base, adapter = _deepseek_adapter(shared_dir, tmp_path, "{{'<think>\\n'}}")
    (finding,) = [f for f in ftfix.check(base, adapter).findings if f.code == "FTX002"]
    assert finding.fix.applicability.value == "unsafe"
    before = tree_digest(adapter)
    ftfix.repair(base, adapter)
    assert tree_digest(adapter) == before
