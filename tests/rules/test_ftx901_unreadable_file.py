"""FTX901 unreadable-file: a damaged file is a finding on that file, not the end of the run.

The matrix of damaged files (every JSON config, tokenizer.json, templates, safetensors headers,
indexes) is in tests/test_bad_input.py; here the rule's own behaviour.
"""

from __future__ import annotations

import pytest
from ckpt_builders import tree_digest

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX901"]


def test_noop_healthy(pair):
    """A healthy pair: nothing unreadable."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_error_truncated_tokenizer_config_without_base(pair):
    """A cut-off tokenizer_config.json, checked alone: one error on it, exit 1, not bad input."""
    _, ft = pair
    data = (ft / "tokenizer_config.json").read_bytes()
    (ft / "tokenizer_config.json").write_bytes(data[: len(data) // 2])
    before = tree_digest(ft)
    report = ftfix.check(ft)
    (finding,) = _found(report)
    assert finding.path == "tokenizer_config.json"
    assert finding.message.startswith("invalid JSON")
    assert report.exit_code == 1
    assert tree_digest(ft) == before


def test_repair_writes_nothing_around_a_damaged_file(pair):
    """repair with a damaged config.json: the finding stays, nothing is written."""
    base, ft = pair
    (ft / "config.json").write_text('{"vocab_size": ')
    before = tree_digest(ft)
    report = ftfix.repair(base, ft)
    assert [f.path for f in _found(report)] == ["config.json"]
    assert report.written == []
    assert tree_digest(ft) == before


def test_loader_fails_on_it(pair):
    """Why it is an error: transformers cannot load the damaged config."""
    transformers = pytest.importorskip("transformers")
    _, ft = pair
    (ft / "config.json").write_text('{"vocab_size": ')
    with pytest.raises((OSError, ValueError)):
        transformers.AutoConfig.from_pretrained(ft)
