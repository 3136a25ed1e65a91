"""Benchmark the embedding rules on Llama-3-1B/8B/70B-shaped checkpoints stored as sparse files.

    python benchmarks/bench_embeddings.py                    # 1B, 8B, 70B; ~10 GB of real disk
    python benchmarks/bench_embeddings.py --shapes 1B 8B --repeat 5 --no-transformers

For each shape a base and a fine-tune are written with every tensor of the real model at its
real offset, as sparse files: only `embed_tokens` and `lm_head` hold data (bf16, the same bytes
in both folders); every other tensor is a hole. The story is a Llama-3 *base* fine-tuned into a
chat model with LoRA (embeddings frozen) and merged: the special tokens are untrained in the
base and still untrained in the fine-tune (rows near zero), and the chat template (Llama 3.2's
official one, read from ../shared/realworld) emits `<|start_header_id|>`, `<|end_header_id|>`
and `<|eot_id|>`. The tokenizer is the real Llama-3 vocabulary (tiktoken ranks from
../shared/realworld, converted to a byte-level BPE tokenizer.json here).

Measured in a child process each: `ftfix check`, `ftfix check --select FTX1` and
`ftfix repair --unsafe-fixes` (undone between repeats): wall time, peak RSS (`VmHWM`), and
bytes read and written (`rchar`/`wchar` of /proc/self/io: every read or write call, page cache
or not). Two floors are measured the same way (importing ftfix; opening both folders, which
parses both tokenizers), and the embedding rules alone inside one process. On the 1B shape
the way users do it today is measured too: transformers loads the model, the rows are set to
the mean, `save_pretrained` writes it again. The caches are warm (everything was just
written), as on a machine that just trained the model.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ckpt_builders import shard_groups, write_sparse_safetensors

ROOT = Path(__file__).resolve().parent.parent
REALWORLD = ROOT.parent / "shared" / "realworld"
VOCAB = 128256
SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size
SHAPES: dict[str, dict[str, Any]] = {
    "1B": {"hidden": 2048, "inter": 8192, "layers": 16, "heads": 32, "kv": 8, "tied": True},
    "8B": {"hidden": 4096, "inter": 14336, "layers": 32, "heads": 32, "kv": 8, "tied": False},
    "70B": {"hidden": 8192, "inter": 28672, "layers": 80, "heads": 64, "kv": 8, "tied": False},
}
# Llama 3.1's 256 special tokens, by id from 128000.
NAMED_SPECIALS = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128004: "<|finetune_right_pad_id|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128008: "<|eom_id|>",
    128009: "<|eot_id|>",
    128010: "<|python_tag|>",
}
TRAINED_SPECIALS = (128000, 128001)  # bos and the pre-training eos are trained in the base
PRETOKENIZE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# ------------------------------------------------------------------------------ tokenizer
def special_tokens() -> dict[int, str]:
    """Llama 3.1's special tokens: named ones and `<|reserved_special_token_N|>` in between."""
    tokens, reserved = {}, 0
    for token_id in range(128000, VOCAB):
        if token_id in NAMED_SPECIALS:
            tokens[token_id] = NAMED_SPECIALS[token_id]
        else:
            tokens[token_id] = f"<|reserved_special_token_{reserved}|>"
            reserved += 1
    return tokens


def llama3_tokenizer_json() -> str:
    """A byte-level BPE tokenizer.json equivalent to Llama 3's tiktoken ranks plus specials.

    Merges are every split of a token into two vocabulary pieces, ordered by the rank of the
    merged token: BPE then reproduces tiktoken's rank order.
    """
    from ftfix.analysis.vocab import byte_level_alphabet

    chars = byte_level_alphabet()
    vocab: dict[str, int] = {}
    for line in (REALWORLD / "llama-3-tiktoken" / "tokenizer.model").read_text().splitlines():
        token, rank = line.split()
        vocab["".join(chars[b] for b in base64.b64decode(token))] = int(rank)
    merges = []
    for token, rank in vocab.items():
        splits = [
            (token[:i], token[i:])
            for i in range(1, len(token))
            if token[:i] in vocab and token[i:] in vocab
        ]
        splits.sort(key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
        merges.extend((rank, left, right) for left, right in splits)
    merges.sort(key=lambda item: item[0])
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in special_tokens().items()
    ]  # fmt: skip
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": PRETOKENIZE},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": False,
                },
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {
                "<|begin_of_text|>": {
                    "id": "<|begin_of_text|>",
                    "ids": [128000],
                    "tokens": ["<|begin_of_text|>"],
                }
            },
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": [[left, right] for _, left, right in merges],
        },
    }
    return json.dumps(data, ensure_ascii=False)


def write_tokenizer(folder: Path, tokenizer_json: str) -> None:
    """tokenizer.json, tokenizer_config.json (transformers 5 layout) and the chat template."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    decoder = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, t in special_tokens().items()
    }  # fmt: skip
    config = {
        "added_tokens_decoder": decoder,
        "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    template = (REALWORLD / "llama-3.2-3b-instruct" / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").write_text(template)
    generation = {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")


# -------------------------------------------------------------------------------- weights
def tensors_of(shape: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """State-dict names and shapes of a Llama-3 model, in module order."""
    h, inter = shape["hidden"], shape["inter"]
    kv = shape["kv"] * (h // shape["heads"])
    found = [("model.embed_tokens.weight", [VOCAB, h])]
    for i in range(shape["layers"]):
        p = f"model.layers.{i}."
        found += [
            (p + "input_layernorm.weight", [h]),
            (p + "mlp.down_proj.weight", [h, inter]),
            (p + "mlp.gate_proj.weight", [inter, h]),
            (p + "mlp.up_proj.weight", [inter, h]),
            (p + "post_attention_layernorm.weight", [h]),
            (p + "self_attn.k_proj.weight", [kv, h]),
            (p + "self_attn.o_proj.weight", [h, h]),
            (p + "self_attn.q_proj.weight", [h, h]),
            (p + "self_attn.v_proj.weight", [kv, h]),
        ]
    found.append(("model.norm.weight", [h]))
    if not shape["tied"]:
        found.append(("lm_head.weight", [VOCAB, h]))
    return found


def _embedding_chunks(hidden: int, seed: int) -> Iterator[tuple[int, bytes]]:
    """(first row, bf16 bytes) of a trained-looking matrix whose special rows are near zero."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0.0, 0.01, hidden).astype(np.float32)  # trained rows share a direction
    untrained = [i for i in range(128000, VOCAB) if i not in TRAINED_SPECIALS]
    step = max(1, (64 << 20) // (4 * hidden))
    for start in range(0, VOCAB, step):
        stop = min(VOCAB, start + step)
        rows = rng.normal(0.0, 0.02, (stop - start, hidden)).astype(np.float32) + offset
        for i in untrained:
            if start <= i < stop:  # what Llama-3 base ships: special rows barely off zero
                rows[i - start] = rng.normal(0.0, 1e-6, hidden)
        yield start, (rows.view(np.uint32) >> 16).astype("<u2").tobytes()


def write_weights(folders: Sequence[Path], shape: dict[str, Any]) -> None:
    """Sparse shards in every folder; embed_tokens/lm_head data identical in all of them."""
    groups = shard_groups(tensors_of(shape), max_bytes=SHARD_BYTES)
    names = (
        ["model.safetensors"]
        if len(groups) == 1
        else [f"model-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    )
    real: dict[str, tuple[str, int]] = {}  # tensor -> (shard, absolute offset)
    for name, group in zip(names, groups, strict=True):
        for folder in folders:
            starts = write_sparse_safetensors(folder / name, group)
        for tensor in ("model.embed_tokens.weight", "lm_head.weight"):
            if tensor in starts:
                real[tensor] = (name, starts[tensor])
    row_bytes = 2 * shape["hidden"]
    for seed, (_tensor, (shard, start)) in enumerate(sorted(real.items())):
        handles = [os.open(folder / shard, os.O_WRONLY) for folder in folders]
        try:
            for first, data in _embedding_chunks(shape["hidden"], seed):
                for fd in handles:
                    os.pwrite(fd, data, start + first * row_bytes)
        finally:
            for fd in handles:
                os.close(fd)
    if len(groups) > 1:
        total = sum(2 * int(np.prod(d)) for g in groups for _, d in g)
        index = {
            "metadata": {"total_size": total},
            "weight_map": {t: n for n, g in zip(names, groups, strict=True) for t, _ in g},
        }
        for folder in folders:
            (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def write_config(folder: Path, shape: dict[str, Any]) -> None:
    """A Llama-3 config.json for the shape."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "dtype": "bfloat16",
        "eos_token_id": 128001,
        "head_dim": shape["hidden"] // shape["heads"],
        "hidden_act": "silu",
        "hidden_size": shape["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": shape["inter"],
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": shape["heads"],
        "num_hidden_layers": shape["layers"],
        "num_key_value_heads": shape["kv"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
        "tie_word_embeddings": shape["tied"],
        "transformers_version": "5.23.0",
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def build_pair(root: Path, shape_name: str, tokenizer_json: str) -> tuple[Path, Path]:
    """Write the base and the fine-tune of one shape; return their folders."""
    shape = SHAPES[shape_name]
    folders = [root / f"base-{shape_name}", root / f"ft-{shape_name}"]
    for folder in folders:
        write_tokenizer(folder, tokenizer_json)
        write_config(folder, shape)
    write_weights(folders, shape)
    return folders[0], folders[1]


# ------------------------------------------------------------------------------ measuring
CHILD = """
import json, sys, time
start = time.perf_counter()
code = 0
try:
    if sys.argv[1] == "ftfix":
        from ftfix.cli import main
        code = main(json.loads(sys.argv[2]))
    else:
        exec(sys.argv[2])
finally:
    io = dict(l.split(": ") for l in open("/proc/self/io").read().splitlines())
    # VmHWM: the peak RSS of this program (ru_maxrss would include the parent's, from fork)
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
    stats = {"rss_mb": int(status["VmHWM"].split()[0]) / 1024,
             "read_mb": int(io["rchar"]) / 2**20, "written_mb": int(io["wchar"]) / 2**20,
             "code": code}
    sys.stderr.write("BENCH " + json.dumps(stats) + "\\n")
"""

LOAD_FIX_SAVE = """
import torch
from transformers import LlamaForCausalLM
ft, out = {ft!r}, {out!r}
model = LlamaForCausalLM.from_pretrained(ft, dtype=torch.bfloat16)
broken = [i for i in range(128000, 128256) if i not in (128000, 128001)]
with torch.no_grad():
    for layer in {{id(model.get_input_embeddings()): model.get_input_embeddings(),
                  id(model.get_output_embeddings()): model.get_output_embeddings()}}.values():
        weight = layer.weight
        weight[broken] = weight[:128000].float().mean(0).to(weight.dtype)
model.save_pretrained(out)
"""


TOKENIZER_FLOOR = """
import ftfix.cli
from ftfix.io.checkpoint import Checkpoint
for folder in ({base!r}, {ft!r}):
    Checkpoint.open(folder).tokenizer()  # what opening a pair costs before any rule runs
"""

RULES_ALONE = """
import time
from ftfix import registry
from ftfix.analysis.context import Context
from ftfix.io.checkpoint import Checkpoint
base, ft = Checkpoint.open({base!r}), Checkpoint.open({ft!r})
start = time.perf_counter()
ctx = Context(base, ft)
found = [f for fixer in registry.resolve(["FTX1"]) for f in fixer.check(ctx)]
print("ELAPSED", time.perf_counter() - start, len(found))
"""


def run(kind: str, payload: str) -> dict[str, float]:
    """Run one child; wall time (s) plus what it reported about itself."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, payload], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    line = next((x for x in done.stderr.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"{kind} failed:\n{done.stdout}\n{done.stderr}")
    stats: dict[str, float] = json.loads(line[len("BENCH ") :])
    stats["wall_s"] = wall
    stats["stdout"] = done.stdout  # type: ignore[assignment]
    return stats


def ftfix(*argv: str) -> dict[str, float]:
    """`ftfix ARGV` in a child."""
    return run("ftfix", json.dumps(list(argv)))


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median wall time; the largest RSS and byte counts of the runs."""
    return {
        "wall_s": median(r["wall_s"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "read_mb": max(r["read_mb"] for r in runs),
        "written_mb": max(r["written_mb"] for r in runs),
    }


def row(label: str, shape: str, s: dict[str, float]) -> str:
    """One Markdown table row."""
    return (
        f"| {shape} | {label} | {s['wall_s']:.2f} s | {s['rss_mb']:.0f} MB | "
        f"{s['read_mb']:.1f} MB | {s['written_mb']:.2f} MB |"
    )


def main() -> None:
    """Build each shape, measure, print a Markdown table, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-transformers", action="store_true", help="skip load-fix-save")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    args = parser.parse_args()
    if not (REALWORLD / "llama-3-tiktoken" / "tokenizer.model").is_file():
        sys.exit(f"needs {REALWORLD} (Llama-3 ranks and template)")
    work = Path(tempfile.mkdtemp(prefix="ftfix-bench-", dir=args.workdir))
    free = shutil.disk_usage(work).free / 2**30
    print(f"work folder {work} ({free:.0f} GiB free); {os.cpu_count()} CPUs", file=sys.stderr)
    start = time.perf_counter()
    tokenizer_json = llama3_tokenizer_json()
    print(f"tokenizer.json built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    lines = [
        "| shape | command | wall | peak RSS | read | written |",
        "|---|---|---|---|---|---|",
    ]
    try:
        for shape in args.shapes:
            base, ft = build_pair(work, shape, tokenizer_json)
            apparent = sum(p.stat().st_size for p in ft.iterdir()) / 2**30
            real = sum(p.stat().st_blocks * 512 for p in ft.iterdir()) / 2**30
            print(f"{shape}: {apparent:.1f} GiB apparent, {real:.2f} GiB real", file=sys.stderr)
            first = ftfix("check", str(base), str(ft))
            print(first["stdout"], file=sys.stderr)  # type: ignore[arg-type]
            checks = [first] + [ftfix("check", str(base), str(ft)) for _ in range(args.repeat - 1)]
            mine = [
                ftfix("check", "--select", "FTX1", str(base), str(ft)) for _ in range(args.repeat)
            ]
            repairs = []
            for _ in range(args.repeat):
                repairs.append(
                    ftfix("repair", "--unsafe-fixes", "--select", "FTX1", str(base), str(ft))
                )
                ftfix("undo", str(ft))
            print(repairs[0]["stdout"], file=sys.stderr)  # type: ignore[arg-type]
            floor = [run("python", "import ftfix.cli") for _ in range(args.repeat)]
            lines.append(row("floor: `python -c 'import ftfix.cli'`", shape, summary(floor)))
            parse = TOKENIZER_FLOOR.format(base=str(base), ft=str(ft))
            parses = [run("python", parse) for _ in range(args.repeat)]
            lines.append(
                row("floor: open both folders, parse both tokenizers", shape, summary(parses))
            )
            alone = [
                run("python", RULES_ALONE.format(base=str(base), ft=str(ft)))
                for _ in range(args.repeat)
            ]
            for stats in alone:  # the rules' own time, measured inside the process
                stats["wall_s"] = float(str(stats["stdout"]).split()[1])
            lines.append(row("FTX101-FTX104 check alone (in-process)", shape, summary(alone)))
            lines.append(row("`ftfix check`", shape, summary(checks)))
            lines.append(row("`ftfix check --select FTX1`", shape, summary(mine)))
            lines.append(
                row("`ftfix repair --unsafe-fixes --select FTX1`", shape, summary(repairs))
            )
            if shape == "1B" and not args.no_transformers:
                out = work / "saved-1B"
                stats = run("python", LOAD_FIX_SAVE.format(ft=str(ft), out=str(out)))
                lines.append(row("transformers load, fix rows, save_pretrained", shape, stats))
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(base)
            shutil.rmtree(ft)
            print("\n".join(lines[-7:]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
