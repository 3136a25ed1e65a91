"""FTX504 gguf-eos-differs: converted before the folder's eos was fixed."""

from __future__ import annotations

from builders_gguf import write_gguf
from ckpt_builders import CHATML_TEMPLATE, TOKEN_IDS

import ftfix
from ftfix.io.gguf import KEY_EOS, read_gguf


def _found(report):
    return [f for f in report.findings if f.code == "FTX504"]


def test_noop_same_eos_and_against_base(make_checkpoint, tmp_path):
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "a.gguf", ft)
    assert _found(ftfix.check(None, ft, gguf=gguf)) == []
    # the base's eos (<|eot_id|>) is no reference for a ChatML fine-tune
    assert _found(ftfix.check(base, write_gguf(tmp_path / "b.gguf", ft))) == []


def test_stale_eos_patched_in_place(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "a.gguf", ft, eos="<|end_of_text|>")
    before, inode = gguf.read_bytes(), gguf.stat().st_ino
    (finding,) = _found(ftfix.check(None, ft, gguf=gguf))
    assert "<|im_end|>" in finding.message
    report = ftfix.repair(None, ft, gguf=gguf, select=["FTX504"])
    assert not report.errors
    after = gguf.read_bytes()
    assert gguf.stat().st_ino == inode  # patched where it stands, not rewritten
    assert read_gguf(gguf).int_value(KEY_EOS) == TOKEN_IDS["<|im_end|>"]
    assert (
        len(after) == len(before) and sum(a != b for a, b in zip(before, after, strict=True)) == 1
    )
