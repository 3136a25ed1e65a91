"""Record training rows as LLaMA-Factory's and ms-swift's own template code formats them.

The recordings in `tests/recordings/` are what a framework release feeds the model for a few
conversations with the real Qwen2.5 tokenizer (`../shared/realworld/qwen2.5-14b-instruct`):
LLaMA-Factory's `Template.encode_multiturn` (prompt and response ids of each turn,
concatenated, as its supervised preprocessing does) and ms-swift's `Template.encode`
(`input_ids` in training mode), their decoded text and the conversation. Each line names the
framework, its version and the template, so tests can cite them.

LLaMA-Factory pins versions of torch/transformers that conflict with ftfix's, so it runs in its
own environment, installed without its dependencies (the template module needs only torch,
transformers, datasets and fsspec, taken from ftfix's venv through a .pth file; torchaudio,
imported by its multimodal plugin and unused here, is stubbed):

    python -m venv /work/venv-lf
    echo "$(/work/main/.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')" \\
        > "$(/work/venv-lf/bin/python -c 'import site; print(site.getsitepackages()[0])')/main.pth"
    /work/venv-lf/bin/pip install --no-deps llamafactory==0.9.5
    /work/venv-lf/bin/pip install --no-deps --target /work/venv-lf/lf-0.9.2 llamafactory==0.9.2
    /work/venv-lf/bin/python tools/record_training_formats.py llamafactory            # 0.9.5
    /work/venv-lf/bin/python tools/record_training_formats.py llamafactory /work/venv-lf/lf-0.9.2

ms-swift 4.6.0 likewise, with what its `swift.template` package imports (Pillow, modelscope,
cryptography, cffi, pycparser, json_repair; the tokenizer gets the `model_info`/`model_meta`
attributes ms-swift's own loader would set):

    /work/venv-lf/bin/pip install --no-deps --target /work/venv-lf/swift-4.6.0 ms-swift==4.6.0
    /work/venv-lf/bin/pip install --no-deps pillow modelscope cryptography cffi pycparser \
        json_repair
    /work/venv-lf/bin/python tools/record_training_formats.py ms-swift /work/venv-lf/swift-4.6.0

The conversations are those of `tests/builders_training.py` (CONVERSATIONS), repeated here so
the script runs without the test tree.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QWEN25 = ROOT.parent / "shared" / "realworld" / "qwen2.5-14b-instruct"
OUT = ROOT / "tests" / "recordings"

CONVERSATIONS = (
    (
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ),
    (
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ),
    (
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ),
)


def _row(framework: str, version: str, template: str, messages: Any, ids: list[int], tok: Any):
    return {
        "framework": framework, "version": version, "template": template,
        "tokenizer": "Qwen2.5 (shared/realworld/qwen2.5-14b-instruct)",
        "messages": list(messages), "input_ids": ids,
        "text": tok.decode(ids, skip_special_tokens=False),
    }  # fmt: skip


def _write(name: str, lines: list[dict[str, Any]]) -> None:
    OUT.mkdir(exist_ok=True)
    path = OUT / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({len(lines)} rows)")


def _version(package: str, module: Any) -> str:
    from importlib.metadata import PathDistribution

    site = Path(module.__file__).parent.parent
    dist = next(site.glob(f"{package}-*.dist-info"))
    return str(PathDistribution(dist).version)


def llamafactory() -> None:
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = stub  # imported by the multimodal plugin only
    import llamafactory as lf
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    version = _version("llamafactory", lf)
    tokenizer = AutoTokenizer.from_pretrained(str(QWEN25))
    lines = []
    for messages in CONVERSATIONS:
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = [dict(m) for m in messages if m["role"] != "system"]
        pairs = TEMPLATES["qwen"].encode_multiturn(tokenizer, turns, system=system)
        ids = [i for prompt, response in pairs for i in (*prompt, *response)]
        lines.append(_row("llamafactory", version, "qwen", messages, ids, tokenizer))
    _write(f"llamafactory-{version}-qwen-qwen2.5.jsonl", lines)


def ms_swift() -> None:
    import swift
    from swift.template import TEMPLATE_MAPPING
    from transformers import AutoTokenizer

    version = _version("ms_swift", swift)
    tokenizer = AutoTokenizer.from_pretrained(str(QWEN25))
    # What ms-swift's get_processor attaches; the text templates read only these fields.
    info = SimpleNamespace(config=None, task_type="causal_lm", max_model_len=32768)
    object.__setattr__(tokenizer, "model_info", info)
    object.__setattr__(tokenizer, "model_meta", SimpleNamespace(is_multimodal=False))
    for name in ("qwen", "qwen2_5"):
        meta = TEMPLATE_MAPPING[name]
        template = meta.template_cls(tokenizer, meta)
        template.set_mode("train")
        lines = []
        for messages in CONVERSATIONS:
            ids = list(template.encode({"messages": [dict(m) for m in messages]})["input_ids"])
            lines.append(_row("ms-swift", version, name, messages, ids, tokenizer))
        _write(f"ms-swift-{version}-{name}-qwen2.5.jsonl", lines)


def main() -> None:
    framework = sys.argv[1] if len(sys.argv) > 1 else "llamafactory"
    if len(sys.argv) > 2:
        sys.path.insert(0, sys.argv[2])  # a release installed with --target
    {"llamafactory": llamafactory, "ms-swift": ms_swift}[framework]()


if __name__ == "__main__":
    main()
