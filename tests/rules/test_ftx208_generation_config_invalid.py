"""FTX208 generation-config-invalid: a generation_config.json transformers refuses to save."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import tree_digest

import ftfix
from ftfix.analysis.generation_config import validate_generation_config

GREEDY_WITH_SAMPLING = {"do_sample": False, "temperature": 0.6, "top_p": 0.9}


def _found(report):
    return [f for f in report.findings if f.code == "FTX208"]


def _transformers_refuses(config: dict) -> bool:
    """What transformers' strict validation (run by save_pretrained on a changed config) says."""
    from transformers import GenerationConfig

    try:
        GenerationConfig(**config).validate(strict=True)
    except ValueError:
        return True
    return False


# Configs on both sides of every check the validator mirrors.
CASES = [
    {},
    {"eos_token_id": 2, "bos_token_id": 1, "pad_token_id": 0},
    {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 20},
    {"do_sample": False, "temperature": 0.6},
    {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 50},
    {"temperature": 0.7},
    {"top_p": 0.8},
    {"top_k": 40},
    {"min_p": 0.05},
    {"typical_p": 0.9},
    {"do_sample": False, "epsilon_cutoff": 0.001},
    {"eta_cutoff": 0.001},
    {"num_beams": 1, "early_stopping": True},
    {"num_beams": 4, "early_stopping": True, "length_penalty": 0.8},
    {"length_penalty": 2.0},
    {"early_stopping": False},
    {"use_cache": False, "cache_implementation": "static"},
    {"output_scores": True},
    {"output_scores": True, "return_dict_in_generate": True},
    {"num_return_sequences": 2},
    {"num_return_sequences": 2, "do_sample": True},
    {"num_return_sequences": 5, "num_beams": 4},
    {"max_new_tokens": 0},
    {"max_new_tokens": 16},
    {"early_stopping": "sometimes"},
    {"pad_token_id": -1},
    {"suppress_tokens": [2], "forced_eos_token_id": 2},
]


@pytest.mark.slow
@pytest.mark.parametrize("config", CASES, ids=[json.dumps(c) for c in CASES])
def test_validator_mirrors_transformers(config):
    """The static validator refuses exactly what transformers' strict validation refuses."""
    assert bool(validate_generation_config(config)) is _transformers_refuses(config)


def test_noop_healthy_pair(pair):
    """A valid generation config is not reported."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_fix_drops_inert_sampling_keys(make_checkpoint, tmp_path):
    """do_sample pinned false beside temperature/top_p: transformers refuses to save it; the
    safe fix drops the two inert keys and the result loads, validates strictly and saves."""
    from transformers import GenerationConfig

    base = make_checkpoint("base")
    ft = make_checkpoint("ft", sampling=GREEDY_WITH_SAMPLING)
    loaded = GenerationConfig.from_pretrained(str(ft))
    loaded.max_new_tokens = 32  # any change makes save_pretrained validate strictly
    with pytest.raises(ValueError, match="GenerationConfig is invalid"):
        loaded.save_pretrained(str(tmp_path / "before"))

    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.fix.applicability.value == "safe"
    assert "temperature=0.6 is only used when sampling" in finding.message
    report = ftfix.repair(base, ft)
    assert "FTX208" in [f.code for f in report.applied]
    data = json.loads((ft / "generation_config.json").read_text())
    assert data["do_sample"] is False
    assert "temperature" not in data and "top_p" not in data
    config = GenerationConfig.from_pretrained(str(ft))
    config.validate(strict=True)
    config.max_new_tokens = 32
    config.save_pretrained(str(tmp_path / "after"))
    assert _found(ftfix.check(base, ft)) == []


def test_error_unloadable_value_has_no_fix(make_checkpoint):
    """max_new_tokens 0 makes the file unloadable: an error, and nothing to drop safely."""
    from transformers import GenerationConfig

    base = make_checkpoint("base")
    ft = make_checkpoint("ft", sampling={"max_new_tokens": 0})
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig.from_pretrained(str(ft))
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    assert finding.fix is None
    before = tree_digest(ft)
    ftfix.repair(base, ft)
    assert tree_digest(ft) == before


def test_noop_quirk_inherited_from_base(make_checkpoint, tmp_path):
    """The base's published file has the same issue (transformers warns while it is unchanged):
    the fine-tune that kept it is not reported and not rewritten."""
    from ckpt_builders import copy_checkpoint

    base = make_checkpoint("base", sampling={"length_penalty": 1.2})
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert _found(ftfix.check(base, ft)) == []
    before = tree_digest(ft)
    ftfix.repair(base, ft)
    assert tree_digest(ft) == before
