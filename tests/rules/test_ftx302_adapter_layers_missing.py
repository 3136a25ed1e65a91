"""FTX302 adapter-layers-missing: targeted modules absent on some layers."""

from __future__ import annotations

import pytest
from builders_adapters import (
    ADAPTER_FILE,
    build_lora,
    copy_adapter,
    kit,
    rewrite_tensors,
)
from ckpt_builders import build_tokenizer, tree_digest

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


def _found(report):
    return [f for f in report.findings if f.code == "FTX302"]


def _drop(adapter, *marks):
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: None if any(m in n for m in marks) else (n, s, b),
    )


def test_error_layers_lost_seen_from_the_base(k, tmp_path):
    """Layers 1-2 missing entirely: only the base's layer count shows it."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    _drop(adapter, ".layers.1.", ".layers.2.")
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.severity.value == "error"
    assert finding.path == ADAPTER_FILE
    assert finding.message == (
        "adapter lacks targeted modules: model.layers.N.self_attn.q_proj on 1 of 3 layers "
        "(missing 1-2); model.layers.N.self_attn.v_proj on 1 of 3 layers (missing 1-2); peft "
        "leaves them at their initial no-op values: re-save the adapter"
    )
    before = tree_digest(adapter)
    ftfix.repair(k["base"], adapter, unsafe_fixes=True)
    assert tree_digest(adapter) == before


def test_error_one_module_lost_seen_from_the_adapter_alone(k, tmp_path):
    """No base weights: v_proj on layer 1 missing while q_proj has it."""
    base = build_tokenizer(tmp_path / "tok")
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    _drop(adapter, ".layers.1.self_attn.v_proj.")
    (finding,) = _found(ftfix.check(base, adapter))
    assert finding.data["missing"] == {"model.layers.N.self_attn.v_proj": [1]}


def test_error_target_never_saved(k, tmp_path):
    """target_modules names gate_proj but no gate_proj tensor was saved on any layer."""
    adapter = copy_adapter(k["mlp"], tmp_path / "ad")
    _drop(adapter, ".gate_proj.")
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.data["missing"] == {"model.layers.N.mlp.gate_proj": [0, 1, 2]}
    assert "mlp.gate_proj on 0 of 3 layers (missing 0-2)" in finding.message


def test_noop_layers_to_transform(k, tmp_path):
    """layers_to_transform=[0, 2]: layer 1 has no LoRA by design."""
    adapter = build_lora(
        tmp_path / "ad", k["base"], target_modules=("q_proj",), layers_to_transform=[0, 2]
    )
    assert _found(ftfix.check(k["base"], adapter)) == []


def test_noop_regex_target_modules(k, tmp_path):
    """A regex that selects the last two layers only."""
    adapter = build_lora(tmp_path / "ad", k["base"], target_modules=r".*layers\.[12]\..*q_proj")
    assert _found(ftfix.check(k["base"], adapter)) == []
    _drop(adapter, ".layers.2.")
    assert _found(ftfix.check(k["base"], adapter))[0].data["missing"] == {
        "model.layers.N.self_attn.q_proj": [2]
    }


def test_noop_multimodal_vision_tower_not_required(k, tmp_path):
    """On the Llava base, q_proj also matches the vision tower; the text adapter need not."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: (n.replace("model.model.", "model.model.language_model.", 1), s, b),
    )
    assert _found(ftfix.check(k["llava"], adapter)) == []


def test_sees_the_keys_an_earlier_rename_staged(k, tmp_path):
    """FTX301's planned rename is what FTX302 judges in the same run: once renamed onto the
    wrapper's layers, the base shows layer 2 was lost."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    _drop(adapter, ".layers.2.")
    assert _found(ftfix.check(k["llava"], adapter)) == []  # stack unknown to the base
    report = ftfix.repair(k["llava"], adapter, unsafe_fixes=True, dry_run=True)
    (finding,) = _found(report)
    assert finding.data["missing"] == {
        "model.language_model.layers.N.self_attn.q_proj": [2],
        "model.language_model.layers.N.self_attn.v_proj": [2],
    }
