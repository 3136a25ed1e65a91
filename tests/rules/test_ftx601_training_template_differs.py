"""FTX601 training-template-differs: the framework's record names a template unlike the saved one.

The folders are real fine-tunes from `../shared/wild` (a LLaMA-Factory Qwen2.5 LoRA whose
saved template is Qwen2.5's) and `../shared/realworld` (Llama 3.2's template), with the record
each framework writes next to them added (the wild copies came without it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from builders_training import LF_QWEN_DEFAULT_SYSTEM, QWEN25_DEFAULT_SYSTEM

import ftfix

WILD = Path(__file__).resolve().parents[3] / "shared" / "wild"
REALWORLD = Path(__file__).resolve().parents[3] / "shared" / "realworld"


def _ftx601(folder: Path):
    return [f for f in ftfix.check(folder, select=["FTX601"]).findings if f.code == "FTX601"]


@pytest.fixture
def qwen_lf(tmp_path, monkeypatch):
    """wenhao's LLaMA-Factory Qwen2.5-7B LoRA (saved template: Qwen2.5's own)."""
    src = WILD / "027-wenhao-qwen25-lf" / "ft"
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dst = tmp_path / "ft"
    shutil.copytree(src, dst)
    for path in dst.iterdir():
        path.chmod(0o644)
    assert QWEN25_DEFAULT_SYSTEM in (dst / "chat_template.jinja").read_text("utf-8")
    return dst


def _lf_args(folder: Path, template: str, extra: str = "") -> None:
    (folder / "training_args.yaml").write_text(
        "model_name_or_path: Qwen/Qwen2.5-7B-Instruct\nstage: sft\nfinetuning_type: lora\n"
        f"template: {template}  # chat template\ncutoff_len: 1024\n{extra}",
        "utf-8",
    )


def test_llamafactory_qwen_trained_another_system_prompt(qwen_lf):
    _lf_args(qwen_lf, "qwen")
    (finding,) = _ftx601(qwen_lf)
    assert finding.severity.value == "warning"
    assert finding.path == "training_args.yaml"
    assert finding.data["framework"] == "LLaMA-Factory"
    assert finding.data["region"] == "system prompt"
    assert finding.data["trained"] == LF_QWEN_DEFAULT_SYSTEM
    assert finding.data["served"] == QWEN25_DEFAULT_SYSTEM
    assert "'qwen'" in finding.message and "training had the system prompt" in finding.message
    # LLaMA-Factory's `qwen` changed its default in 0.9.3; the record does not say which ran.
    assert finding.data["versions"] == "LLaMA-Factory 0.9.2 or earlier"
    assert "(LLaMA-Factory 0.9.2 or earlier: system prompt" in finding.message


def test_llamafactory_qwen_against_a_template_without_default_system(qwen_lf):
    # A ChatML template with no default system prompt differs from both LLaMA-Factory versions.
    (qwen_lf / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
        "'<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        "utf-8",
    )
    _lf_args(qwen_lf, "qwen")
    (finding,) = _ftx601(qwen_lf)
    assert (finding.data["trained"], finding.data["served"]) == (LF_QWEN_DEFAULT_SYSTEM, "")
    assert "0.9.2" not in finding.message


def test_default_system_set_to_the_templates_own_is_silent(qwen_lf):
    _lf_args(qwen_lf, "qwen", f'default_system: "{QWEN25_DEFAULT_SYSTEM}"\n')
    assert _ftx601(qwen_lf) == []


def test_llamaboard_config(qwen_lf):
    (qwen_lf / "llamaboard_config.yaml").write_text(
        "top.booster: auto\ntop.finetuning_type: lora\ntop.model_name: Qwen2.5-7B-Instruct\n"
        "top.template: qwen\ntrain.learning_rate: 5e-5\n",
        "utf-8",
    )
    (finding,) = _ftx601(qwen_lf)
    assert finding.path == "llamaboard_config.yaml"


@pytest.mark.parametrize(("template", "differs"), [("qwen2_5", False), ("qwen", True)])
def test_ms_swift_args(qwen_lf, template, differs):
    (qwen_lf / "args.json").write_text(
        json.dumps({"model": "Qwen/Qwen2.5-7B-Instruct", "template": template, "system": None}),
        "utf-8",
    )
    found = _ftx601(qwen_lf)
    assert bool(found) is differs
    if differs:
        assert found[0].data["framework"] == "ms-swift"


def test_axolotl_chatml_without_system_prompt(qwen_lf):
    (qwen_lf / "config.yml").write_text(
        "base_model: Qwen/Qwen2.5-7B-Instruct\nchat_template: chatml\ndatasets:\n"
        "  - path: data.jsonl\n    type: chat_template\n",
        "utf-8",
    )
    (finding,) = _ftx601(qwen_lf)
    assert finding.data["framework"] == "axolotl"
    assert (finding.data["trained"], finding.data["served"]) == ("", QWEN25_DEFAULT_SYSTEM)
    assert "training had no system prompt" in finding.message


def test_unknown_template_names_are_not_judged(qwen_lf):
    _lf_args(qwen_lf, "my_custom_template")
    assert _ftx601(qwen_lf) == []


def test_record_in_the_trainer_root(qwen_lf, tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    shutil.move(qwen_lf, root / "checkpoint-100")
    _lf_args(root, "qwen")
    (finding,) = _ftx601(root / "checkpoint-100")
    assert "../training_args.yaml" in finding.message
    assert finding.path is None


def test_llama3_template_and_the_saved_date_system_prompt(tmp_path):
    src = REALWORLD / "llama-3.2-3b-instruct" / "chat_template.jinja"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    ft = tmp_path / "ft"
    ft.mkdir()
    shutil.copy(src, ft / "chat_template.jinja")
    (ft / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}), "utf-8"
    )
    _lf_args(ft, "llama3")
    (finding,) = _ftx601(ft)
    assert finding.data["region"] == "system prompt"
    assert finding.data["trained"] == ""
    assert "Cutting Knowledge Date" in finding.data["served"]
