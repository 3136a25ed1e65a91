"""FTX024 no-bos-added: prompts without BOS; restore the base's BOS behaviour when it had one."""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import CHATML_TEMPLATE, SPECIALS_CHATML, build_tokenizer, copy_checkpoint
from helpers import set_json_key

import ftfix

OURS = ["FTX024"]
TEXTS = ("Hello, how are you?", "<|im_start|>user\nhi there<|im_end|>\n")


def _findings(base, ft):
    return ftfix.check(base, ft, select=OURS).findings


def _ids(path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    return [tok(text)["input_ids"] for text in TEXTS]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy(make_checkpoint, tmp_path, layout):
    """The template carries the BOS: no finding."""
    base = make_checkpoint("base", layout=layout)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []


def test_noop_no_bos_anywhere_and_none_declared(make_checkpoint):
    """A ChatML tokenizer without a bos_token and no config bos id: nothing to say."""
    kw = {"chat_template": CHATML_TEMPLATE, **SPECIALS_CHATML}
    assert _findings(make_checkpoint("base", **kw), make_checkpoint("ft", **kw)) == []


def test_noop_finetune_dropped_tokenizer_bos_but_template_has_it(make_checkpoint):
    """Turning the tokenizer's BOS off when the template emits one avoids double BOS: fine."""
    base = make_checkpoint("base", add_bos=True)
    assert _findings(base, make_checkpoint("ft", add_bos=False)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_bos_lost_restored(make_checkpoint, layout):
    """The base's post-processor added BOS, the fine-tune's does not: restored, safely."""
    base = make_checkpoint("base", layout=layout, add_bos=True, chat_template=CHATML_TEMPLATE)
    ft = make_checkpoint("ft", layout=layout, add_bos=False, chat_template=CHATML_TEMPLATE)
    assert _ids(ft) != _ids(base)
    [finding] = _findings(base, ft)
    assert finding.severity.value == "warning"
    assert finding.path == "tokenizer.json"
    assert "no longer adds BOS '<|begin_of_text|>' (1)" in finding.message
    assert finding.fix.applicability.value == "safe"

    report = ftfix.repair(base, ft, select=OURS)
    assert report.exit_code == 0
    assert _ids(ft) == _ids(base)
    assert _ids(ft)[0][0] == 1
    assert _findings(base, ft) == []


def test_fix_add_bos_token_without_tokenizer_json(tmp_path):
    """Without tokenizer.json, add_bos_token decides; the base's true is put back."""
    base = build_tokenizer(tmp_path / "base", layout="v4", chat_template=CHATML_TEMPLATE)
    ft = build_tokenizer(tmp_path / "ft", layout="v4", chat_template=CHATML_TEMPLATE)
    for folder, flag in ((base, True), (ft, False)):
        (folder / "tokenizer.json").unlink()
        set_json_key(folder / "tokenizer_config.json", "add_bos_token", flag)
    [finding] = _findings(base, ft)
    assert "tokenizer_config.json add_bos_token" in finding.message
    ftfix.repair(base, ft, select=OURS)
    assert json.loads((ft / "tokenizer_config.json").read_text())["add_bos_token"] is True


def test_info_case_is_never_fixed(make_checkpoint):
    """The info case has no fix: nothing is written, even with unsafe fixes allowed."""
    kw = {"chat_template": CHATML_TEMPLATE}
    base = make_checkpoint("base", **kw)
    ft = make_checkpoint("ft", **kw)
    [finding] = _findings(base, ft)
    assert finding.severity.value == "info"
    assert finding.fix is None
    assert "bos_token is '<|begin_of_text|>' (1)" in finding.message
    before = (ft / "tokenizer.json").read_bytes()
    ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert (ft / "tokenizer.json").read_bytes() == before


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen2.5-14b-instruct", "config.json declares bos_token_id 151643 ('<|endoftext|>')"),
        ("phi-3-mini-128k-instruct", "bos_token is '<s>' (1)"),
    ],
)
def test_realworld_info(shared_dir, tmp_path, name, expected):
    """Qwen2.5 and Phi-3 add no BOS although one is declared: an info note, no fix."""
    source = shared_dir / "realworld" / name
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        shutil.copytree(source, folder)
        for child in folder.iterdir():
            child.chmod(0o644)
    [finding] = _findings(base, ft)
    assert finding.severity.value == "info"
    assert expected in finding.message


def _tokenizer_copy(source, dest, names):
    import shutil

    dest.mkdir()
    for name in names:
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    return dest


@pytest.mark.parametrize(
    "case", ["018-shettysaish-phi2-ckpt", "045-smollm2-merged"], ids=["phi-2", "smollm2"]
)
def test_noop_gpt2_style_bos_is_eos(shared_dir, tmp_path, case):
    """Issue 13 item 6: real Phi-2 and SmolLM2 tokenizers declare <|endoftext|> as bos and eos
    and never prepend it, by design: silent."""
    source = shared_dir / "wild" / case / "ft"
    names = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "vocab.json", "merges.txt", "added_tokens.json", "config.json"]  # fmt: skip
    base = _tokenizer_copy(source, tmp_path / "base", names)
    ft = _tokenizer_copy(source, tmp_path / "ft", names)
    report = ftfix.check(base, ft)
    assert [f for f in report.findings if f.code == "FTX024"] == []
