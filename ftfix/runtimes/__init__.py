"""Models of the runtimes a fine-tune is served with: what each reads from the folder.

One module per runtime, each naming the version it models and the source files its facts come
from. A new runtime is one module and one line in `RUNTIMES`. Rules read these facts (the
default vLLM LoRA rank, llama.cpp's end-of-generation texts); the report prints one row per
runtime (`ftfix check --runtimes`).
"""

from __future__ import annotations

from ..analysis.context import Context
from .base import Answer, Facts, Runtime, Verdict, gather
from .llamacpp import LlamaCpp
from .mlx_lm import MlxLm
from .ollama import Ollama
from .sglang import SGLang
from .tgi import TGI
from .transformers4 import Transformers4
from .transformers5 import Transformers5
from .vllm import VLLM

__all__ = ["RUNTIMES", "Answer", "Facts", "Runtime", "Verdict", "answers", "gather"]

RUNTIMES: tuple[Runtime, ...] = (
    Transformers5(),
    Transformers4(),
    VLLM(),
    SGLang(),
    TGI(),
    LlamaCpp(),
    Ollama(),
    MlxLm(),
)


def answers(ctx: Context) -> list[Answer]:
    """Every runtime's answer for `ctx.target` (with the base, if any, for an adapter's model)."""
    facts = gather(ctx)
    return [runtime.answer(facts) for runtime in RUNTIMES]
