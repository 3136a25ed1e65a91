"""GGUF rules and the Ollama conversion on real tokenizers and templates (../shared/realworld).

For each real model folder with a chat template, a GGUF is written from its tokenizer the way
llama.cpp's converter lays it out (token list padded with `[PAD<id>]` to the embedding size,
the folder's eos/bos and template; no tensors). Checked against its folder it must be clean
apart from the Ollama finding, and its Modelfile template must render like the Jinja one.
"""

from __future__ import annotations

import json

import pytest
from builders_gguf import write_gguf

import ftfix
from ftfix.analysis.ollama import OllamaTemplate, convert, ollama_render
from ftfix.analysis.render import render
from ftfix.io.checkpoint import Checkpoint

FOLDERS = [
    "deepseek-r1-distill-qwen-32b",
    "gemma-2-2b-it",
    "internlm2-chat-7b",
    "phi-3-mini-128k-instruct",
    "qwen2.5-14b-instruct",
    "reflection-llama-3.1-70b",
]


@pytest.mark.parametrize("name", FOLDERS)
def test_real_template_converts_for_ollama(shared_dir, name):
    """The Modelfile template renders a multi-turn conversation exactly like the Jinja one."""
    ckpt = Checkpoint.open(shared_dir / "realworld" / name, role="base")
    tokens = ckpt.special_tokens()
    result = convert(ckpt.chat_template() or "", tokens, ["x"])
    assert isinstance(result, OllamaTemplate), result
    conversation = [
        {"role": "user", "content": "what is two plus two?"},
        {"role": "assistant", "content": "four."},
        {"role": "user", "content": "and three plus three?"},
    ]
    want = render(ckpt.chat_template() or "", conversation, add_generation_prompt=True,
                  special_tokens={**tokens, "bos_token": ""})  # fmt: skip
    assert ollama_render(result, conversation) == want


def test_real_gguf_checked_against_its_folder(shared_dir, tmp_path):
    """Phi-3 (a real tokenizer.json, 32,011 tokens padded to 32,064 as the converter does):
    clean against its folder apart from the Ollama finding; the repair writes the Modelfile."""
    folder = shared_dir / "realworld" / "phi-3-mini-128k-instruct"
    config = json.loads((folder / "config.json").read_text("utf-8"))
    gguf = write_gguf(tmp_path / "model.gguf", folder, pad_to=config["vocab_size"])
    report = ftfix.check(None, folder, gguf=gguf)
    assert [f.code for f in report.findings] == ["FTX506"], report.render_text()
    repaired = ftfix.repair(None, folder, gguf=gguf)
    assert repaired.written == ["Modelfile"], repaired.render_text()
    text = (tmp_path / "Modelfile").read_text()
    assert 'PARAMETER stop "<|end|>"' in text and "<|assistant|>" in text


def test_qwen_default_system_prompt_becomes_system(shared_dir):
    ckpt = Checkpoint.open(shared_dir / "realworld" / "qwen2.5-14b-instruct", role="base")
    result = convert(ckpt.chat_template() or "", ckpt.special_tokens(), ["<|im_end|>"])
    assert isinstance(result, OllamaTemplate)
    assert result.system is not None and result.system.startswith("You are Qwen")
