"""Measure GGUF repairs against file size: an id patch vs a chat-template rewrite.

    python benchmarks/bench_gguf.py [--sizes-mb 16 1024 4096]

For each size, a GGUF is written from the test suite's tiny ChatML fine-tune (real vocabulary
and metadata, eos left at the pre-training `<|end_of_text|>` and the Llama 3 template, as a
converter reading stale files would) plus one large tensor whose data is a sparse hole. Then:

- `ftfix repair FT --gguf F --select FTX504` patches `eos_token_id` in place (4 bytes);
- `ftfix repair FT --gguf F --select FTX503` writes the folder's template: the metadata grows,
  so the file is streamed into a temp file and replaced (every tensor byte copied unchanged).

Wall time (best of `--repeat`) and bytes written (from /proc/self/io of the child) are printed
as a Markdown table. The patch should cost the same at any size; the rewrite follows the size.

First, reading Llama-3-sized metadata (128,256 tokens and types, 280,000 merges): ftfix's
reader against the `gguf` package's `GGUFReader`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from builders_gguf import write_gguf  # noqa: E402
from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE, build_merged  # noqa: E402

_RUN = """
import sys, ftfix
report = ftfix.repair(None, sys.argv[1], gguf=sys.argv[2], select=[sys.argv[3]], backup=False)
assert report.written, report.render_text()
for line in open("/proc/self/io"):
    if line.startswith("write_bytes"):
        print(line.split()[1])
"""


def make(folder: Path, ft: Path, size_mb: int) -> Path:
    path = write_gguf(
        folder / "model.gguf", ft, eos="<|end_of_text|>", template=LLAMA3_TEMPLATE, tensors=False
    )
    big = size_mb * 2**20
    import gguf
    import numpy as np

    # Re-write with one tensor of `big` bytes whose data is never written (a sparse hole).
    meta_only = gguf.GGUFReader(path)
    writer = gguf.GGUFWriter(str(path) + ".tmp", "llama")
    for field in meta_only.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        kind = field.types[0]
        value = field.contents()
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    writer.add_tensor_info("big", [big], np.dtype(np.int8), big)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    tmp = Path(str(path) + ".tmp")
    from ftfix.io.gguf import read_gguf

    data_offset = (tmp.stat().st_size + 31) // 32 * 32
    with tmp.open("r+b") as handle:
        handle.truncate(data_offset + big)
    os.replace(tmp, path)
    assert read_gguf(path).size == data_offset + big
    return path


def run(ft: Path, path: Path, code: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _RUN, str(ft), str(path), code],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return time.perf_counter() - start, int(out.stdout.split()[-1])


def bench_read(root: Path) -> None:
    import gguf
    import numpy as np

    from ftfix.io.gguf import read_gguf

    path = root / "vocab.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list([f"tok{i}" for i in range(128256)])
    writer.add_token_types([1] * 128256)
    writer.add_token_merges([f"a{i} b{i}" for i in range(280000)])
    writer.add_tensor("x", np.zeros(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for name, read in (("ftfix read_gguf + tokens", lambda: read_gguf(path).tokens),
                       ("gguf.GGUFReader", lambda: gguf.GGUFReader(path))):  # fmt: skip
        start = time.perf_counter()
        read()
        print(f"{name}: {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[16, 1024, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_read(root)
        ft = build_merged(root / "ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
        for size in args.sizes_mb:
            for code, what in (("FTX504", "patch eos id"), ("FTX503", "rewrite template")):
                best, written = float("inf"), 0
                for _ in range(args.repeat):
                    folder = root / f"g{size}"
                    shutil.rmtree(folder, ignore_errors=True)
                    folder.mkdir()
                    path = make(folder, ft, size)
                    seconds, written = run(ft, path, code)
                    best = min(best, seconds)
                    shutil.rmtree(folder)
                rows.append((size, what, best, written))
    print("| GGUF size | repair | wall | bytes written |")
    print("|---|---|---|---|")
    for size, what, seconds, written in rows:
        print(f"| {size} MB | {what} | {seconds:.2f} s | {written / 2**20:.1f} MB |")


if __name__ == "__main__":
    main()
