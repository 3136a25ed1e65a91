"""FTX303 adapter-never-trained: every lora_B still zero under a zero-start init."""

from __future__ import annotations

import numpy as np
import pytest
from builders_adapters import (
    ADAPTER_FILE,
    base_logits,
    build_lora,
    copy_adapter,
    kit,
    peft_logits,
    rewrite_tensors,
    zero_lora_b,
)
from ckpt_builders import build_tokenizer
from helpers import set_json_key

import ftfix


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    return kit(tmp_path_factory)


def _found(report):
    return [f for f in report.findings if f.code == "FTX303"]


def test_error_adapter_saved_as_created_is_the_base(k, tmp_path):
    """Saved straight after get_peft_model(): peft gives the base model's outputs exactly."""
    adapter = copy_adapter(k["untrained"], tmp_path / "ad")
    np.testing.assert_array_equal(peft_logits(k["base"], adapter), base_logits(k["base"]))
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.severity.value == "error"
    assert finding.path == ADAPTER_FILE
    assert finding.message == (
        "all 6 lora_B tensors are zero, as peft initialises them (init_lora_weights=True): "
        "the adapter never trained and is a no-op: the model answers exactly like its base"
    )


@pytest.mark.parametrize("name", ["attention", "mlp", "rank-pattern", "all-linear"])
def test_error_zeroed_lora_b(k, tmp_path, name):
    """A trained adapter's lora_B zeroed in the file: detected without a base (adapter alone)."""
    adapter = copy_adapter(k[name], tmp_path / "ad")
    assert _found(ftfix.check(k["base"], adapter)) == []
    zero_lora_b(adapter)
    base = build_tokenizer(tmp_path / "tok")
    (finding,) = _found(ftfix.check(base, adapter))
    assert finding.severity.value == "error"


def test_warning_when_saved_modules_may_have_trained(k, tmp_path):
    """modules_to_save=[lm_head] with zero lora_B: the LoRA part is a no-op, lm_head may not be."""
    adapter = copy_adapter(k["modules-to-save"], tmp_path / "ad")
    zero_lora_b(adapter)
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.severity.value == "warning"
    assert "only its 1 saved modules (e.g. base_model.model.lm_head.weight)" in finding.message


def test_warning_dora_magnitudes_may_have_trained(k, tmp_path):
    """DoRA with zero lora_B: its magnitude vectors still change the model."""
    adapter = copy_adapter(k["dora"], tmp_path / "ad")
    zero_lora_b(adapter)
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.severity.value == "warning"
    assert "lora_magnitude_vector" in finding.message


def test_error_embedding_lora_zero_start_is_a(k, tmp_path):
    """Embedding LoRA starts with lora_embedding_A at zero (B random): that is the factor read."""
    adapter = copy_adapter(k["embedding"], tmp_path / "ad")
    zero_lora_b(adapter)  # the q_proj part
    assert _found(ftfix.check(k["base"], adapter)) == []  # lora_embedding_A trained
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: (n, s, bytes(len(b)) if "lora_embedding_A" in n else b),
    )
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert finding.message.startswith("all 4 lora_embedding_A and lora_B tensors are zero")


def test_noop_one_trained_module_is_enough(k, tmp_path):
    """Only one lora_B non-zero: the adapter does something."""
    adapter = copy_adapter(k["attention"], tmp_path / "ad")
    rewrite_tensors(
        adapter / ADAPTER_FILE,
        lambda n, d, s, b: (
            n,
            s,
            bytes(len(b)) if ".lora_B." in n and ".layers.2.self_attn.v_proj" not in n else b,
        ),
    )
    assert _found(ftfix.check(k["base"], adapter)) == []


@pytest.mark.parametrize("init", ["pissa", "olora", "loftq", "eva", "corda", False])
def test_noop_inits_that_do_not_start_at_zero(k, tmp_path, init):
    """init_lora_weights recorded as a non-zero-start init: zero B is not "never trained"."""
    adapter = copy_adapter(k["untrained"], tmp_path / "ad")
    set_json_key(adapter / "adapter_config.json", "init_lora_weights", init)
    assert _found(ftfix.check(k["base"], adapter)) == []


def test_error_gaussian_init_also_starts_at_zero(k, tmp_path):
    """peft's gaussian init draws A and zeroes B, like the default: saved as created, a no-op."""
    adapter = build_lora(tmp_path / "ad", k["base"], trained=False, init_lora_weights="gaussian")
    np.testing.assert_array_equal(peft_logits(k["base"], adapter), base_logits(k["base"]))
    (finding,) = _found(ftfix.check(k["base"], adapter))
    assert "(init_lora_weights='gaussian')" in finding.message
