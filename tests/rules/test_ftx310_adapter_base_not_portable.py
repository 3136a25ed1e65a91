"""FTX310 adapter-base-not-portable: an adapter whose base is null or a path cannot be loaded
on another machine; with BASE given as a Hub id, writing that id is a safe fix."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import build_adapter, build_merged, build_tokenizer, tree_digest
from test_hub_cache import make_hub_cache

import ftfix

HUB_ID = "tiny-org/tiny-llama"


def _found(report):
    return [f for f in report.findings if f.code == "FTX310"]


def _adapter(tmp_path, value, name="adapter"):
    adapter = tmp_path / name
    build_tokenizer(adapter)
    config = {"peft_type": "LORA", "r": 2, "base_model_name_or_path": value}
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return adapter


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache holding a full tiny base under HUB_ID."""
    cache = tmp_path / "hub"
    base = build_merged(tmp_path / "src", full_model=True)
    make_hub_cache(cache, HUB_ID, base)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return base


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "is null"),
        ("", "is null"),
        ("/root/autodl-tmp/Qwen2.5-7B-Instruct", "a path on the machine it was trained on"),
        ("D:\\projects\\llama\\base", "a path on the machine it was trained on"),
        ("~/models/base", "a path on the machine it was trained on"),
        ("../../base_model", "a relative path, not a Hub id"),
        ("./outputs/merged", "a relative path, not a Hub id"),
        ("output/merged/step-1", "a relative path, not a Hub id"),
    ],
)
def test_warning_not_portable(tmp_path, value, why, monkeypatch):
    """Each kind is reported once, on adapter_config.json; without a Hub id given, no fix."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    (finding,) = _found(ftfix.check(_adapter(tmp_path, value)))
    assert finding.path == "adapter_config.json"
    assert why in finding.message
    assert "cannot load the adapter on another machine" in finding.message
    assert finding.fix is None


@pytest.mark.parametrize("value", ["meta-llama/Llama-3.2-1B", "gpt2", "Qwen/Qwen2.5-0.5B"])
def test_noop_hub_id(tmp_path, value, monkeypatch):
    """A Hub id (also a legacy one-word id) is portable, whether or not it is cached here."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    assert _found(ftfix.check(_adapter(tmp_path, value))) == []


def test_noop_merged_model(pair):
    """Only adapters are judged."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_fix_writes_the_hub_id_given(tmp_path, offline_cache):
    """repair HUB_ID ADAPTER writes the id, only that key changes, and the check passes."""
    adapter = _adapter(tmp_path, "/root/autodl-tmp/base")
    before = (adapter / "adapter_config.json").read_text()
    report = ftfix.repair(HUB_ID, adapter)
    assert "FTX310" in [f.code for f in report.applied]
    after = (adapter / "adapter_config.json").read_text()
    assert json.loads(after) == {**json.loads(before), "base_model_name_or_path": HUB_ID}
    assert [line for line in after.splitlines() if line not in before.splitlines()] == [
        f'  "base_model_name_or_path": "{HUB_ID}"'
    ]
    assert _found(ftfix.check(adapter)) == []


def test_fix_not_offered_with_a_folder_base(tmp_path, pair):
    """A base given as a folder is not a Hub id: the finding stays, nothing is written."""
    base, _ = pair
    adapter = _adapter(tmp_path, None)
    before = tree_digest(adapter)
    report = ftfix.repair(base, adapter)
    (finding,) = _found(report)
    assert finding.fix is None
    assert tree_digest(adapter) == before


def test_peft_loads_the_adapter_after_the_fix(tmp_path, offline_cache):
    """What the fix is for: AutoPeftModelForCausalLM fails before, loads (offline) after."""
    pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    adapter = build_adapter(tmp_path / "real", offline_cache)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "/root/autodl-tmp/tiny-llama"
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2))
    cache = str(tmp_path / "hub")  # huggingface_hub read HF_HUB_CACHE at import: pass it
    with pytest.raises((OSError, ValueError)):
        peft.AutoPeftModelForCausalLM.from_pretrained(adapter, cache_dir=cache)
    report = ftfix.repair(HUB_ID, adapter)
    assert "FTX310" in [f.code for f in report.applied]
    model = peft.AutoPeftModelForCausalLM.from_pretrained(adapter, cache_dir=cache)
    assert model.peft_config["default"].base_model_name_or_path == HUB_ID
