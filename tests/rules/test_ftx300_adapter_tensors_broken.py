"""FTX300 adapter-tensors-broken: empty, flat or misshapen LoRA tensors (sharded saves)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from builders_adapters import (
    ADAPTER_FILE,
    ADAPTERS,
    build_base,
    copy_adapter,
    empty_tensors,
    flatten_tensors,
    kit,
    no_tensors,
    peft_logits,
    rewrite_tensors,
    zero_lora_b,
)
from ckpt_builders import build_tokenizer, tree_digest
from helpers import set_json_key

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


def _found(report, code="FTX300"):
    return [f for f in report.findings if f.code == code]


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_noop_healthy_adapters_are_silent_and_untouched(k, tmp_path, name):
    """Real peft adapters (attention, MLP, rank_pattern, modules_to_save, all-linear): no FTX3
    finding (the untrained one: FTX303 only), and repair writes nothing."""
    adapter = copy_adapter(k[name], tmp_path / name)
    before = tree_digest(adapter)
    report = ftfix.check(k["base"], adapter, select=["FTX30"])
    expected = ["FTX303"] if name == "untrained" else []
    assert [f.code for f in report.findings] == expected
    ftfix.repair(k["base"], adapter, select=["FTX30"], unsafe_fixes=True)
    assert tree_digest(adapter) == before


def test_error_empty_tensors_zero3(k, tmp_path):
    """ZeRO-3 without gathering: every tensor has shape [0]; peft cannot load the adapter."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    empty_tensors(adapter)
    with pytest.raises(RuntimeError, match="size mismatch"):
        peft_logits(k["base"], adapter)
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.severity.value == "error"
    assert finding.path == ADAPTER_FILE
    assert finding.message.startswith(
        "6 of 6 LoRA modules are broken (model.layers.0.self_attn.q_proj: lora_A has shape [0] "
        "(no elements);"
    )
    assert "DeepSpeed ZeRO-3 or FSDP without gathering" in finding.message
    assert "stage3_gather_16bit_weights_on_model_save" in finding.message
    assert finding.data["sharded"] is True
    # Neither "never trained" nor "aimed at nothing" piles onto an empty save.
    report = ftfix.check(k["base"], adapter, select=["FTX30"])
    assert [f.code for f in report.findings] == ["FTX300"]


def test_error_names_the_recovery_command(k, tmp_path):
    """DeepSpeed's own checkpoint still beside the adapter: the message gives zero_to_fp32."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    empty_tensors(adapter)
    (adapter / "global_step40").mkdir()
    (adapter / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert "(global_step40/): `python zero_to_fp32.py . recovered/ --safe_serialization`" in (
        finding.message
    )


def test_error_flat_tensors_fsdp(k, tmp_path):
    """FSDP flat parameters: 1-D tensors where matrices are expected."""
    adapter = copy_adapter(k["mlp"], tmp_path / "ad")
    flatten_tensors(adapter)
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert "lora_A is 1-D [16], not a matrix" in finding.message
    assert finding.data["sharded"] is True


def test_error_no_tensors_at_all(k, tmp_path):
    """The 40-byte adapter_model.safetensors: metadata, no tensors."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    no_tensors(adapter)
    size = (adapter / ADAPTER_FILE).stat().st_size
    assert size <= 48
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.message.startswith(
        f"adapter_model.safetensors ({size} bytes) holds no tensors at all: the adapter was "
        "saved from sharded parameters (DeepSpeed ZeRO-3 or FSDP without gathering)"
    )


def test_error_rank_disagrees_with_config(k, tmp_path):
    """rank_pattern lost from adapter_config.json: q_proj is rank 4 but the config says r=2."""
    adapter = copy_adapter(k["rank-pattern"], tmp_path / "ad")
    set_json_key(adapter / "adapter_config.json", "rank_pattern", {})
    with pytest.raises(RuntimeError, match="size mismatch"):
        peft_logits(k["base"], adapter)
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert "rank is 4 but adapter_config.json r says 2" in finding.message
    assert "do not match adapter_config.json" in finding.message


def test_error_rank_pattern_says_otherwise(k, tmp_path):
    """rank_pattern names a rank the tensors do not have."""
    adapter = copy_adapter(k["rank-pattern"], tmp_path / "ad")
    set_json_key(adapter / "adapter_config.json", "rank_pattern", {"q_proj": 8})
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert "rank is 4 but adapter_config.json rank_pattern says 8" in finding.message


def test_error_other_base(k, tmp_path):
    """Shapes that fit another model: A/B against a base twice as wide."""
    other = build_base_wide(tmp_path / "other")
    assert json.loads((other / "config.json").read_text())["hidden_size"] == 16
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    (finding,) = _found(ftfix.check(other, adapter))
    assert "maps 8 -> 8 features but the base's model.layers.0.self_attn.q_proj.weight" in (
        finding.message
    )
    assert "trained on a different base model" in finding.message


def build_base_wide(path):
    """A 3-layer base with hidden size 16 (same names, other shapes)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = build_base(path)
    config = LlamaConfig.from_pretrained(str(out))
    config.hidden_size, config.intermediate_size, config.head_dim = 16, 32, 8
    torch.manual_seed(0)
    (out / "model.safetensors").unlink()
    LlamaForCausalLM(config).save_pretrained(str(out))
    return out


def test_adapter_alone_without_base_weights(k, tmp_path):
    """A base folder without weights (tokenizer only): the adapter's own checks still run."""
    base = tmp_path / "tok"
    build_tokenizer(base)
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    assert _found(ftfix.check(base, adapter)) == []
    empty_tensors(adapter)
    assert len(_found(ftfix.check(base, adapter))) == 1


def test_noop_keys_with_the_adapter_name(k, tmp_path):
    """Written from the model's state dict (`lora_A.default.weight`): peft loads it as is."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    expected = peft_logits(k["base"], adapter)
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: (n.replace(".weight", ".default.weight"), s, b),
    )
    np.testing.assert_allclose(peft_logits(k["base"], adapter), expected, atol=1e-6)
    assert ftfix.check(k["base"], adapter, select=["FTX30"]).findings == []
    zero_lora_b(adapter)
    report = ftfix.check(k["base"], adapter, select=["FTX30"])
    assert [f.code for f in report.findings] == ["FTX303"]
