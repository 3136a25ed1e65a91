"""FTX007 template-marker-not-single-token: markers the template emits must be one token id."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import CHATML_TEMPLATE, SPECIALS_CHATML, TOKEN_IDS, copy_checkpoint, tree_digest
from helpers import set_json_key

import ftfix
from ftfix.analysis.probes import render_all
from ftfix.analysis.templates import marker_style, markers_in, template_markers

SELECT = ["FTX007"]
LLAMA2_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def _codes(report):
    return [f.code for f in report.findings]


def _drop_added_token(folder, token):
    """Remove `token` from tokenizer.json's added tokens, as a tokenizer saved without it."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text("utf-8"))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != token]
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")


def test_markers_found_in_renders():
    """The marker patterns: pipes, fullwidth bars, tags and brackets; prose like <<SYS>> is not."""
    text = "<s>[INST] <<SYS>>\nhi<|im_start|>user<｜Assistant｜><start_of_turn></s> a < b >"
    assert markers_in(text) == [
        "<s>",
        "[INST]",
        "<|im_start|>",
        "<｜Assistant｜>",
        "<start_of_turn>",
        "</s>",
    ]
    assert [marker_style(m) for m in ("<|x|>", "<｜x｜>", "<x>", "[X]")] == [
        "pipe",
        "fullwidth",
        "tag",
        "bracket",
    ]
    renders = render_all(CHATML_TEMPLATE, {})
    assert template_markers(renders) == ["<|im_start|>", "<|im_end|>"]


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_markers_are_tokens(make_checkpoint, layout):
    """Llama 3 and ChatML markers are all added tokens of the test tokenizer."""
    base = make_checkpoint("base", layout=layout)
    ft = make_checkpoint("ft", layout=layout, chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


def test_noop_plain_text_markers(make_checkpoint):
    """Llama 2's [INST] is plain text by design: no bracket tokens anywhere, nothing to report."""
    kw = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
    base = make_checkpoint("base", chat_template=LLAMA2_TEMPLATE, **kw)
    ft = make_checkpoint("ft", chat_template=LLAMA2_TEMPLATE, **kw)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_error_marker_lost_from_tokenizer(make_checkpoint, layout):
    """The fine-tune's tokenizer lost <|im_start|>, which the base has: error, nothing written."""
    base = make_checkpoint("base", layout=layout, chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", layout=layout, chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    _drop_added_token(ft, "<|im_start|>")
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX007"]
    finding = report.findings[0]
    assert finding.severity.value == "error"
    assert finding.message.startswith("<|im_start|> is not one token")
    assert f"base tokenizer has it as one token (id {TOKEN_IDS['<|im_start|>']})" in finding.message
    assert finding.data["pieces"][:2] == ["<", "|"]
    assert finding.fix is None
    before = tree_digest(ft)
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert tree_digest(ft) == before


def test_error_marker_never_added(make_checkpoint):
    """A <|...|> marker the tokenizer never had, among its other <|...|> tokens: error."""
    template = CHATML_TEMPLATE.replace(
        "'<|im_start|>' + message['role']", "'<|im_sep|>' + message['role']"
    )
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=template, **SPECIALS_CHATML)
    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX007"]
    assert "<|im_sep|> is not one token" in report.findings[0].message
    assert "written the same way" in report.findings[0].message


def test_end_of_turn_marker_left_to_ftx205(make_checkpoint):
    """A turn-end marker that is not a token is FTX205's finding, not reported twice."""
    template = CHATML_TEMPLATE.replace("'<|im_end|>'", "'<|im_stop|>'")
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=template, **SPECIALS_CHATML)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == []


def test_realworld_phi3_with_chatml(shared_dir, tmp_path):
    """The real Phi-3 tokenizer: its own template's markers are tokens; ChatML's are not."""
    real = shared_dir / "realworld" / "phi-3-mini-128k-instruct"
    ft = copy_checkpoint(real, tmp_path / "ft")
    assert _codes(ftfix.check(real, ft, select=SELECT)) == []
    set_json_key(ft / "tokenizer_config.json", "chat_template", CHATML_TEMPLATE)
    report = ftfix.check(real, ft, select=SELECT)
    assert _codes(report) == ["FTX007"]
    finding = report.findings[0]
    assert finding.data["marker"] == "<|im_start|>"
    assert len(finding.data["ids"]) > 1
    assert "".join(finding.data["pieces"]) == "<|im_start|>"


def test_unknown_token_is_not_the_marker():
    """A word-level vocabulary that maps a marker to one <unk> id has not got the marker."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel

    from ftfix.rules.templates.template_marker_not_single_token import _one_token

    tok = Tokenizer(WordLevel({"<unk>": 0, "<bos>": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    assert _one_token(tok, "<start_of_turn>") is None
    assert _one_token(tok, "<bos>") == 1
    assert _one_token(tok, "<unk>") == 0
