"""FTX903 pickled-weights: .bin weights are never unpickled; the weight checks are skipped."""

from __future__ import annotations

from builders_files import pickle_bomb
from ckpt_builders import tree_digest

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX903"]


def test_noop_safetensors(pair):
    """safetensors weights: nothing to say."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_noop_bin_next_to_safetensors(pair, tmp_path):
    """A stray .bin next to model.safetensors: loaders take the safetensors; not reported."""
    base, ft = pair
    (ft / "pytorch_model.bin").write_bytes(pickle_bomb(tmp_path / "pwned"))
    assert _found(ftfix.check(base, ft)) == []
    assert not (tmp_path / "pwned").exists()


def test_warning_bin_only_others_run(pair, tmp_path):
    """Only pytorch_model.bin: a warning, the weight checks skipped with a note, the rest runs
    (FTX001 finds the missing template), and the pickle is never run."""
    base, ft = pair
    (ft / "model.safetensors").unlink()
    (ft / "pytorch_model.bin").write_bytes(pickle_bomb(tmp_path / "pwned"))
    (ft / "chat_template.jinja").unlink()
    before = tree_digest(ft)
    report = ftfix.check(base, ft)
    (finding,) = _found(report)
    assert finding.path == "pytorch_model.bin"
    assert finding.severity is ftfix.Severity.WARNING
    assert "FTX001" in {f.code for f in report.findings}
    skipped = {s.code: s for s in report.skipped_rules}
    assert "FTX101" in skipped and skipped["FTX101"].needs == "pytorch_model.bin"
    assert not (tmp_path / "pwned").exists()
    assert tree_digest(ft) == before
