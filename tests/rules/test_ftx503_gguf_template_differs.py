"""FTX503 gguf-template-differs: the GGUF's template is not the folder's (or the base's)."""

from __future__ import annotations

from builders_gguf import tensor_bytes, write_gguf
from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE

import ftfix
from ftfix.io.gguf import read_gguf


def _found(report):
    return [f for f in report.findings if f.code == "FTX503"]


def test_noop_same_template(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")
    assert _found(ftfix.check(None, ft, gguf=write_gguf(tmp_path / "a.gguf", ft))) == []


def test_against_base_is_a_warning_without_fix(make_checkpoint, tmp_path):
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE)
    (finding,) = _found(ftfix.check(base, write_gguf(tmp_path / "a.gguf", ft)))
    assert finding.severity.value == "warning" and finding.fix is None


def test_missing_template_restored_from_folder(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")
    gguf = write_gguf(tmp_path / "a.gguf", ft, template=None)
    data = tensor_bytes(gguf)
    (finding,) = _found(ftfix.check(None, ft, gguf=gguf))
    assert finding.severity.value == "error"
    report = ftfix.repair(None, ft, gguf=gguf)
    assert not report.errors
    assert read_gguf(gguf).chat_template == LLAMA3_TEMPLATE
    assert tensor_bytes(gguf) == data


def test_other_template_replaced_and_undone(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE)
    gguf = write_gguf(tmp_path / "a.gguf", ft, template=LLAMA3_TEMPLATE)
    before, data = gguf.read_bytes(), tensor_bytes(gguf)
    ftfix.repair(None, ft, gguf=gguf, select=["FTX503"])
    assert read_gguf(gguf).chat_template == CHATML_TEMPLATE
    assert tensor_bytes(gguf) == data and len(gguf.read_bytes()) != len(before)
    assert ftfix.undo(gguf) == ["a.gguf"]
    assert gguf.read_bytes() == before
    assert not (tmp_path / ".ftfix").exists()
