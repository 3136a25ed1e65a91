"""FTX420 adapter-saves-whole-modules: modules_to_save, which vLLM refuses.

vLLM's own check (vllm/lora/peft_helper.py, PEFTHelper._validate_features): "vLLM only supports
modules_to_save being None." vLLM does not run on this CPU; the adapter here is saved by peft.
"""

from __future__ import annotations

import json

from ckpt_builders import build_adapter

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX420"]


def test_noop_plain_adapter_and_merged(make_checkpoint, tmp_path, pair):
    """A LoRA-only adapter, and a merged folder: nothing."""
    base = make_checkpoint("peft-base", full_model=True)
    adapter = build_adapter(tmp_path / "lora", base)
    assert _found(ftfix.check(base, adapter)) == []
    assert _found(ftfix.check(*pair)) == []


def test_reports_modules_to_save(make_checkpoint, tmp_path):
    """peft saved embed_tokens and lm_head whole: a warning naming the runtimes and the cure."""
    base = make_checkpoint("peft-base", full_model=True)
    adapter = build_adapter(tmp_path / "full", base, modules_to_save=["embed_tokens", "lm_head"])
    assert json.loads((adapter / "adapter_config.json").read_text())["modules_to_save"]
    (finding,) = _found(ftfix.check(base, adapter))
    assert finding.severity.value == "warning"
    assert "vLLM" in finding.message and "merge before serving" in finding.message
    assert finding.fix is None
