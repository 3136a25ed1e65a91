"""FTX001 missing-chat-template: restore the base template in the fine-tune's own layout."""

from __future__ import annotations

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    LLAMA3_TEMPLATE,
    build_tokenizer,
    copy_checkpoint,
    tree_digest,
)
from helpers import LLAMA3_ASSISTANT_HEADER, set_json_key, transformers_render

import ftfix


def _codes(report):
    """Codes of the chat-template rules (FTX001-FTX009) only: other rules judge other files."""
    return [f.code for f in report.findings if f.code < "FTX010"]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_pair(make_checkpoint, tmp_path, layout):
    """A fine-tune with the base's template gives no finding."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert "FTX001" not in _codes(ftfix.check(base, ft))


def test_noop_base_without_template(make_checkpoint):
    """A base model without a template gives FTX001 nothing to restore."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft", chat_template=None)
    assert "FTX001" not in _codes(ftfix.check(base, ft))


def test_noop_adapter_without_tokenizer(make_checkpoint, tmp_path):
    """An adapter folder without tokenizer files uses the base's tokenizer: nothing to report."""
    base = make_checkpoint("base")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert "FTX001" not in _codes(ftfix.check(base, adapter))


def test_fix_v5_jinja_removed(pair):
    """v5: the deleted chat_template.jinja is written back byte for byte."""
    base, ft = pair
    (ft / "chat_template.jinja").unlink()
    report = ftfix.check(base, ft)
    assert _codes(report) == ["FTX001"]
    assert report.findings[0].path == "chat_template.jinja"
    assert report.exit_code == 1

    repaired = ftfix.repair(base, ft)
    assert repaired.exit_code == 0, repaired.render_text()
    assert (ft / "chat_template.jinja").read_bytes() == (base / "chat_template.jinja").read_bytes()
    assert transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)


def test_fix_v4_key_removed(pair_v4):
    """v4: the template goes back under tokenizer_config.json's key, not into a new .jinja file."""
    base, ft = pair_v4
    set_json_key(ft / "tokenizer_config.json", "chat_template", None)
    assert _codes(ftfix.check(base, ft)) == ["FTX001"]
    ftfix.repair(base, ft)
    assert not (ft / "chat_template.jinja").exists()
    assert (ft / "tokenizer_config.json").read_bytes() == (
        base / "tokenizer_config.json"
    ).read_bytes()
    assert transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)


def test_fix_named_templates_restored(tmp_path):
    """Every named template of the base is restored (v5: additional_chat_templates/)."""
    extra = {"tool_use": CHATML_TEMPLATE}
    base = build_tokenizer(tmp_path / "base", extra_chat_templates=extra)
    ft = build_tokenizer(tmp_path / "ft", chat_template=None)
    ftfix.repair(base, ft)
    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
    assert (ft / "additional_chat_templates" / "tool_use.jinja").read_text() == CHATML_TEMPLATE
    assert _codes(ftfix.check(base, ft)) == []


def test_fix_v4_base_into_v5_finetune(make_checkpoint, tmp_path):
    """A v4 base's key template is written as chat_template.jinja into a v5 fine-tune."""
    base = make_checkpoint("base", layout="v4")
    ft = make_checkpoint("ft", layout="v5", chat_template=None)
    ftfix.repair(base, ft)
    assert (ft / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
    assert transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)


def test_check_writes_nothing(pair):
    """check() is read-only even when it finds a fixable problem."""
    base, ft = pair
    (ft / "chat_template.jinja").unlink()
    before = tree_digest(ft)
    ftfix.check(base, ft)
    assert tree_digest(ft) == before


def test_fix_template_option_wins_over_base(make_checkpoint, tmp_path):
    """With --template, the template the model was trained with is installed, not the base's."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=None)
    trained = tmp_path / "trained.jinja"
    trained.write_text(CHATML_TEMPLATE, "utf-8")
    report = ftfix.repair(base, ft, select=["FTX001"], template=trained)
    assert _codes(report) == ["FTX001"]
    assert "--template" in report.findings[0].message
    assert report.findings[0].fix.applicability.value == "safe"
    assert (ft / "chat_template.jinja").read_text() == CHATML_TEMPLATE
