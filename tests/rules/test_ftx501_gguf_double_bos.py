"""FTX501 gguf-double-bos: template prints BOS and add_bos_token adds another."""

from __future__ import annotations

from builders_gguf import write_gguf

import ftfix
from ftfix.io.gguf import KEY_ADD_BOS, read_gguf


def _found(report):
    return [f for f in report.findings if f.code == "FTX501"]


def test_noop_without_add_bos(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")  # Llama 3 template starting with bos_token
    assert _found(ftfix.check(None, write_gguf(tmp_path / "a.gguf", ft, add_bos=False))) == []


def test_double_bos_unsafe_fix_patches_one_byte(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")
    gguf = write_gguf(tmp_path / "a.gguf", ft, add_bos=True)
    (finding,) = _found(ftfix.check(None, gguf))
    assert "<|begin_of_text|>" in finding.message
    before = gguf.read_bytes()
    ftfix.repair(None, gguf)  # unsafe: not applied
    assert gguf.read_bytes() == before
    ftfix.repair(None, gguf, unsafe_fixes=True, select=["FTX501"])
    after = gguf.read_bytes()
    assert read_gguf(gguf).get(KEY_ADD_BOS) is False
    assert (
        len(after) == len(before) and sum(a != b for a, b in zip(before, after, strict=True)) == 1
    )


def test_noop_template_without_bos(make_checkpoint, tmp_path):
    """add_bos_token with a template that prints no BOS (ChatML): one BOS, as trained."""
    from ckpt_builders import CHATML_TEMPLATE

    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE)
    assert _found(ftfix.check(None, write_gguf(tmp_path / "a.gguf", ft, add_bos=True))) == []
