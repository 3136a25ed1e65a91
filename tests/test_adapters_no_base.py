"""The adapter rules without a base: those judging the adapter alone run, the others are skipped
with the notice (issue 12's needs), and nothing crashes."""

from __future__ import annotations

import pytest
from builders_adapters import (
    copy_adapter,
    drop_layers,
    empty_tensors,
    kit,
    rewrite_tensors,
    without_base,
    zero_lora_b,
)

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 with an empty Hugging Face cache: the declared base cannot be had."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _codes(report):
    return [f.code for f in report.findings if f.code.startswith("FTX30")]


def _skipped(report):
    return {s.code for s in report.skipped_rules if s.code.startswith("FTX30")}


def test_healthy_adapter_alone(k, tmp_path, offline):
    """Nothing found; the rules that compare with the base are listed as skipped."""
    adapter = without_base(copy_adapter(k["attention"], tmp_path / "ad"))
    report = ftfix.check(adapter)
    assert _codes(report) == []
    assert _skipped(report) == {"FTX301", "FTX304"}


@pytest.mark.parametrize(
    ("breaks", "code"),
    [
        (empty_tensors, "FTX300"),
        (zero_lora_b, "FTX303"),
        (lambda ad: drop_layers_of(ad, ".layers.1.self_attn.v_proj."), "FTX302"),
    ],
    ids=["empty", "untrained", "layer-gap"],
)
def test_broken_adapter_alone(k, tmp_path, offline, breaks, code):
    """Empty tensors, zero lora_B and a gap between layers are seen from the adapter alone."""
    adapter = without_base(copy_adapter(k["attention"], tmp_path / "ad"))
    breaks(adapter)
    assert _codes(ftfix.check(None, adapter)) == [code]


def drop_layers_of(adapter, mark):
    rewrite_tensors(
        adapter / "adapter_model.safetensors",
        lambda n, d, s, b: None if mark in n else (n, s, b),
    )


def test_whole_layers_lost_need_the_base(k, tmp_path, offline):
    """Layer 2 lost entirely: the adapter alone cannot tell; with the base, FTX302 does."""
    adapter = without_base(copy_adapter(k["attention"], tmp_path / "ad"))
    drop_layers(adapter, [2])
    assert _codes(ftfix.check(None, adapter)) == []
    assert _codes(ftfix.check(k["base"], adapter)) == ["FTX302"]
