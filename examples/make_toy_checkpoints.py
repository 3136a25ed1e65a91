"""Build a tiny base model and a broken fine-tune of it, for the demo and the examples.

    python examples/make_toy_checkpoints.py build/demo

writes build/demo/base (a Llama-3-style chat model: real tokenizer, config, safetensors) and
build/demo/finetuned, whose saved chat template lost its add_generation_prompt tail, the way
training scripts that hard-code a template break checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The bundled checkpoints are made by the same factory the tests use.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, build_merged


def main(out: Path) -> None:
    build_merged(out / "base")
    build_merged(out / "finetuned", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT, seed=1)
    print(f"wrote {out / 'base'} and {out / 'finetuned'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/demo"))
