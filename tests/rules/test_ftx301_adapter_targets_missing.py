"""FTX301 adapter-targets-missing: keys aimed at modules the base does not have."""

from __future__ import annotations

import json

import numpy as np
import pytest
from builders_adapters import (
    ADAPTER_FILE,
    copy_adapter,
    kit,
    peft_logits,
    rename_prefix,
)
from ckpt_builders import read_safetensors_header, tree_digest

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


def _found(report):
    return [f for f in report.findings if f.code == "FTX301"]


def _keys(adapter):
    return [key for key in read_safetensors_header(adapter / ADAPTER_FILE) if key != "__metadata__"]


def test_noop_multimodal_adapter_on_multimodal_base(k, tmp_path):
    """Keys already in the wrapper's layout resolve against the Llava base on disk, which
    transformers stores in the pre-4.52 layout (language_model.model.*)."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    rename_prefix(adapter, "base_model.model.model.", "base_model.model.model.language_model.")
    assert _found(ftfix.check(k["llava"], adapter)) == []


def test_error_text_adapter_on_multimodal_base_is_a_noop(k, tmp_path):
    """Trained on the text-only class, served on the multimodal wrapper: peft loads nothing."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    plain = peft_logits(k["base"], adapter)
    on_wrapper = peft_logits(k["llava"], adapter)
    assert not np.allclose(plain, on_wrapper, atol=1e-4)  # the adapter did not apply
    (finding,) = _found(ftfix.check(k["llava"], adapter))
    assert finding.severity.value == "error"
    assert finding.message == (
        "6 of 6 adapter modules are not in the base (first: model.layers.0.self_attn.q_proj); "
        "peft and vLLM skip them, so the adapter is a no-op; renaming `model.` -> "
        "`model.language_model.` resolves all of them"
    )
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"
    assert finding.fix.title == "Rename adapter keys `model.` -> `model.language_model.`"
    assert finding.data["substitution"] == {"old": "model.", "new": "model.language_model."}


@pytest.mark.parametrize(
    "name", ["attention", "modules-to-save", "all-linear", "rank-pattern", "full-names"]
)
def test_fix_rename_loads_with_peft_like_the_original(k, tmp_path, name):
    """The renamed adapter on the wrapper gives the original adapter's outputs on the text model;
    full module names in target_modules move with the keys; undo restores the bytes."""
    adapter = copy_adapter(k[name], tmp_path / "ad")
    original = tree_digest(adapter)
    expected = peft_logits(k["base"], adapter)

    report = ftfix.repair(k["llava"], adapter)  # unsafe: not applied by default
    assert tree_digest(adapter) == original
    assert [f.code for f in report.remaining if f.code == "FTX301"] == ["FTX301"]

    report = ftfix.repair(k["llava"], adapter, unsafe_fixes=True)
    assert report.errors == []
    assert _found(ftfix.check(k["llava"], adapter)) == []
    assert [f.code for f in ftfix.check(k["llava"], adapter, select=["FTX30"]).findings] == []
    keys = _keys(adapter)
    lora = [key for key in keys if ".lora_" in key]
    assert lora and all(
        key.startswith("base_model.model.model.language_model.layers.") for key in lora
    )
    config = json.loads((adapter / "adapter_config.json").read_text())
    if name == "full-names":
        assert all(t.startswith("model.language_model.layers.") for t in config["target_modules"])
    np.testing.assert_allclose(peft_logits(k["llava"], adapter), expected, atol=1e-5)

    ftfix.undo(adapter)
    assert tree_digest(adapter) == original


def test_dry_run_shows_one_line_for_the_binary_file(k, tmp_path):
    """--diff prints a line for the rewritten safetensors file, not its bytes."""
    adapter = copy_adapter(k["full-names"], tmp_path / "ad")
    report = ftfix.repair(k["llava"], adapter, unsafe_fixes=True, dry_run=True)
    assert "~ adapter_model.safetensors: binary file rewritten (" in report.diff
    assert '+    "model.language_model.layers.0.' in report.diff  # adapter_config.json, as text


def test_error_without_a_substitution(k, tmp_path):
    """Keys under a name no prefix rename can fix: reported, no fix, the declared base named."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    rename_prefix(
        adapter,
        "base_model.model.model.layers.0.self_attn.",
        "base_model.model.model.layers.0.attn.",
    )
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.message.startswith("2 of 6 adapter modules are not in the base")
    assert "the adapter is partly a no-op" in finding.message
    assert "(it declares " in finding.message
    assert finding.fix is None


def test_fix_one_layer_renamed(k, tmp_path):
    """One layer's keys under another name: the one rename that restores it (never onto a
    layer the adapter already has)."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    rename_prefix(adapter, "base_model.model.model.layers.0.", "base_model.model.transformer.h.9.")
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.data["substitution"] == {"old": "transformer.h.9.", "new": "model.layers.0."}
    ftfix.repair(k["base"], adapter, unsafe_fixes=True)
    assert _keys(adapter) == _keys(k["attention"])


def test_regex_target_modules_that_cannot_follow(k, tmp_path):
    """A regex target_modules anchored on the old names: the rename is named, not planned."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["target_modules"] = r"model\.layers\.\d+\.self_attn\.(q_proj|v_proj)"
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (finding,) = _found(ftfix.check(k["llava"], adapter))
    assert finding.fix is None
    assert "target_modules is a regex that misses the renamed modules" in finding.message


def test_noop_without_base_weights(k, tmp_path):
    """No base weights to resolve against: the rule says nothing."""
    from ckpt_builders import build_tokenizer

    base = build_tokenizer(tmp_path / "tok")
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    rename_prefix(adapter, "base_model.model.model.", "base_model.model.model.language_model.")
    assert _found(ftfix.check(base, adapter)) == []
