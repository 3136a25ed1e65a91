"""FTX006 chat-template-locations-disagree: every place holds the template transformers loads."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    SPECIALS_CHATML,
    build_tokenizer,
    tree_digest,
)
from helpers import CHATML_ASSISTANT_HEADER, set_json_key, transformers_render

import ftfix

SELECT = ["FTX006"]


def _codes(report):
    return [f.code for f in report.findings]


def _key(folder, file="tokenizer_config.json"):
    return json.loads((folder / file).read_text("utf-8"))["chat_template"]


@pytest.mark.parametrize(
    "stale",
    [LLAMA3_TEMPLATE, LLAMA3_TEMPLATE.replace("{% endfor %}", "{%- endfor %}")],
    ids=["identical", "same-renders"],
)
def test_noop_copies_agree(make_checkpoint, stale):
    """Two copies that render the same (even with different text) agree."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_json_key(ft / "tokenizer_config.json", "chat_template", stale)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


def test_fix_stale_key_unsafe(make_checkpoint):
    """.jinja holds the fine-tune's ChatML, the key the base's Llama 3: unsafe, key rewritten."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    set_json_key(ft / "tokenizer_config.json", "chat_template", LLAMA3_TEMPLATE)
    rendered = transformers_render(ft)

    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX006"]
    finding = report.findings[0]
    assert finding.severity.value == "error"
    assert finding.path == "tokenizer_config.json"
    assert "llama.cpp" in finding.message
    assert "transformers loads chat_template.jinja" in finding.message
    assert finding.fix.applicability.value == "unsafe"

    before = tree_digest(ft)
    ftfix.repair(base, ft, select=SELECT)
    assert tree_digest(ft) == before

    repaired = ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert repaired.exit_code == 0, repaired.render_text()
    assert _key(ft) == CHATML_TEMPLATE
    assert transformers_render(ft) == rendered  # what transformers serves is unchanged
    assert rendered.endswith(CHATML_ASSISTANT_HEADER)


def test_fix_stale_key_safe_when_copying_the_base(make_checkpoint):
    """When the loaded template is the base's own, rewriting the stale copy is safe."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_json_key(ft / "tokenizer_config.json", "chat_template", CHATML_TEMPLATE)
    report = ftfix.repair(base, ft, select=SELECT)
    assert report.findings[0].fix.applicability.value == "safe"
    assert report.exit_code == 0, report.render_text()
    assert _key(ft) == LLAMA3_TEMPLATE


def test_fix_named_template_in_key_list(tmp_path):
    """A stale `tool_use` in the key's list is replaced; the list keeps its other entries."""
    extra = {"tool_use": CHATML_TEMPLATE}
    base = build_tokenizer(tmp_path / "base", extra_chat_templates=extra)
    ft = build_tokenizer(tmp_path / "ft", extra_chat_templates=extra)
    stale = [
        {"name": "default", "template": LLAMA3_TEMPLATE},
        {"name": "tool_use", "template": LLAMA3_TEMPLATE},
    ]
    set_json_key(ft / "tokenizer_config.json", "chat_template", stale)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX006"]
    assert "'tool_use'" in report.findings[0].message
    assert report.findings[0].data["templates"] == ["tool_use"]

    ftfix.repair(base, ft, select=SELECT)
    assert _key(ft) == [
        {"name": "default", "template": LLAMA3_TEMPLATE},
        {"name": "tool_use", "template": CHATML_TEMPLATE},
    ]
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


def test_fix_processor_chat_template_json(make_checkpoint):
    """A processor's chat_template.json (read by AutoProcessor) is brought in line too."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    processor = ft / "chat_template.json"
    processor.write_text(json.dumps({"chat_template": CHATML_TEMPLATE}, indent=2) + "\n")
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX006"]
    assert report.findings[0].path == "chat_template.json"
    assert "AutoProcessor" in report.findings[0].message
    ftfix.repair(base, ft, select=SELECT)
    assert _key(ft, "chat_template.json") == LLAMA3_TEMPLATE


def test_no_fix_when_loaded_template_lost_the_prompt(make_checkpoint):
    """A stale copy that still has the generation prompt is not overwritten by a worse one."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    set_json_key(ft / "tokenizer_config.json", "chat_template", LLAMA3_TEMPLATE)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX006"]
    assert report.findings[0].fix is None
    # The whole repair restores the base's template everywhere (FTX002) and agrees with itself.
    ftfix.repair(base, ft, select=["FTX00"])
    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
    assert _key(ft) == LLAMA3_TEMPLATE
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []
