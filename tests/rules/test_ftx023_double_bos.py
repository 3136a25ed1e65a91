"""FTX023 double-bos: the tokenizer adds BOS and the template emits it too (ids shown)."""

from __future__ import annotations

import shutil

import pytest
from ckpt_builders import CHATML_TEMPLATE, copy_checkpoint, tree_digest
from helpers import MESSAGES

import ftfix

OURS = ["FTX023"]


def _findings(base, ft):
    return ftfix.check(base, ft, select=OURS).findings


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_template_bos_only(make_checkpoint, tmp_path, layout):
    """The template emits BOS and the tokenizer adds none: one BOS, no finding."""
    base = make_checkpoint("base", layout=layout)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []


def test_noop_tokenizer_bos_only(make_checkpoint):
    """The tokenizer adds BOS and the template has none: one BOS, no finding."""
    base = make_checkpoint("base", add_bos=True, chat_template=CHATML_TEMPLATE)
    ft = make_checkpoint("ft", add_bos=True, chat_template=CHATML_TEMPLATE)
    assert _findings(base, ft) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_double_bos_reported_with_ids(make_checkpoint, layout):
    """Both add BOS: warning with the leading ids, exactly what transformers produces."""
    from transformers import AutoTokenizer

    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, add_bos=True)
    tok = AutoTokenizer.from_pretrained(str(ft))
    prompt = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    retokenized = tok(prompt)["input_ids"]
    assert retokenized[:2] == [1, 1]
    chat_ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    chat_ids = chat_ids["input_ids"] if isinstance(chat_ids, dict) else chat_ids
    assert chat_ids[:2] != [1, 1]  # the tokenize=True path does not double it

    [finding] = _findings(base, ft)
    assert finding.severity.value == "warning"
    assert finding.message.startswith("tokenizer(rendered chat) starts with two BOS: [1, 1, ")
    assert "tokenizer.json post_processor adds '<|begin_of_text|>' (1)" in finding.message
    assert "the base does the same" not in finding.message
    assert finding.data["input_ids"][:2] == [1, 1]
    assert finding.fix is None

    before = tree_digest(ft)
    ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert tree_digest(ft) == before


def test_fix_inherited_double_bos_says_so(make_checkpoint, tmp_path):
    """When the base has the same double BOS the message says so."""
    base = make_checkpoint("base", add_bos=True)
    [finding] = _findings(base, copy_checkpoint(base, tmp_path / "ft"))
    assert finding.message.endswith("the base does the same")


@pytest.mark.parametrize("name", ["internlm2-chat-7b", "gemma-2-2b-it"])
def test_realworld_add_bos_token_and_template_bos(shared_dir, tmp_path, name):
    """InternLM2 and Gemma-2 set add_bos_token and start the template with bos_token."""
    source = shared_dir / "realworld" / name
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        shutil.copytree(source, folder)
        for child in folder.iterdir():
            child.chmod(0o644)
    [finding] = _findings(base, ft)
    bos_id = {"internlm2-chat-7b": 1, "gemma-2-2b-it": 2}[name]
    assert finding.data["input_ids"] == [bos_id, bos_id]
    assert "tokenizer_config.json add_bos_token adds" in finding.message
