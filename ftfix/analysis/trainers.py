"""The training frameworks' own records in an output folder, and the formats they name.

LLaMA-Factory writes `training_args.yaml` (and LLaMA Board `llamaboard_config.yaml`), ms-swift
`args.json`, axolotl its `config.yml`. Each names the Python template the data was formatted
with and, sometimes, the system prompt. For the templates whose output is known here, a probe
conversation is written as that template writes it, so `training.compare_sample` can compare it
with the saved Jinja template like any training row.

YAML is read with a small line parser (top-level `key: value` and `conversation:` /
`chat_template:` anywhere), never a YAML loader: the folder is untrusted and aliases can blow up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidCheckpointError
from ..io.checkpoint import Checkpoint
from ..io.limits import JSON_LIMIT, read_limited
from ..io.samples import TrainingSample

__all__ = ["TrainingRecord", "known_format", "probe_samples", "training_records"]

Message = Mapping[str, str]
Writer = Callable[[Sequence[Message], "str | None"], str]

# Conversations written in both formats: without a system message (the default system prompt
# shows) and with two turns (the generation prompt and the turn separators show).
PROBES: tuple[tuple[dict[str, str], ...], ...] = (
    (
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."},
    ),
)


@dataclass(frozen=True)
class TrainingRecord:
    """What a framework's record says about the training format.

    Args:
        framework: `"LLaMA-Factory"`, `"ms-swift"` or `"axolotl"`.
        path: the file (relative to the checkpoint folder or its trainer root).
        template: the template name it gives.
        system: the system prompt it sets, if any (`None`: the template's default).
    """

    framework: str
    path: str
    template: str
    system: str | None


def _chatml(messages: Sequence[Message], system: str | None) -> str:
    parts = []
    if messages[0]["role"] != "system" and system:
        parts.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts)


def _llama3(messages: Sequence[Message], system: str | None) -> str:
    parts = ["<|begin_of_text|>"]
    if messages[0]["role"] != "system" and system:
        parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>")
    parts += [
        f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>"
        for m in messages
    ]
    return "".join(parts)


_QWEN_SYSTEM = "You are a helpful assistant."
_QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

Variant = tuple[str | None, str | None]  # (the framework versions it holds for, system prompt)

# (framework, template name) -> (writer, default system prompt by version). Only templates whose
# output is known exactly are listed (read from LLaMA-Factory 0.8.3-0.9.5 and ms-swift 4.6.0);
# any other name is not judged. LLaMA-Factory's `qwen` trained with "You are a helpful
# assistant." up to 0.9.2 and with Qwen2.5's own prompt from 0.9.3 on.
_KNOWN: Mapping[tuple[str, str], tuple[Writer, tuple[Variant, ...]]] = {
    ("LLaMA-Factory", "qwen"): (
        _chatml,
        (("LLaMA-Factory 0.9.2 or earlier", _QWEN_SYSTEM), ("0.9.3 or later", _QWEN25_SYSTEM)),
    ),
    ("LLaMA-Factory", "chatml"): (_chatml, ((None, None),)),
    ("LLaMA-Factory", "llama3"): (_llama3, ((None, None),)),
    ("ms-swift", "qwen"): (_chatml, ((None, _QWEN_SYSTEM),)),
    ("ms-swift", "qwen2_5"): (_chatml, ((None, _QWEN25_SYSTEM),)),
    ("ms-swift", "chatml"): (_chatml, ((None, None),)),
    ("ms-swift", "llama3"): (_llama3, ((None, None),)),
    ("axolotl", "chatml"): (_chatml, ((None, None),)),
    ("axolotl", "llama3"): (_llama3, ((None, None),)),
}

_CHECKPOINT_DIR = re.compile(r"checkpoint-\d+")
_LINE = re.compile(r"^(\s*)(?:-\s+)?([\w.]+)\s*:\s*(.*?)\s*$")


def _scalar(text: str) -> str | None:
    text = re.sub(r"\s+#.*$", "", text)  # a trailing comment
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text if text and text not in ("null", "~") else None


def _yaml_keys(text: str) -> dict[str, str]:
    """Top-level `key: value` pairs, plus `conversation`/`chat_template` at any depth."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        indent, key, value = m.groups()
        if indent and key not in ("conversation", "chat_template"):
            continue
        scalar = _scalar(value)
        if scalar is not None and key not in found:
            found[key] = scalar
    return found


Reader = Callable[[str], "bytes | None"]


def _text(read: Reader, rel: str) -> str | None:
    try:
        data = read(rel)
    except (InvalidCheckpointError, OSError):
        return None  # an unreadable file is FTX900-FTX903's finding
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _from_yaml(read: Reader, prefix: str) -> list[TrainingRecord]:
    records = []
    for name in ("training_args.yaml", "llamaboard_config.yaml"):
        text = _text(read, name)
        if text is None:
            continue
        keys = _yaml_keys(text)
        template = keys.get("template") or keys.get("top.template")
        if template:
            system = keys.get("default_system") or keys.get("train.default_system")
            records.append(TrainingRecord("LLaMA-Factory", prefix + name, template, system))
    for name in ("config.yml", "axolotl_config.yml"):
        text = _text(read, name)
        if text is None:
            continue
        keys = _yaml_keys(text)
        template = keys.get("chat_template") or keys.get("conversation")
        if template and ("base_model" in keys or "datasets" in text):
            records.append(TrainingRecord("axolotl", prefix + name, template, None))
    return records


def _from_swift(read: Reader, prefix: str) -> list[TrainingRecord]:
    text = _text(read, "args.json")
    if text is None:
        return []
    try:
        args: Any = json.loads(text)
    except (ValueError, RecursionError):
        return []
    if not isinstance(args, dict):
        return []
    template = args.get("template") or args.get("template_type")
    if not isinstance(template, str) or not template:
        return []
    system = args.get("system")
    return [
        TrainingRecord(
            "ms-swift", prefix + "args.json", template, system if isinstance(system, str) else None
        )
    ]


def training_records(ckpt: Checkpoint) -> list[TrainingRecord]:
    """The framework records in `ckpt`, else in its trainer root (`../` of a checkpoint-N)."""
    found = _from_yaml(ckpt.read_bytes, "") + _from_swift(ckpt.read_bytes, "")
    if found or not _CHECKPOINT_DIR.fullmatch(ckpt.root.name):
        return found
    parent = ckpt.root.parent

    def read_parent(rel: str) -> bytes | None:
        return read_limited(parent / rel, JSON_LIMIT)

    return _from_yaml(read_parent, "../") + _from_swift(read_parent, "../")


def known_format(record: TrainingRecord) -> tuple[Writer, tuple[Variant, ...]] | None:
    """How the named template writes a conversation, and the system prompts it trained with.

    One variant per framework version range whose default differs; a single one when the
    record sets the system prompt itself.
    """
    known = _KNOWN.get((record.framework, record.template.strip().lower()))
    if known is None:
        return None
    writer, variants = known
    if record.system is not None:
        return writer, ((None, record.system),)
    return writer, variants


def probe_samples(record: TrainingRecord, system: str | None) -> list[TrainingSample]:
    """Probe conversations as the named template wrote them with `system` as default."""
    known = known_format(record)
    if known is None:
        return []
    writer = known[0]
    where = f"{record.path} template {record.template!r}"
    return [TrainingSample(tuple(p), writer(p, system), None, where) for p in PROBES]
