"""FTX903 pickled-weights: .bin weights are never unpickled; the weight checks are skipped."""

from __future__ import annotations

import json

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
    assert skipped["FTX101"].needs == "the fine-tune's weights"
    assert "pytorch_model.bin" in skipped["FTX101"].reason
    assert not (tmp_path / "pwned").exists()
    assert tree_digest(ft) == before


def test_warning_sharded_bin(pair, tmp_path):
    """A .bin index with its shards present: one warning, on the first shard."""
    base, ft = pair
    (ft / "model.safetensors").unlink()
    shards = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    for shard in shards:
        (ft / shard).write_bytes(pickle_bomb(tmp_path / "pwned"))
    weight_map = {"lm_head.weight": shards[0], "model.norm.weight": shards[1]}
    (ft / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.path == shards[0]
    assert not (tmp_path / "pwned").exists()
