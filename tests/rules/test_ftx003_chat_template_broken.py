"""FTX003 chat-template-broken: templates are untrusted code, found broken, never run freely."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE, build_tokenizer, tree_digest
from helpers import LLAMA3_ASSISTANT_HEADER, set_json_key, transformers_render

import ftfix

SELECT = ["FTX003"]
SYSTEM_REFUSED = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('system role not supported') }}"
    "{% endif %}" + CHATML_TEMPLATE
)
BROKEN = {
    "syntax": ("{% for m in messages %}{{ m['content'] }}", "does not compile"),
    "escape": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "tried to escape the sandbox"),
    "mutate": (
        "{{ messages.append({'role': 'user', 'content': 'x'}) }}" + CHATML_TEMPLATE,
        "tried to escape the sandbox",
    ),
    "too-large": (
        "{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}",
        "producing too much output",
    ),
    "raises-everywhere": ("{{ raise_exception('unsupported') }}", "fails on every probe"),
}


def _codes(report):
    return [f.code for f in report.findings]


def test_noop_template_refusing_some_shapes(make_checkpoint):
    """A template that refuses the system role is not broken: those probes are skipped."""
    base = make_checkpoint("base", chat_template=SYSTEM_REFUSED)
    ft = make_checkpoint("ft", chat_template=SYSTEM_REFUSED)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_fix_broken_template_restored_only_with_unsafe(make_checkpoint, case):
    """Each kind of breakage is an error; plain repair writes nothing, --unsafe-fixes restores."""
    template, words = BROKEN[case]
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=template)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX003"]
    finding = report.findings[0]
    assert words in finding.message
    assert finding.path == "chat_template.jinja"
    assert finding.fix.applicability.value == "unsafe"

    before = tree_digest(ft)
    plain = ftfix.repair(base, ft, select=SELECT)
    assert tree_digest(ft) == before
    assert plain.exit_code == 1

    repaired = ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert repaired.exit_code == 0, repaired.render_text()
    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE


def test_fix_runaway_template_is_stopped(make_checkpoint):
    """A template stuck in nested loops is stopped by the time limit (once, not per probe)."""
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=loop)
    before = tree_digest(ft)
    report = ftfix.repair(base, ft, select=SELECT)
    assert _codes(report) == ["FTX003"]
    assert "ran out of time" in report.findings[0].message
    assert report.findings[0].data["kind"] == "timeout"
    assert tree_digest(ft) == before


def test_sandbox_escape_has_no_side_effect(make_checkpoint, tmp_path):
    """A template reaching for os.system is stopped by the sandbox; its command never runs."""
    marker = tmp_path / "pwned"
    hostile = (
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
        "{{ self.__init__.__globals__['__builtins__']['open']('" + str(marker) + "', 'w') }}"
    )
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=hostile)
    before = tree_digest(ft)
    report = ftfix.check(base, ft)
    assert "FTX003" in _codes(report)
    ftfix.repair(base, ft)
    assert not marker.exists()
    assert tree_digest(ft) == before


def test_finding_without_reference_has_no_fix(make_checkpoint):
    """With no base template to restore, the finding stands alone."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft", chat_template=BROKEN["syntax"][0])
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX003"]
    assert report.findings[0].fix is None


def test_fix_v4_key_restored(make_checkpoint):
    """v4: the broken template in tokenizer_config.json is replaced there, no .jinja created."""
    base = make_checkpoint("base", layout="v4")
    ft = make_checkpoint("ft", layout="v4")
    set_json_key(ft / "tokenizer_config.json", "chat_template", BROKEN["escape"][0])
    report = ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert _codes(report) == ["FTX003"]
    assert report.findings[0].path == "tokenizer_config.json"
    assert not (ft / "chat_template.jinja").exists()
    config = json.loads((ft / "tokenizer_config.json").read_text())
    assert config["chat_template"] == LLAMA3_TEMPLATE
    assert transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)


def test_fix_named_template(tmp_path):
    """A broken named template (`tool_use`) is reported by name and restored from the base's."""
    base = build_tokenizer(tmp_path / "base", extra_chat_templates={"tool_use": CHATML_TEMPLATE})
    ft = build_tokenizer(
        tmp_path / "ft", extra_chat_templates={"tool_use": "{% if %}" + CHATML_TEMPLATE}
    )
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX003"]
    finding = report.findings[0]
    assert "'tool_use'" in finding.message
    assert finding.path == "additional_chat_templates/tool_use.jinja"
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    restored = (ft / "additional_chat_templates" / "tool_use.jinja").read_text()
    assert restored == CHATML_TEMPLATE
    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE


# (An LFS pointer is FTX900's: reported as such, before any rendering.)
@pytest.mark.parametrize("text", ["", "hello {{ '' }}"], ids=["empty", "const"])
def test_constant_template_is_broken(pair, text):
    """Issue 19: a template that renders the same text for every chat (transformers: '') fails."""
    base, ft = pair
    (ft / "chat_template.jinja").write_text(text)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX003"]
    assert report.findings[0].data["kind"] == "constant"
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
