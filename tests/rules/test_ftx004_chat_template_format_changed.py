"""FTX004 chat-template-format-changed: a deliberate format change is a warning, never reverted."""

from __future__ import annotations

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    SPECIALS_CHATML,
    tree_digest,
)

import ftfix

SELECT = ["FTX004"]


def _codes(report):
    return [f.code for f in report.findings]


@pytest.mark.parametrize(
    "template",
    [
        LLAMA3_TEMPLATE.replace("{% endfor %}", "{%- endfor %}"),
        LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    ],
    ids=["same-renders-other-text", "only-the-prompt-differs"],
)
def test_noop_same_format(make_checkpoint, template):
    """Same renders (or only the generation prompt differing, FTX002's case) is no format change."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=template)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


def test_noop_base_broken_or_missing(make_checkpoint):
    """Without a usable reference there is nothing to compare."""
    ft_template = CHATML_TEMPLATE
    for name, base_template in (("none", None), ("broken", "{% if %}")):
        base = make_checkpoint(f"base-{name}", chat_template=base_template)
        ft = make_checkpoint(f"ft-{name}", chat_template=ft_template)
        assert _codes(ftfix.check(base, ft, select=SELECT)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_warning_chatml_finetune_kept(make_checkpoint, layout):
    """A Llama-3 base fine-tuned on ChatML: warning with the first differing text, no fix."""
    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX004"]
    finding = report.findings[0]
    assert finding.severity.value == "warning"
    assert finding.fix is None
    assert "<|im_start|>user" in finding.message
    assert "<|start_header_id|>" in finding.message
    assert finding.data["probe"] == "user"
    assert report.exit_code == 0  # a warning does not fail check by default

    before = tree_digest(ft)
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert tree_digest(ft) == before


def test_template_option_is_the_reference(make_checkpoint, tmp_path):
    """With --template, the fine-tune is compared with the template it was trained with."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    trained = tmp_path / "trained.jinja"
    trained.write_text(CHATML_TEMPLATE, "utf-8")
    assert _codes(ftfix.check(base, ft, select=SELECT, template=trained)) == []
    trained.write_text(LLAMA3_TEMPLATE, "utf-8")
    report = ftfix.check(base, ft, select=SELECT, template=trained)
    assert _codes(report) == ["FTX004"]
    assert "--template template" in report.findings[0].message
