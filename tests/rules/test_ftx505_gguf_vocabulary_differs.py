"""FTX505 gguf-vocabulary-differs: the GGUF was converted from another tokenizer."""

from __future__ import annotations

from builders_gguf import write_gguf

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX505"]


def test_noop_same_vocabulary(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")
    assert _found(ftfix.check(None, ft, gguf=write_gguf(tmp_path / "a.gguf", ft))) == []


def test_added_token_missing_from_gguf(make_checkpoint, tmp_path):
    old = make_checkpoint("old")
    ft = make_checkpoint("ft", added_tokens=["<|tool_call|>"])
    gguf = write_gguf(tmp_path / "a.gguf", old)
    (finding,) = _found(ftfix.check(None, ft, gguf=gguf))
    assert finding.severity.value == "error" and finding.fix is None
    assert str(len(read_tokens(gguf))) in finding.message


def read_tokens(path):
    from ftfix.io.gguf import read_gguf

    return read_gguf(path).tokens
