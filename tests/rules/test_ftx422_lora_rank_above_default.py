"""FTX422 lora-rank-above-default: rank above vLLM's default max_lora_rank (16).

The default and the accepted values come from vllm/config/lora.py (`max_lora_rank:
MaxLoRARanks = 16`, `Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]`).
"""

from __future__ import annotations

import json

import pytest
from ckpt_builders import build_tokenizer

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX422"]


def _adapter(folder, **config):
    folder.mkdir()
    data = {"peft_type": "LORA", "lora_alpha": 16, "target_modules": ["q_proj"], **config}
    (folder / "adapter_config.json").write_text(json.dumps(data))
    build_tokenizer(folder)
    return folder


@pytest.mark.parametrize("config", [{"r": 16}, {"r": 8, "rank_pattern": {"q_proj": 16}}])
def test_noop_within_default(make_checkpoint, tmp_path, config):
    """Rank 16 or less everywhere: nothing."""
    base = make_checkpoint("base")
    assert _found(ftfix.check(base, _adapter(tmp_path / "a", **config))) == []


@pytest.mark.parametrize(
    ("config", "flag"),
    [
        pytest.param({"r": 64}, "--max-lora-rank 64", id="r"),
        pytest.param(
            {"r": 8, "rank_pattern": {"v_proj": 100}}, "--max-lora-rank 128", id="pattern"
        ),
    ],
)
def test_names_the_flag(make_checkpoint, tmp_path, config, flag):
    """The message names the smallest flag value vLLM accepts."""
    base = make_checkpoint("base")
    (finding,) = _found(ftfix.check(base, _adapter(tmp_path / "a", **config)))
    assert flag in finding.message and finding.data["flag"] == flag
