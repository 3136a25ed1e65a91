"""FTX902 missing-shard: the index names a shard the folder lacks."""

from __future__ import annotations

import pytest
from ckpt_builders import build_merged, copy_checkpoint

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX902"]


@pytest.fixture
def sharded(tmp_path):
    base = build_merged(tmp_path / "base", shards=2)
    return base, copy_checkpoint(base, tmp_path / "ft")


def test_noop_all_shards_present(sharded):
    """Every shard the index names is there."""
    base, ft = sharded
    assert _found(ftfix.check(base, ft)) == []


def test_error_each_missing_shard(sharded):
    """The second shard gone: one finding on it; the weight checks wait, the others run."""
    base, ft = sharded
    shards = sorted(p.name for p in ft.glob("model-*.safetensors"))
    for name in shards[1:]:
        (ft / name).unlink()
    (ft / "chat_template.jinja").unlink()  # FTX001 still finds this
    report = ftfix.check(base, ft)
    assert sorted(f.path for f in _found(report)) == shards[1:]
    assert all("is named by model.safetensors.index.json" in f.message for f in _found(report))
    assert "FTX001" in {f.code for f in report.findings}, report.render_text()
    assert "FTX101" in {s.code for s in report.skipped_rules}


def test_error_index_of_pickled_shards_alone(pair):
    """Only pytorch_model.bin.index.json was copied: its shards are reported missing."""
    base, ft = pair
    (ft / "model.safetensors").unlink()
    (ft / "pytorch_model.bin.index.json").write_text(
        '{"metadata": {}, "weight_map": {"lm_head.weight": "pytorch_model-00001-of-00002.bin",'
        ' "model.norm.weight": "pytorch_model-00002-of-00002.bin"}}'
    )
    report = ftfix.check(base, ft)
    assert sorted(f.path for f in _found(report)) == [
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ]
    assert "FTX903" not in {f.code for f in report.findings}  # no pickle is here to warn about
    assert report.exit_code == 1


def test_loader_fails_on_it(tmp_path):
    """Why it is an error: transformers cannot load a model with a shard missing."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    full = build_merged(tmp_path / "full", shards=2, full_model=True)
    sorted(full.glob("model-*.safetensors"))[-1].unlink()
    with pytest.raises((OSError, ValueError)):
        transformers.AutoModelForCausalLM.from_pretrained(full)
