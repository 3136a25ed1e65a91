"""End-of-turn detection and the stop chain on real published tokenizer and config files.

The files live in ../shared/realworld (see its README.md and SOURCES.md); they are read in place
(check never writes) or copied into tmp_path for a repair, never into the repository.
"""

from __future__ import annotations

import json
import shutil

import pytest

import ftfix
from ftfix.analysis.stops import MARKER_SHAPE, eos_ids, find_end_of_turn, token_vocabulary
from ftfix.io.checkpoint import Checkpoint, Kind

SENTENCEPIECE = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}

# folder -> (end-of-turn token, its id where the folder's files give ids)
FAMILIES = {
    "reflection-llama-3.1-70b": ("<|eot_id|>", 128009),  # Llama 3 Instruct template
    "qwen2.5-14b-instruct": ("<|im_end|>", 151645),
    "qwen1.5-moe-chat": ("<|im_end|>", 151645),  # closes a turn only when another follows
    "internlm2-chat-7b": ("<|im_end|>", 92542),
    "gemma-2-2b-it": ("<end_of_turn>", 107),
    "phi-3-mini-128k-instruct": ("<|end|>", 32007),
    "deepseek-r1-distill-qwen-32b": ("<｜end▁of▁sentence｜>", None),  # no added tokens here
}
# Stop-rule findings each real folder gives when fine-tuned without changes (base = itself).
EXPECTED_STOP_FINDINGS = {
    "reflection-llama-3.1-70b": ["FTX207"],  # pad_token == eos_token == <|eot_id|>
    "qwen2.5-14b-instruct": [],
    "internlm2-chat-7b": ["FTX202"],  # generation_config stops on </s> (2) only
    "gemma-2-2b-it": [],
    "phi-3-mini-128k-instruct": [],  # pad == eos == <|endoftext|>, but turns end with <|end|>
    "deepseek-r1-distill-qwen-32b": ["FTX207"],  # pad == eos == the turn end
}


def _tokenizer_folder(shared_dir, name):
    return Checkpoint(shared_dir / "realworld" / name, Kind.TOKENIZER)


def _copy(shared_dir, name, dest):
    """A writable copy of a real folder, skipping files that are not valid JSON as published."""
    src = shared_dir / "realworld" / name
    dest.mkdir()
    for file in src.iterdir():
        if file.suffix == ".json":
            try:
                json.loads(file.read_text("utf-8"))
            except ValueError:
                continue
        shutil.copy(file, dest / file.name)
    return dest


@pytest.mark.parametrize(("folder", "expected"), list(FAMILIES.items()), ids=list(FAMILIES))
def test_family_end_of_turn(shared_dir, folder, expected):
    """Each family's real template ends assistant turns with its known stop token."""
    ckpt = _tokenizer_folder(shared_dir, folder)
    vocabulary = token_vocabulary(ckpt)
    template = ckpt.chat_template()
    assert template is not None
    end = find_end_of_turn(template, ckpt.special_tokens(), vocabulary)
    assert end is not None
    token, token_id = expected
    assert end.token == token
    assert vocabulary.get(token) == token_id


@pytest.mark.parametrize(
    ("path", "token"),
    [
        pytest.param("llama-3.2-3b-instruct/chat_template.jinja", "<|eot_id|>", id="llama-3.2"),
        pytest.param("mistral-nemo-instruct-2407/chat_template.jinja", "</s>", id="mistral-nemo"),
        pytest.param(
            "mistral-7b-instruct-v0.3/chat_template.mistral-common-v3_spm.jinja",
            "</s>",
            id="mistral-v0.3",
        ),
    ],
)
def test_template_only_families(shared_dir, path, token):
    """Official templates shipped without tokenizer_config: Llama 3.2 and Mistral."""
    template = (shared_dir / "realworld" / path).read_text("utf-8")
    if token == "<|eot_id|>":
        ckpt = _tokenizer_folder(shared_dir, "reflection-llama-3.1-70b")  # same Llama 3 specials
        specials, vocabulary = ckpt.special_tokens(), set(token_vocabulary(ckpt))
    else:
        specials, vocabulary = SENTENCEPIECE, set(SENTENCEPIECE.values())
    end = find_end_of_turn(template, specials, vocabulary)
    assert end is not None and end.token == token


@pytest.mark.parametrize(
    ("template", "vocab_from", "stops"),
    [
        ("llama-3-instruct", "reflection-llama-3.1-70b", "llama-3.1-instruct"),
        ("chatml", "qwen2.5-14b-instruct", "qwen2-instruct"),
        ("gemma-it", "gemma-2-2b-it", "gemma-it"),
        ("phi-3", "phi-3-mini-128k-instruct", "phi-3"),
    ],
)
def test_community_stop_lists_contain_detected_id(shared_dir, template, vocab_from, stops):
    """chujiezheng/chat_templates' curated stop ids include the id we derive for the template."""
    root = shared_dir / "realworld" / "chujiezheng-chat-templates"
    ckpt = _tokenizer_folder(shared_dir, vocab_from)
    vocabulary = token_vocabulary(ckpt)
    source = (root / "chat_templates" / f"{template}.jinja").read_text("utf-8")
    end = find_end_of_turn(source, ckpt.special_tokens(), vocabulary)
    assert end is not None and end.token is not None
    curated = json.loads((root / "generation_configs" / f"{stops}.json").read_text())
    assert vocabulary[end.token] in curated["stop_token_ids"]


def test_community_templates_detected(shared_dir):
    """Every community template renders to a turn end; the special-token ones are named."""
    folder = shared_dir / "realworld" / "chujiezheng-chat-templates" / "chat_templates"
    found = {}
    for path in sorted(folder.glob("*.jinja")):
        source = path.read_text("utf-8")
        vocabulary = set(SENTENCEPIECE.values()) | set(MARKER_SHAPE.findall(source))
        end = find_end_of_turn(source, SENTENCEPIECE, vocabulary)
        assert end is not None, path.name
        found[path.stem] = end.token
    assert found["chatml"] == found["qwen2.5-instruct"] == "<|im_end|>"
    assert found["llama-3-instruct"] == "<|eot_id|>"
    assert found["gemma-it"] == "<end_of_turn>"
    assert found["phi-3"] == found["phi-3-small"] == "<|end|>"
    assert found["llama-2-chat"] == found["mistral-instruct"] == found["zephyr"] == "</s>"
    assert found["openchat-3.5"] == "<|end_of_turn|>"
    assert found["falcon-instruct"] is None  # plain-text turns


@pytest.mark.parametrize("folder", list(EXPECTED_STOP_FINDINGS), ids=list(EXPECTED_STOP_FINDINGS))
def test_real_folders_through_the_stop_rules(shared_dir, tmp_path, folder):
    """A fine-tune identical to its real base gets exactly the stop findings the base deserves."""
    base = shared_dir / "realworld" / folder
    ft = _copy(shared_dir, folder, tmp_path / "ft")
    report = ftfix.check(base, ft, select=["FTX2"])
    assert sorted(f.code for f in report.findings) == EXPECTED_STOP_FINDINGS[folder]


def test_internlm2_real_gap_repaired(shared_dir, tmp_path):
    """InternLM2 chat stops on </s> (2) only; turns end with <|im_end|> (92542): add it."""
    ft = _copy(shared_dir, "internlm2-chat-7b", tmp_path / "ft")
    base = shared_dir / "realworld" / "internlm2-chat-7b"
    finding = next(f for f in ftfix.check(base, ft).findings if f.code == "FTX202")
    assert finding.message == (
        "eos_token_id is 2 (</s>) but assistant turns end with <|im_end|> (92542)"
    )
    ftfix.repair(base, ft, select=["FTX202"])
    generation = json.loads((ft / "generation_config.json").read_text())
    assert eos_ids(generation["eos_token_id"]) == (2, 92542)


def test_llama2_base_with_chatml_template(shared_dir, tmp_path):
    """Llama 2 base fine-tuned with --template ChatML: <|im_end|> is not a Llama 2 token."""
    template = tmp_path / "chatml.jinja"
    template.write_text(
        (
            shared_dir / "realworld/chujiezheng-chat-templates/chat_templates/chatml.jinja"
        ).read_text()
    )
    base = shared_dir / "realworld" / "llama-2-7b-hf"
    ft = _copy(shared_dir, "llama-2-7b-hf", tmp_path / "ft")
    report = ftfix.check(base, ft, select=["FTX2"], template=template)
    finding = next(f for f in report.findings if f.code == "FTX205")
    assert finding.severity.value == "error"
    assert "'<|im_end|>', which is not one token" in finding.message
