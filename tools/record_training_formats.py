"""Record training rows as LLaMA-Factory's own template code formats them (test fixtures).

The recordings in `tests/recordings/` are what a LLaMA-Factory release feeds the model for a few
conversations with the real Qwen2.5 tokenizer (`../shared/realworld/qwen2.5-14b-instruct`): the
ids of `Template.encode_multiturn` (prompt and response of each turn, concatenated, as its
supervised preprocessing does), their decoded text and the conversation. Each line names the
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
    /work/venv-lf/bin/python tools/record_training_formats.py            # 0.9.5
    /work/venv-lf/bin/python tools/record_training_formats.py /work/venv-lf/lf-0.9.2

The conversations are those of `tests/builders_training.py` (CONVERSATIONS), repeated here so
the script runs without the test tree.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

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


def main() -> None:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])  # an older release installed with --target
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = stub
    from importlib.metadata import PathDistribution

    import llamafactory
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    dist = next(Path(llamafactory.__file__).parent.parent.glob("llamafactory-*.dist-info"))
    version = PathDistribution(dist).version
    tokenizer = AutoTokenizer.from_pretrained(str(QWEN25))
    template = TEMPLATES["qwen"]
    lines = []
    for messages in CONVERSATIONS:
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = [dict(m) for m in messages if m["role"] != "system"]
        pairs = template.encode_multiturn(tokenizer, turns, system=system)
        ids = [i for prompt, response in pairs for i in (*prompt, *response)]
        lines.append({
            "framework": "llamafactory", "version": version, "template": "qwen",
            "tokenizer": "Qwen2.5 (shared/realworld/qwen2.5-14b-instruct)",
            "messages": list(messages), "input_ids": ids,
            "text": tokenizer.decode(ids, skip_special_tokens=False),
        })  # fmt: skip
    OUT.mkdir(exist_ok=True)
    path = OUT / f"llamafactory-{version}-qwen-qwen2.5.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({len(lines)} rows, LLaMA-Factory {version})")


if __name__ == "__main__":
    main()
