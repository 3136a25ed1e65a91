"""FTX022 special-token-mismatch: which file says what, and what transformers 5 loads."""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import LLAMA3_TEMPLATE, copy_checkpoint
from helpers import set_json_key

import ftfix

OURS = ["FTX022"]
REALWORLD = [
    "deepseek-r1-distill-qwen-32b",
    "gemma-2-2b-it",
    "internlm2-chat-7b",
    "llama-2-7b-hf",
    "minicpm-v-2",
    "phi-3-mini-128k-instruct",
    "qwen2.5-14b-instruct",
    "reflection-llama-3.1-70b",
]


def _findings(base, ft):
    return ftfix.check(base, ft, select=OURS).findings


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _write_json(path, data):
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy(make_checkpoint, tmp_path, layout):
    """Consistent special tokens equal to the base's give no finding."""
    base = make_checkpoint("base", layout=layout)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []


def test_noop_pad_added_or_set_to_eos(make_checkpoint):
    """Adding a pad the base lacked is normal; pad == eos is pad-token-is-eos's (FTX207)."""
    base = make_checkpoint("base", pad_token=None)
    assert _findings(base, make_checkpoint("ft")) == []
    other = make_checkpoint("base2")
    assert _findings(other, make_checkpoint("ft2", pad_token="<|eot_id|>")) == []


def test_noop_loaded_eos_drift_is_left_to_stop_rules(pair):
    """A map that overrides the eos transformers loads is eos-token-drift's (FTX204) call."""
    base, ft = pair
    _write_json(ft / "special_tokens_map.json", {"eos_token": "<|end_of_text|>"})
    assert _tokenizer(ft).eos_token == "<|end_of_text|>"  # transformers 5: the map wins here
    assert _findings(base, ft) == []


def test_fix_v4_stale_special_tokens_map(pair_v4):
    """v4: transformers ignores the map (added_tokens_decoder), so aligning it is safe."""
    base, ft = pair_v4
    smap = json.loads((ft / "special_tokens_map.json").read_text())
    smap["eos_token"]["content"] = "<|end_of_text|>"
    _write_json(ft / "special_tokens_map.json", smap)
    loaded = _tokenizer(ft).eos_token_id
    [finding] = _findings(base, ft)
    assert finding.path == "special_tokens_map.json"
    assert "'<|end_of_text|>' (2) but tokenizer_config.json has '<|eot_id|>' (5)" in (
        finding.message
    )
    assert "transformers 5 ignores this file" in finding.message
    assert finding.fix.applicability.value == "safe"

    report = ftfix.repair(base, ft, select=OURS)
    assert report.exit_code == 0
    assert (ft / "special_tokens_map.json").read_bytes() == (
        base / "special_tokens_map.json"
    ).read_bytes()
    assert _tokenizer(ft).eos_token_id == loaded == 5
    assert _findings(base, ft) == []


def test_unsafe_fix_not_applied_without_flag(pair):
    """A stale map that overrides bos in a v5 folder: the fix changes what loads, so unsafe."""
    base, ft = pair
    _write_json(ft / "special_tokens_map.json", {"bos_token": "<|im_start|>"})
    assert _tokenizer(ft).bos_token_id == 6
    [finding] = _findings(base, ft)
    assert "transformers 5 loads this one" in finding.message
    assert finding.fix.applicability.value == "unsafe"

    ftfix.repair(base, ft, select=OURS)
    assert _tokenizer(ft).bos_token_id == 6
    report = ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert report.exit_code == 0
    assert _tokenizer(ft).bos_token_id == _tokenizer(base).bos_token_id == 1
    assert _findings(base, ft) == []


def test_fix_bos_drift_with_literal_template_is_safe(make_checkpoint):
    """A drifted bos is restored safely when the template itself starts with the base's bos."""
    literal = LLAMA3_TEMPLATE.replace("bos_token + content", "'<|begin_of_text|>' + content")
    base = make_checkpoint("base", chat_template=literal)
    ft = make_checkpoint("ft", chat_template=literal, bos_token="<|im_start|>")
    found = {f.path: f for f in _findings(base, ft)}
    assert "bos_token is '<|im_start|>' (6); base has '<|begin_of_text|>' (1)" in (
        found["tokenizer_config.json"].message
    )
    assert found["tokenizer_config.json"].fix.applicability.value == "safe"
    assert "bos_token_id is 6" in found["config.json"].message
    assert found["config.json"].fix.applicability.value == "safe"

    ftfix.repair(base, ft, select=OURS)
    assert _tokenizer(ft).bos_token_id == 1
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(str(ft)).bos_token_id == 1
    assert _findings(base, ft) == []


def test_fix_pad_not_in_vocabulary(pair):
    """A pad token outside the vocabulary becomes a brand-new id; the base's is restored."""
    base, ft = pair
    set_json_key(ft / "tokenizer_config.json", "pad_token", "<|pad|>")
    tok = _tokenizer(ft)
    assert tok.pad_token_id == 98 == len(tok) - 1  # added past the embedding rows
    [finding] = _findings(base, ft)
    assert "pad_token '<|pad|>' is not in the vocabulary" in finding.message
    assert "(id 98)" in finding.message
    assert finding.fix.applicability.value == "unsafe"
    ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert _tokenizer(ft).pad_token_id == _tokenizer(base).pad_token_id == 8


def test_fix_config_bos_id(pair):
    """config.json bos_token_id that is not the tokenizer's: the base's id comes back, safely."""
    base, ft = pair
    set_json_key(ft / "config.json", "bos_token_id", 2)
    [finding] = _findings(base, ft)
    assert finding.path == "config.json"
    assert "bos_token_id is 2 ('<|end_of_text|>')" in finding.message
    assert finding.fix.applicability.value == "safe"
    ftfix.repair(base, ft, select=OURS)
    assert json.loads((ft / "config.json").read_text())["bos_token_id"] == 1


def test_fix_generation_config_pad_id(pair):
    """generation_config.json pad_token_id must be the tokenizer's pad id."""
    base, ft = pair
    set_json_key(ft / "generation_config.json", "pad_token_id", 0)
    [finding] = _findings(base, ft)
    assert finding.path == "generation_config.json"
    assert "the tokenizer's pad_token is '<|finetune_pad|>' (8)" in finding.message
    # The base declares no pad id there, so setting one is not a restore: unsafe.
    assert finding.fix.applicability.value == "unsafe"


def test_fix_additional_special_token_not_in_vocabulary(pair):
    """An extra special token the vocabulary lacks is reported (transformers adds a new id)."""
    base, ft = pair
    set_json_key(ft / "tokenizer_config.json", "extra_special_tokens", ["<|ghost|>"])
    assert len(_tokenizer(ft)) == len(_tokenizer(base)) + 1
    [finding] = _findings(base, ft)
    assert "'<|ghost|>'" in finding.message
    assert finding.fix is None


def test_inherited_disagreement_is_info(make_checkpoint, tmp_path):
    """A config id the base gets wrong the same way is info, not a warning."""
    base = make_checkpoint("base")
    set_json_key(base / "config.json", "bos_token_id", 2)
    ft = copy_checkpoint(base, tmp_path / "ft")
    [finding] = _findings(base, ft)
    assert finding.severity.value == "info"
    assert "the base has the same disagreement" in finding.message
    assert finding.fix is None


@pytest.mark.parametrize("name", REALWORLD)
def test_realworld_copies(shared_dir, tmp_path, name):
    """Real tokenizer configs compared with themselves: only DeepSeek's own bos ids disagree."""
    source = shared_dir / "realworld" / name
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        shutil.copytree(source, folder)
        for child in folder.iterdir():
            child.chmod(0o644)
    findings = _findings(base, ft)
    if name == "deepseek-r1-distill-qwen-32b":
        # Published with config.json bos_token_id 151643 and generation_config.json 151646.
        [finding] = findings
        assert finding.severity.value == "info"
        assert "151646 but config.json has 151643" in finding.message
    else:
        assert findings == []


def test_realworld_internlm2_pad_drift(shared_dir, tmp_path):
    """InternLM2's real files: a fine-tune that moved pad to <unk> is told what the base had."""
    source = shared_dir / "realworld" / "internlm2-chat-7b"
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        shutil.copytree(source, folder)
        for child in folder.iterdir():
            child.chmod(0o644)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        set_json_key(ft / name, "pad_token", "<unk>")
    findings = {f.path: f for f in _findings(base, ft)}
    assert "pad_token is '<unk>' (0); base has '</s>' (2)" in (
        findings["tokenizer_config.json"].message
    )
    assert findings["tokenizer_config.json"].severity.value == "info"
    # config.json still says pad 2: the files are being restored to the base's '</s>'.
    assert "config.json" not in findings


def test_realworld_llama2_legacy_map_wins(shared_dir, tmp_path):
    """Llama-2's legacy folder (no added_tokens_decoder): the map wins; the stale config is fixed
    in its own AddedToken shape."""
    source = shared_dir / "realworld" / "llama-2-7b-hf"
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        shutil.copytree(source, folder)
        for child in folder.iterdir():
            child.chmod(0o644)
    config = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))
    config["bos_token"]["content"] = "</s>"
    _write_json(ft / "tokenizer_config.json", config)
    assert _tokenizer(ft).bos_token == "<s>"  # special_tokens_map.json overrides it
    [finding] = _findings(base, ft)
    assert finding.path == "tokenizer_config.json"
    assert "transformers 5 ignores this file" in finding.message
    assert finding.fix.applicability.value == "safe"
    ftfix.repair(base, ft, select=OURS)
    fixed = json.loads((ft / "tokenizer_config.json").read_text("utf-8"))
    assert fixed == json.loads((source / "tokenizer_config.json").read_text("utf-8"))
    assert fixed["bos_token"]["__type"] == "AddedToken"
