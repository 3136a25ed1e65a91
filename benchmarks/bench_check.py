"""Measure `ftfix check` / `repair --dry-run` wall time against checkpoint size.

    python benchmarks/bench_check.py [--sizes-mb 1 1024 8192]

For each size a base and a fine-tune are built whose safetensors shards add up to that size
(sparse files: the bytes are never written, like a big model on disk whose rows ftfix never
reads). Cost should follow the bytes ftfix touches (headers, small JSON files), not the model
size. Also prints the import floor (`python -c "import ftfix"`) and whether torch/transformers
were imported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, build_merged


def add_sparse_shard(folder: Path, size_mb: int) -> None:
    """Add a large F32 tensor stored in a sparse file, listed in a sharded index."""
    n = size_mb * 1024 * 1024 // 4
    header = json.dumps({"big.weight": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}})
    header += " " * (-len(header) % 8)
    shard = folder / "model-00002-of-00002.safetensors"
    with shard.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header.encode())
        handle.truncate(8 + len(header) + n * 4)
    first = folder / "model.safetensors"
    first.rename(folder / "model-00001-of-00002.safetensors")
    from ftfix.io.safetensors import SafetensorsFile

    names = SafetensorsFile.open(folder / "model-00001-of-00002.safetensors").tensors
    weight_map = {name: "model-00001-of-00002.safetensors" for name in names}
    weight_map["big.weight"] = shard.name
    index = {"metadata": {"total_size": n * 4}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def best_of(args: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 1024, 16384])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    floor = best_of([py, "-c", "import ftfix"], args.repeat)
    print(f"import floor  python -c 'import ftfix': {floor:.3f} s")
    print(
        f"python -c 'import transformers.utils.chat_template_utils': "
        f"{best_of([py, '-c', 'import transformers.utils.chat_template_utils'], args.repeat):.3f} s"
    )
    tmp = Path(tempfile.mkdtemp())
    try:
        print(f"{'model size':>12}  {'check':>8}  {'repair --dry-run':>16}")
        for size in args.sizes_mb:
            base = build_merged(tmp / f"base{size}")
            ft = build_merged(tmp / f"ft{size}", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
            for folder in (base, ft):
                add_sparse_shard(folder, size)
            check = best_of([py, "-m", "ftfix", "check", str(base), str(ft)], args.repeat)
            dry = best_of(
                [py, "-m", "ftfix", "repair", "--dry-run", str(base), str(ft)], args.repeat
            )
            print(f"{size:>9} MB  {check:>7.3f}s  {dry:>15.3f}s")
        probe = (
            "import sys, ftfix; ftfix.check(sys.argv[1], sys.argv[2]); "
            "print([m for m in ('torch', 'transformers', 'peft') if m in sys.modules])"
        )
        out = subprocess.run([py, "-c", probe, str(base), str(ft)], capture_output=True, text=True)
        print(f"heavy modules imported by check: {out.stdout.strip()}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
