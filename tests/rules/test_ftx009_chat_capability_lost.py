"""FTX009 chat-capability-lost: real templates stripped of one capability, found and restored."""

from __future__ import annotations

import pytest
from builders_capabilities import STRIPS, corpus_template, edit, qwen3, realworld_template
from ckpt_builders import CHATML_TEMPLATE, SPECIALS_CHATML

import ftfix
from ftfix.findings import Applicability

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _specials(name: str) -> dict:
    return dict(SPECIALS_CHATML) if name.startswith("qwen") else {}


def _transformers_tools_render(path) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}],
        tools=[WEATHER],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("name", list(STRIPS))
def test_stripped_capability_found_and_restored(make_checkpoint, name):
    """Each real template stripped of one capability: named, and the base restored byte-exact."""
    load, old, new, capability = STRIPS[name]
    original = load()
    base = make_checkpoint("base", chat_template=original, **_specials(name))
    ft = make_checkpoint("ft", chat_template=edit(original, old, new), **_specials(name))

    report = ftfix.check(base, ft, select=["FTX009"])
    assert [f.code for f in report.findings] == ["FTX009"]
    finding = report.findings[0]
    lost = [loss["capability"] for loss in finding.data["lost"]]
    assert lost[0] == capability
    assert capability in finding.message
    assert finding.fix is not None
    assert finding.fix.applicability is Applicability.SAFE

    repaired = ftfix.repair(base, ft, select=["FTX009"])
    assert repaired.exit_code == 0, repaired.render_text()
    assert (ft / "chat_template.jinja").read_text("utf-8") == original
    assert ftfix.check(base, ft, select=["FTX009"]).findings == []


def test_tools_reach_the_prompt_again_in_transformers(make_checkpoint):
    """Qwen3 without its tools branch: transformers drops the tool; after repair it renders it."""
    original = qwen3()
    base = make_checkpoint("base", chat_template=original, **SPECIALS_CHATML)
    ft = make_checkpoint(
        "ft", chat_template=edit(original, "{%- if tools %}", "{%- if false %}"), **SPECIALS_CHATML
    )
    assert "get_weather" not in _transformers_tools_render(ft)
    finding = ftfix.check(base, ft, select=["FTX009"]).findings[0]
    assert "Ollama" in finding.message
    ftfix.repair(base, ft, select=["FTX009"])
    assert "get_weather" in _transformers_tools_render(ft)


def test_no_fix_when_the_template_also_differs_elsewhere(make_checkpoint):
    """Tools lost and the system turn reworded: reported, but restoring would change more."""
    original = qwen3()
    stripped = edit(original, "{%- if tools %}", "{%- if false %}")
    reworded = edit(
        stripped,
        "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}",
        "{{- '<|im_start|>system\\nyou: ' + messages[0].content + '<|im_end|>\\n' }}",
    )
    base = make_checkpoint("base", chat_template=original, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=reworded, **SPECIALS_CHATML)
    before = (ft / "chat_template.jinja").read_bytes()
    finding = ftfix.check(base, ft, select=["FTX009"]).findings[0]
    assert finding.data["lost"][0]["capability"] == "tools"
    assert finding.fix is None
    ftfix.repair(base, ft, select=["FTX009"], unsafe_fixes=True)
    assert (ft / "chat_template.jinja").read_bytes() == before


def test_noop_healthy_template_with_every_capability(make_checkpoint):
    """Qwen3 saved with a cosmetic difference keeps every capability: nothing to say or do."""
    original = qwen3()
    base = make_checkpoint("base", chat_template=original, **SPECIALS_CHATML)
    ft = make_checkpoint(
        "ft", chat_template=original + "{# saved by a trainer #}", **SPECIALS_CHATML
    )
    before = (ft / "chat_template.jinja").read_bytes()
    assert ftfix.check(base, ft, select=["FTX009", "FTX010", "FTX011"]).findings == []
    ftfix.repair(base, ft, select=["FTX0"])
    assert (ft / "chat_template.jinja").read_bytes() == before


def test_noop_when_the_base_has_no_tools_either(make_checkpoint):
    """A ChatML template ignores tools, and so does its base's: nothing was lost."""
    base = make_checkpoint("base", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    ft = make_checkpoint(
        "ft", chat_template=CHATML_TEMPLATE.replace("}}", " }}"), **SPECIALS_CHATML
    )
    assert ftfix.check(base, ft, select=["FTX009"]).findings == []


def test_template_option_is_the_reference(make_checkpoint, tmp_path):
    """With --template the training template, not the base's, says what was lost."""
    original = qwen3()
    base = make_checkpoint("base", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    ft = make_checkpoint(
        "ft", chat_template=edit(original, "{%- if tools %}", "{%- if false %}"), **SPECIALS_CHATML
    )
    assert ftfix.check(base, ft, select=["FTX009"]).findings == []
    trained = tmp_path / "trained.jinja"
    trained.write_text(original, "utf-8")
    report = ftfix.check(base, ft, select=["FTX009"], template=trained)
    assert [f.code for f in report.findings] == ["FTX009"]


def test_real_fine_tune_that_lost_tools(make_checkpoint):
    """Reflection-Llama-3.1-70B saved a plain Llama 3 template over Llama 3.1 Instruct's.

    Its base renders tools and tool calls; the published fine-tune's template drops both, and
    renders plain conversations differently too (no "Cutting Knowledge Date" system header), so
    the loss is named without a fix: restoring the base template would change more than tools.
    """
    base_template = corpus_template("meta-llama-Llama-3.1-8B-Instruct")
    published = realworld_template("reflection-llama-3.1-70b")
    base = make_checkpoint("base", chat_template=base_template)
    ft = make_checkpoint("ft", chat_template=published)
    report = ftfix.check(base, ft, select=["FTX004", "FTX009"])
    assert [f.code for f in report.findings] == ["FTX004", "FTX009"]
    finding = report.findings[1]
    assert [(loss["capability"], loss["how"]) for loss in finding.data["lost"]] == [
        ("tools", "dropped"),
        ("tool calls", "dropped"),
    ]
    assert finding.fix is None
    assert "does not support tools" in finding.message
