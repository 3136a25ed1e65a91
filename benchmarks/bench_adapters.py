"""Measure what the adapter rules (FTX3xx) read: a 1 GB LoRA adapter against an 8B-shaped base.

    python benchmarks/bench_adapters.py [--rank 192]

The base is Llama-3-8B-shaped (32 layers, hidden 4096, 4 BF16 shards, 16 GB) and sparse: only
its headers exist on disk. The adapter targets every linear module of every layer (rank 192,
BF16: about 1 GB), also sparse except for the first `lora_B` tensor, which holds real values
(a trained adapter); a second copy leaves every `lora_B` zero (a never-trained adapter: the
worst case, every `lora_B` is read). Bytes read are the process's `rchar` (/proc/self/io) around
`ftfix.check(..., select=["FTX30"])`, run in a fresh process each time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ckpt_builders import write_sparse_safetensors

LAYERS, HIDDEN, INTER, KV, VOCAB = 32, 4096, 14336, 1024, 128256
MODULES = {  # name: (out, in)
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (KV, HIDDEN),
    "self_attn.v_proj": (KV, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (INTER, HIDDEN),
    "mlp.up_proj": (INTER, HIDDEN),
    "mlp.down_proj": (HIDDEN, INTER),
}


def write_sparse(path: Path, tensors: dict[str, list[int]], *, real: dict[str, bytes]) -> int:
    """A BF16 safetensors file whose data is a hole except the tensors in `real`."""
    starts = write_sparse_safetensors(path, list(tensors.items()))
    with path.open("r+b") as handle:
        for name, data in real.items():
            handle.seek(starts[name])
            handle.write(data)
    return path.stat().st_size


def build_base(folder: Path) -> int:
    folder.mkdir()
    names: dict[str, list[int]] = {"model.embed_tokens.weight": [VOCAB, HIDDEN]}
    for i in range(LAYERS):
        for module, (out, inp) in MODULES.items():
            names[f"model.layers.{i}.{module}.weight"] = [out, inp]
        names[f"model.layers.{i}.input_layernorm.weight"] = [HIDDEN]
        names[f"model.layers.{i}.post_attention_layernorm.weight"] = [HIDDEN]
    names["model.norm.weight"] = [HIDDEN]
    names["lm_head.weight"] = [VOCAB, HIDDEN]
    items = list(names.items())
    shards = 4
    weight_map, total = {}, 0
    for s in range(shards):
        part = dict(items[s * len(items) // shards : (s + 1) * len(items) // shards])
        shard = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        total += write_sparse(folder / shard, part, real={})
        weight_map.update(dict.fromkeys(part, shard))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": VOCAB, "tie_word_embeddings": False,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return total


def build_adapter(folder: Path, base: Path, rank: int, *, trained: bool) -> int:
    folder.mkdir()
    tensors: dict[str, list[int]] = {}
    for i in range(LAYERS):
        for module, (out, inp) in MODULES.items():
            key = f"base_model.model.model.layers.{i}.{module}"
            tensors[f"{key}.lora_A.weight"] = [rank, inp]
            tensors[f"{key}.lora_B.weight"] = [out, rank]
    first_b = next(name for name in tensors if ".lora_B." in name)
    out, r = tensors[first_b]
    real = {first_b: b"\x80\x3f" * (out * r)} if trained else {}  # BF16 1.0
    size = write_sparse(folder / "adapter_model.safetensors", tensors, real=real)
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
        "target_modules": sorted({m.split(".")[-1] for m in MODULES}), "rank_pattern": {},
        "init_lora_weights": True, "base_model_name_or_path": str(base),
    }  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return size


PROBE = """
import sys, time
def rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])
import ftfix
ftfix.check(sys.argv[1], sys.argv[2], select=["FTX30"])  # warm imports and caches once
before, start = rchar(), time.perf_counter()
report = ftfix.check(sys.argv[1], sys.argv[2], select=["FTX30"])
print(rchar() - before, time.perf_counter() - start, [f.code for f in report.findings])
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, default=192)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        base_size = build_base(tmp / "base")
        print(f"base: 8B-shaped, 4 sparse shards, {base_size / 2**30:.1f} GiB")
        for trained in (True, False):
            name = "trained" if trained else "never-trained"
            size = build_adapter(tmp / name, tmp / "base", args.rank, trained=trained)
            out = subprocess.run(
                [sys.executable, "-c", PROBE, str(tmp / "base"), str(tmp / name)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split(maxsplit=2)
            read, wall, codes = int(out[0]), float(out[1]), out[2].strip()
            print(
                f"{name:>13} adapter {size / 2**30:.2f} GiB (rank {args.rank}): read "
                f"{read / 2**20:.2f} MiB in {wall:.3f} s; findings {codes}"
            )
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f} s")
