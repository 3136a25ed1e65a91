"""The 31 fine-tune folders of ../shared/wild, checked as a new user would: alone, offline, with
an empty Hugging Face cache.

Each row is what a careful reader of the folder's files expects ftfix to report, and why
(judged from the files, see ../shared/wild/SOURCES.md for provenance). Weights and large
tokenizer.json files were not copied (an artifact of the copy, listed in each provenance.json):
a folder without them is still checked as far as it can be. Every folder must exit 0 or 1
without a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftfix.cli import main

# The rules this table was judged with: their findings must be exactly the table's. Findings of
# rules added later are allowed on top (judge them and add them here).
JUDGED = {
    "FTX001", "FTX002", "FTX003", "FTX004", "FTX005", "FTX006", "FTX007", "FTX008",
    "FTX020", "FTX021", "FTX022", "FTX023", "FTX024", "FTX025", "FTX026",
    "FTX101", "FTX102", "FTX103", "FTX104",
    "FTX201", "FTX202", "FTX203", "FTX204", "FTX205", "FTX206", "FTX207",
    "FTX310", "FTX900", "FTX901", "FTX902", "FTX903",
}  # fmt: skip
NO_BASE = "no base model was given and the folder names none"


@dataclass(frozen=True)
class Row:
    """What the folder should give: findings (code, path), the base the note names, why."""

    findings: frozenset[tuple[str, str]]
    base_note: str  # a text the skip notice must contain (the base named, or NO_BASE)
    why: str


def row(findings: list[tuple[str, str]], base_note: str, why: str) -> Row:
    return Row(frozenset(findings), base_note, why)


def _shards(code: str, pattern: str, n: int) -> list[tuple[str, str]]:
    return [(code, pattern.format(i=i, n=n)) for i in range(1, n + 1)]


LLAMA_DOUBLE_BOS = (
    "Unsloth Llama 3.2 Instruct tokenizer_config sets add_bos_token and the template prints "
    "bos_token: re-tokenizing the rendered chat gives two <|begin_of_text|> (FTX023, a warning; "
    "the base does the same)"
)
TABLE: dict[str, Row] = {
    "002-teohyc-trainer-root": row(
        [("FTX023", "chat_template.jinja")],
        "unsloth/llama-3.2-1b-instruct-unsloth-bnb-4bit",
        "trainer root: its newest checkpoint-200 is checked. " + LLAMA_DOUBLE_BOS + "; the "
        "Hub base is not cached (offline): named with the fetch command",
    ),
    "003-gayaz-llama32-dpo": row(
        [("FTX023", "chat_template.jinja")],
        "unsloth/Llama-3.2-1B-Instruct",
        LLAMA_DOUBLE_BOS + "; eos <|eot_id|> matches the turn end; no weights here",
    ),
    "004-atcse-llama-unsloth": row(
        [("FTX023", "chat_template.jinja")],
        "unsloth/llama-3.2-1b-instruct-unsloth-bnb-4bit",
        LLAMA_DOUBLE_BOS,
    ),
    "006-smolify-gemma3-merged": row(
        [("FTX023", "chat_template.jinja")],
        NO_BASE,
        "Gemma 3 merge: add_bos_token and a template starting with bos_token (two <bos>); "
        "no config names a base; tokenizer.model not copied",
    ),
    "008-eyluccas-llama-agri": row(
        [("FTX023", "tokenizer_config.json")],
        "unsloth/llama-3.2-3b-instruct-bnb-4bit",
        LLAMA_DOUBLE_BOS + " (template kept in tokenizer_config.json, v4 layout)",
    ),
    "009-rickbot-llama": row(
        [("FTX023", "tokenizer_config.json"), ("FTX900", "adapter_model.safetensors")],
        "unsloth/llama-3.2-3b-instruct-bnb-4bit",
        LLAMA_DOUBLE_BOS + "; the adapter weights are a Git LFS pointer (97 MB): an error, "
        "and the row checks are skipped",
    ),
    "011-rokkit-trainer-root": row(
        [("FTX023", "tokenizer_config.json")],
        "unsloth/llama-3.2-3b-instruct-unsloth-bnb-4bit",
        "trainer root, checkpoint-60 checked. " + LLAMA_DOUBLE_BOS,
    ),
    "013-devsam-gemma2": row(
        [],
        "unsloth/gemma-2-9b-bnb-4bit",
        "adapter of the Gemma 2 base (pretrained) model, no chat template: whether the base had "
        "one needs the base (FTX008 skipped); tokens consistent",
    ),
    "015-bharath-phi3-unsloth": row(
        [("FTX204", "tokenizer_config.json")],
        "unsloth/phi-3-mini-4k-instruct-bnb-4bit",
        "Phi-3 adapter: turns end with <|end|> but the only eos it declares is <|endoftext|>; "
        "converters reading one eos stop on the wrong token (a warning: Phi-3's own "
        "generation_config adds <|end|>, which only the base can show)",
    ),
    "018-shettysaish-phi2-ckpt": row(
        [("FTX207", "tokenizer_config.json")],
        "microsoft/phi-2",
        "Phi-2 has no chat template, so eos <|endoftext|> is the stop token, and pad is that "
        "same token: padding-masked eos is never trained (warning)",
    ),
    "019-dheena-tinyllama": row(
        [("FTX207", "tokenizer_config.json"), ("FTX310", "adapter_config.json")],
        NO_BASE,
        "TinyLlama zephyr template ends turns with </s> = eos = pad (warning); "
        "base_model_name_or_path is null: not loadable elsewhere, and no base to compare with",
    ),
    "021-samyak-qwen-grpo-root": row(
        [],
        "unsloth/Qwen3-4B-Base",
        "trainer root, newest checkpoint-1134: ChatML template, eos <|im_end|>: consistent",
    ),
    "023-upmiko-qwen25": row(
        [],
        "unsloth/Qwen3-1.7B-unsloth-bnb-4bit",
        "Qwen3 adapter: template, eos and pad (<|vision_pad|>) consistent",
    ),
    "024-baize-qwen-fullft": row(
        [],
        NO_BASE,
        "tokenizer-only checkpoint of a Qwen full fine-tune with no chat template: without a "
        "base named anywhere, whether one was lost cannot be told (FTX001/FTX008 skipped)",
    ),
    "025-hugoo-qwen-adapter": row(
        [("FTX900", "adapter_model.safetensors")],
        "Qwen/Qwen2-1.5B-Instruct",
        "LLaMA-Factory adapter whose weights are a Git LFS pointer (148 MB)",
    ),
    "027-wenhao-qwen25-lf": row(
        [],
        "Qwen/Qwen2.5-7B-Instruct",
        "LLaMA-Factory Qwen2.5 adapter: the Qwen2.5 template and eos <|im_end|> agree",
    ),
    "028-roleinstructor-qwen25-lf": row(
        [],
        "models/Qwen2_5-1_5b-Instruct",
        "LLaMA-Factory adapter; its base 'models/Qwen2_5-1_5b-Instruct' has the shape of a Hub "
        "id (org/name), so it is looked up in the cache, not reported as a path",
    ),
    "030-xueyu-mistral-trl5": row(
        [("FTX310", "adapter_config.json"), ("FTX900", "adapter_model.safetensors")],
        "D:\\projects\\nlp\\Mistral\\Mistral-7B-v0.3",
        "base is a Windows path of the training machine (FTX310, and the note); adapter "
        "weights are a Git LFS pointer",
    ),
    "032-kamila-mistral": row(
        _shards("FTX902", "pytorch_model-0000{i}-of-0000{n}.bin", 6),
        "Hugofernandez/Mistral-7B-v0.1-colab-sharded",
        "only pytorch_model.bin.index.json was committed: its six shards are missing (errors); "
        "no pickle is present, so no pickled-weights warning",
    ),
    "033-techqa-internlm-merged": row(
        [
            ("FTX202", "generation_config.json"),
            ("FTX204", "tokenizer_config.json"),
            *_shards("FTX902", "pytorch_model-0000{i}-of-0000{n}.bin", 8),
        ],
        "/root/share/model_repos/internlm2-chat-7b",
        "InternLM2 chat merge: turns end with <|im_end|> (92542) but generation_config.json "
        "stops only on </s> (2) (error) and the tokenizer eos is </s> (warning); the base in "
        "config.json _name_or_path is a path of the training machine; the .bin shards were "
        "never committed",
    ),
    "035-lttt-internlm-adapter": row(
        [("FTX310", "adapter_config.json")],
        "/root/personal_assistant/model/Shanghai_AI_Laboratory/internlm-chat-7b",
        "XTuner adapter whose base is an absolute path of the training machine",
    ),
    "037-bikav-chatglm-lora": row(
        [],
        "THUDM/chatglm-6b",
        "ChatGLM LoRA: adapter_config.json only, a Hub base not cached: nothing to judge alone",
    ),
    "039-finsight-qwen-merged-lfs": row(
        [
            ("FTX900", name)
            for name in (
                "added_tokens.json",
                "config.json",
                "generation_config.json",
                "model.safetensors.index.json",
                "special_tokens_map.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "vocab.json",
            )
        ],
        NO_BASE,
        "a clone without git lfs: eight files, JSON included, are pointers, each named as such; "
        "chat_template.jinja and merges.txt are real, so the folder is still checked",
    ),
    "041-productinfo-merged": row(
        [],
        NO_BASE,
        "Llama 4 config, generation config (eos includes <|eot|>) and template: consistent; no "
        "tokenizer files to judge tokens by",
    ),
    "043-irfan-1b-merged": row(
        [("FTX900", "model.safetensors")],
        NO_BASE,
        "merged Llama 3.2 1B whose model.safetensors is a Git LFS pointer (829 MB)",
    ),
    "045-smollm2-merged": row(
        [
            ("FTX202", "generation_config.json"),
            ("FTX204", "tokenizer_config.json"),
            ("FTX900", "model.safetensors"),
        ],
        NO_BASE,
        "SmolLM2 trained with Lightning: ChatML template ending turns with <|im_end|> (2) while "
        "generation_config.json and the tokenizer eos are <|endoftext|> (0); weights are a "
        "Git LFS pointer",
    ),
    "047-mythtrans-llama31": row(
        _shards("FTX902", "model-0000{i}-of-0000{n}.safetensors", 4),
        "unsloth/meta-llama-3.1-8b-bnb-4bit",
        "adapter folder that also holds a merged model's safetensors index, whose four shards "
        "were never committed",
    ),
    "048-jayakumar-merged": row(
        [],
        NO_BASE,
        "T5 (encoder-decoder) configs and added tokens only: nothing a rule can fault",
    ),
    "050-hrf-gemma3-v5": row(
        [],
        "google/gemma-3-1b-it",
        "transformers 5 adapter with chat_template.jinja only (no tokenizer files): it runs "
        "with the base's tokenizer, so nothing is judged without it",
    ),
    "052-onlyzer0-xtuner-adapter": row(
        [("FTX310", "adapter_config.json"), ("FTX900", "adapter_model.safetensors")],
        "/root/ft-oasst1/internlm-chat-7b",
        "XTuner adapter: base is an absolute path of the training machine; weights are a Git LFS "
        "pointer",
    ),
    "054-adela-llama32-adapter": row(
        [],
        "meta-llama/Llama-3.2-3B",
        "adapter_config.json only, base a gated Hub id, not cached: nothing to judge alone",
    ),
}


@pytest.fixture(scope="module")
def wild(shared_dir: Path) -> Path:
    """../shared/wild (the test skips without ../shared)."""
    return shared_dir / "wild"


def test_table_covers_every_folder(wild):
    """One row per folder, no row without a folder."""
    assert sorted(TABLE) == sorted(p.name for p in wild.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", sorted(TABLE))
def test_wild_folder(name, wild, tmp_path, monkeypatch, capsys):
    """Exit 0 or 1, no traceback, the table's findings, and the base named in the one note."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    expected = TABLE[name]
    code = main(["check", "--format", "json", str(wild / name / "ft")])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    doc = json.loads(out)
    found = {(f["code"], f["path"]) for f in doc["findings"]}
    judged = {(c, p) for c, p in found if c in JUDGED}
    assert judged == expected.findings, expected.why
    assert doc["internal_errors"] == []
    errors = any(f["severity"] == "error" for f in doc["findings"])
    assert code == (1 if errors else 0), expected.why
    reasons = " ".join(s["reason"] for s in doc["skipped_rules"])
    assert expected.base_note in reasons, reasons


def test_wild_text_report_has_one_note(wild, tmp_path, monkeypatch, capsys):
    """The text report of a folder without its base: one note line naming the base and the
    command that fetches its small files."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    main(["check", str(wild / "027-wenhao-qwen25-lf" / "ft")])
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "hf download Qwen/Qwen2.5-7B-Instruct --include" in notes[0]
