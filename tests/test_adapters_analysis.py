"""ftfix/analysis/adapters.py: header rename, in-memory files, module parsing, substitutions."""

from __future__ import annotations

import numpy as np
import pytest

from ftfix.analysis.adapters import (
    BaseWeights,
    expected_rank,
    find_substitutions,
    layer_of,
    renamed_safetensors,
)
from ftfix.io.safetensors import SafetensorsFile


def _save(path, tensors, metadata=None):
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata=metadata)
    return path


def test_renamed_safetensors_loads_with_safetensors(tmp_path):
    """Renamed keys, same data, metadata kept; the safetensors library reads the result."""
    from safetensors import safe_open

    rng = np.random.default_rng(0)
    tensors = {
        "a.lora_A.weight": rng.normal(size=(2, 8)).astype(np.float32),
        "a.lora_B.weight": rng.normal(size=(8, 2)).astype(np.float32),
        "b.bias": rng.normal(size=(3,)).astype(np.float16),
    }
    src = _save(tmp_path / "in.safetensors", tensors, {"format": "pt"})
    out = tmp_path / "out.safetensors"
    out.write_bytes(renamed_safetensors(src.read_bytes(), {"a.lora_A.weight": "x.lora_A.weight"}))
    with safe_open(str(out), "np") as handle:
        assert set(handle.keys()) == {"x.lora_A.weight", "a.lora_B.weight", "b.bias"}
        assert handle.metadata() == {"format": "pt"}
        np.testing.assert_array_equal(
            handle.get_tensor("x.lora_A.weight"), tensors["a.lora_A.weight"]
        )
        np.testing.assert_array_equal(handle.get_tensor("b.bias"), tensors["b.bias"])
    assert (len(out.read_bytes()) - len(src.read_bytes())) % 8 == 0
    with pytest.raises(ValueError, match="merge two tensors"):
        renamed_safetensors(src.read_bytes(), {"a.lora_A.weight": "a.lora_B.weight"})


def test_from_bytes_reads_like_open(tmp_path):
    """An in-memory file (a staged edit) answers like the file on disk, partial reads included."""
    data = np.arange(64, dtype=np.float32).reshape(8, 8)
    path = _save(tmp_path / "t.safetensors", {"w": data})
    disk, memory = SafetensorsFile.open(path), SafetensorsFile.from_bytes(path, path.read_bytes())
    assert disk.tensors == memory.tensors
    assert disk.read_bytes("w") == memory.read_bytes("w") == data.tobytes()
    assert disk.read_bytes("w", 4, 8) == memory.read_bytes("w", 4, 8) == data.tobytes()[4:12]
    assert disk.read_bytes("w", 250, 100) == data.tobytes()[250:]


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("model.layers.3.mlp.experts.7.up_proj", ("model.layers", 3, "mlp.experts.7.up_proj")),
        (
            "model.language_model.layers.0.self_attn.q_proj",
            ("model.language_model.layers", 0, "self_attn.q_proj"),
        ),
        ("transformer.h.11.attn.c_attn", ("transformer.h", 11, "attn.c_attn")),
        ("lm_head", None),
    ],
)
def test_layer_of(module, expected):
    """The first numbered part is the layer, as peft's layers_to_transform finds it."""
    assert layer_of(module) == expected


def test_expected_rank_follows_peft_pattern_matching():
    """rank_pattern keys match a whole name or a dotted suffix (regex), else r."""
    config = {"r": 8, "rank_pattern": {"q_proj": 16, r"layers\.1\.mlp\.up_proj": 4}}
    assert expected_rank(config, "model.layers.0.self_attn.q_proj") == 16
    assert expected_rank(config, "model.layers.1.mlp.up_proj") == 4
    assert expected_rank(config, "model.layers.2.mlp.up_proj") == 8
    assert expected_rank(config, "model.layers.0.self_attn.xq_proj") == 8


def test_find_substitutions_ambiguous_and_unique():
    """Two stacks with the same shapes both fit: both named; one stack: one rename."""
    shapes = {f"{stack}.layers.{i}.q_proj.weight": (8, 8) for stack in ("a", "b") for i in range(2)}
    base = BaseWeights(shapes, dict.fromkeys(shapes, "F32"), frozenset(shapes))
    missing = ["layers.0.q_proj", "layers.1.q_proj"]
    found = find_substitutions(missing, base)
    assert {(s.old, s.new) for s in found} == {("", "a."), ("", "b.")}
    only_a = {k: v for k, v in shapes.items() if k.startswith("a.")}
    base_a = BaseWeights(only_a, dict.fromkeys(only_a, "F32"), frozenset(only_a))
    assert [(s.old, s.new) for s in find_substitutions(missing, base_a)] == [("", "a.")]


def test_quantized_base_modules_resolve(tmp_path):
    """A GPTQ/AWQ base stores `qweight` (packed int32), not `weight`: its modules still exist,
    and packed shapes are never compared with LoRA shapes."""
    from ftfix.analysis.adapters import base_weights
    from ftfix.io.checkpoint import Checkpoint

    folder = tmp_path / "gptq"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}\n')
    _save(
        folder / "model.safetensors",
        {
            "model.layers.0.self_attn.q_proj.qweight": np.zeros((1, 8), dtype=np.int32),
            "model.layers.0.self_attn.q_proj.scales": np.zeros((1, 8), dtype=np.float16),
            "model.embed_tokens.weight": np.zeros((16, 8), dtype=np.float16),
        },
    )
    base = base_weights(Checkpoint.open(folder))
    assert base is not None
    assert base.has("model.layers.0.self_attn.q_proj")
    assert "model.layers.0.self_attn.q_proj" in base.module_names()
    assert base.weight_shape("model.layers.0.self_attn.q_proj") is None
