"""FTX008 no-chat-template: a base-model fine-tune without any template; --template installs one."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import CHATML_TEMPLATE, SPECIALS_CHATML, copy_checkpoint, tree_digest
from helpers import CHATML_ASSISTANT_HEADER, transformers_render

import ftfix
from ftfix.cli import main

SELECT = ["FTX001", "FTX008"]


def _codes(report):
    return [f.code for f in report.findings]


def _template_file(tmp_path, text=CHATML_TEMPLATE):
    path = tmp_path / "trained_with.jinja"
    path.write_text(text, "utf-8")
    return path


def test_noop_base_has_a_template(make_checkpoint):
    """When the base has a template, restoring it is FTX001's job, not FTX008's."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=None)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == ["FTX001"]


def test_noop_finetune_has_a_template(make_checkpoint):
    """A fine-tune that saved its own template while the base had none is not FTX008."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft")
    assert _codes(ftfix.check(base, ft, select=["FTX008"])) == []


def test_noop_adapter_without_tokenizer(make_checkpoint, tmp_path):
    """An adapter folder without tokenizer files uses the base's tokenizer: nothing to report."""
    base = make_checkpoint("base", chat_template=None)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert _codes(ftfix.check(base, adapter, select=["FTX008"])) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_finding_without_template_option(make_checkpoint, layout):
    """No template anywhere, and the stop list ends chat turns (<|eot_id|>): an error that
    names the way out, and nothing is written."""
    base = make_checkpoint("base", chat_template=None, layout=layout)
    ft = make_checkpoint("ft", chat_template=None, layout=layout)
    before = tree_digest(ft)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX008"]
    finding = report.findings[0]
    assert finding.severity.value == "error"
    assert "--template FILE" in finding.message
    assert finding.fix is None
    assert report.exit_code == 1
    ftfix.repair(base, ft, select=SELECT)
    assert tree_digest(ft) == before


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_template_option_installs_it(make_checkpoint, tmp_path, layout):
    """`template=` installs the trained-with template in the fine-tune's own layout."""
    base = make_checkpoint("base", chat_template=None, layout=layout, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=None, layout=layout, **SPECIALS_CHATML)
    template = _template_file(tmp_path)
    report = ftfix.check(base, ft, select=SELECT, template=template)
    assert _codes(report) == ["FTX008"]
    assert report.findings[0].fix.applicability.value == "safe"

    repaired = ftfix.repair(base, ft, select=SELECT, template=template)
    assert repaired.exit_code == 0, repaired.render_text()
    if layout == "v5":
        assert (ft / "chat_template.jinja").read_text("utf-8") == CHATML_TEMPLATE
    else:
        assert not (ft / "chat_template.jinja").exists()
        config = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))
        assert config["chat_template"] == CHATML_TEMPLATE
    assert transformers_render(ft).endswith(CHATML_ASSISTANT_HEADER)
    # Once installed, the template is the fine-tune's own: a second repair changes nothing.
    after = tree_digest(ft)
    assert _codes(ftfix.repair(base, ft, select=SELECT, template=template)) == []
    assert tree_digest(ft) == after


def test_fix_template_text_through_the_cli(make_checkpoint, tmp_path, capsys):
    """`ftfix repair --template FILE` installs the file; check then passes."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft", chat_template=None)
    template = _template_file(tmp_path)
    assert main(["check", str(base), str(ft), "--select", "FTX008"]) == 1
    assert "FTX008" in capsys.readouterr().out
    assert (
        main(["repair", str(base), str(ft), "--select", "FTX008", "--template", str(template)]) == 0
    )
    assert (ft / "chat_template.jinja").read_text("utf-8") == CHATML_TEMPLATE


def test_fix_realworld_llama2_base(shared_dir, tmp_path):
    """Llama-2-7b-hf (a real base without template) made a chat model, fixed by --template."""
    base = shared_dir / "realworld" / "llama-2-7b-hf"
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _codes(ftfix.check(base, ft, select=SELECT)) == ["FTX008"]
    llama2 = shared_dir / "realworld" / "chujiezheng-chat-templates" / "chat_templates"
    template = llama2 / "llama-2-chat.jinja"
    repaired = ftfix.repair(base, ft, select=SELECT, template=template)
    assert repaired.exit_code == 0, repaired.render_text()
    assert "[INST]" in transformers_render(ft)


def _phi2_pair(shared_dir, tmp_path):
    """The real Phi-2 LoRA folder from the wild corpus (no template, bos = eos =
    <|endoftext|>), and a base holding the same (Phi-2's own) tokenizer files."""
    import shutil

    source = shared_dir / "wild" / "018-shettysaish-phi2-ckpt" / "ft"
    ft = tmp_path / "ft"
    shutil.copytree(source, ft)
    base = tmp_path / "phi-2"
    base.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.json", "merges.txt", "added_tokens.json"):  # fmt: skip
        shutil.copy(source / name, base / name)
    return base, ft


def test_info_raw_text_phi2_finetune(shared_dir, tmp_path):
    """Issue 13 item 2: a Phi-2 fine-tune prompted with raw text, base without a template
    either: info, and check passes."""
    base, ft = _phi2_pair(shared_dir, tmp_path)
    report = ftfix.check(base, ft, select=["FTX008"])
    assert [(f.code, f.severity.value) for f in report.findings] == [("FTX008", "info")]
    assert report.exit_code == 0


def test_info_raw_text_base_finetune(make_checkpoint):
    """A base model (eos <|end_of_text|>, no template) fine-tuned on raw text: info."""
    kw = {"chat_template": None, "bos_token": None, "eos_token": "<|end_of_text|>"}
    base = make_checkpoint("base", generation_eos=2, **kw)
    ft = make_checkpoint("ft", generation_eos=2, **kw)
    report = ftfix.check(base, ft)
    assert [(f.code, f.severity.value) for f in report.findings if f.code == "FTX008"] == [
        ("FTX008", "info")
    ]
    assert report.exit_code == 0


def test_error_when_the_finetune_added_chat_tokens(make_checkpoint):
    """Chat markers the fine-tune added (the base lacks them) say it is meant for chat."""
    kw = {"chat_template": None, "bos_token": None, "eos_token": "<|end_of_text|>"}
    base = make_checkpoint("base", generation_eos=2, **kw)
    ft = make_checkpoint(
        "ft", generation_eos=2, added_tokens=["<|turn_start|>", "<|turn_end|>"], **kw
    )
    finding = next(f for f in ftfix.check(base, ft).findings if f.code == "FTX008")
    assert finding.severity.value == "error"
    assert "added the chat tokens <|turn_end|>, <|turn_start|>" in finding.message
