"""ftfix.analysis.embeddings: finding rows in every layout, judging them, growing shards."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from ckpt_builders import (
    BASE_VOCAB_SIZE,
    TOKEN_IDS,
    build_adapter,
    build_merged,
    copy_checkpoint,
    read_safetensors_header,
    read_tensor,
    write_safetensors,
)
from helpers import patch_writer

from ftfix import write
from ftfix.analysis import embeddings as emb
from ftfix.analysis.context import Context, Options
from ftfix.errors import StaleEditError
from ftfix.findings import TensorResizeEdit
from ftfix.io.checkpoint import Checkpoint
from ftfix.io.safetensors import SafetensorsFile, rows_from_float32

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
EOT, HEADER = TOKEN_IDS["<|eot_id|>"], TOKEN_IDS["<|start_header_id|>"]
RESERVED = (TOKEN_IDS["<|reserved_special_token_0|>"], TOKEN_IDS["<|reserved_special_token_1|>"])


# ------------------------------------------------------------------ helpers (shared by rules)
def weights_file(folder: Path, tensor: str) -> Path:
    """The safetensors file of `folder` that holds `tensor` (single file, shards or adapter)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return folder / json.loads(index.read_text())["weight_map"][tensor]
    for name in ("model.safetensors", "adapter_model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(tensor)


def get_rows(folder: Path, tensor: str, rows: Sequence[int]) -> np.ndarray:
    """Rows of `tensor` as float32 (read with ftfix's own reader)."""
    return SafetensorsFile.open(weights_file(folder, tensor)).read_rows(tensor, list(rows))


def set_rows(folder: Path, tensor: str, rows: Sequence[int], values: object) -> None:
    """Overwrite rows of `tensor` in place (values broadcast to the rows; any float dtype)."""
    path = weights_file(folder, tensor)
    info = SafetensorsFile.open(path).info(tensor)
    array = np.broadcast_to(np.asarray(values, dtype=np.float32), (len(rows), info.shape[1]))
    data = rows_from_float32(array, info.dtype)
    with path.open("r+b") as handle:
        for i, row in enumerate(rows):
            handle.seek(info.row_offset(row))
            handle.write(data[i * info.row_bytes : (i + 1) * info.row_bytes])


def shift_rows(folder: Path, tensor: str, offset: float = 0.05, *, seed: int = 1) -> None:
    """Add one fixed vector to every row: trained embeddings are anisotropic (their mean is far
    from the origin), which tiny random test matrices are not."""
    info = SafetensorsFile.open(weights_file(folder, tensor)).info(tensor)
    vector = np.random.default_rng(seed).normal(0.0, offset, info.shape[1]).astype(np.float32)
    rows = list(range(info.shape[0]))
    set_rows(folder, tensor, rows, get_rows(folder, tensor, rows) + vector)


def context(base: Path, ft: Path, **options: object) -> Context:
    """A rule context for a base and a fine-tune."""
    return Context(
        Checkpoint.open(base, role="base"),
        Checkpoint.open(ft),
        Options(**options),  # type: ignore[arg-type]
    )


def verdict_of(analysis: emb.EmbeddingAnalysis, token_id: int) -> dict[str, str | None]:
    """side -> evidence kind (None when trained) for one token."""
    for verdict in analysis.verdicts:
        if verdict.token.id == token_id:
            return {
                s.side: (None if s.evidence is None else s.evidence.kind) for s in verdict.sides
            }
    raise KeyError(token_id)


def rename_tensors(folder: Path, names: dict[str, str], config: dict[str, object]) -> None:
    """Rewrite model.safetensors with renamed tensors and update config.json keys."""
    path = folder / "model.safetensors"
    header = read_safetensors_header(path)
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        data = rows_from_float32(read_tensor(path, name), entry["dtype"])
        tensors[names.get(name, name)] = (entry["dtype"], entry["shape"], data)
    write_safetensors(path, tensors)
    data = json.loads((folder / "config.json").read_text())
    data.update(config)
    (folder / "config.json").write_text(json.dumps(data, indent=2) + "\n")


# ------------------------------------------------------------------------------- locate
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shards", [1, 2])
def test_locate_merged_single_and_sharded(make_checkpoint, dtype, shards):
    """Embedding and head are found in one file or in shards, in every float dtype."""
    ft = make_checkpoint("ft", dtype=dtype, shards=shards)
    layout = emb.locate(Checkpoint.open(ft))
    assert layout is not None and not layout.tied
    assert (layout.input.name, layout.output.name) == (EMBED, HEAD)
    assert layout.input.rows == BASE_VOCAB_SIZE and layout.input.hidden == 8
    assert layout.input.dtype == {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]
    expected = read_tensor(weights_file(ft, HEAD), HEAD)[[EOT, 0]]
    assert np.array_equal(layout.output.read([EOT, 0]), expected)
    homes = layout.output.homes(EOT)
    assert [h.path for h in homes] == [weights_file(ft, HEAD).name]


def test_locate_tied(make_checkpoint):
    """Without a head tensor the embedding is the head; a config that unties it is flagged."""
    ft = make_checkpoint("ft", tied=True)
    layout = emb.locate(Checkpoint.open(ft))
    assert layout.tied and layout.output is None and not layout.head_missing
    config = json.loads((ft / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (ft / "config.json").write_text(json.dumps(config))
    assert emb.locate(Checkpoint.open(ft)).head_missing


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({EMBED: "transformer.wte.weight"}, ("transformer.wte.weight", HEAD)),
        (
            {EMBED: "model.tok_embeddings.weight", HEAD: "output.weight"},
            ("model.tok_embeddings.weight", "output.weight"),
        ),
        (
            {EMBED: "gpt_neox.embed_in.weight", HEAD: "embed_out.weight"},
            ("gpt_neox.embed_in.weight", "embed_out.weight"),
        ),
        (
            {EMBED: "model.language_model.embed_tokens.weight"},
            ("model.language_model.embed_tokens.weight", HEAD),
        ),
        (
            {EMBED: "thinker.model.embed_tokens.weight", HEAD: "thinker.lm_head.weight"},
            ("thinker.model.embed_tokens.weight", "thinker.lm_head.weight"),
        ),
    ],
    ids=["gpt2", "internlm2", "gpt-neox", "multimodal", "by-suffix"],
)
def test_locate_architectures(make_checkpoint, names, expected):
    """Common tensor names of other architectures are found, and unknown prefixes by suffix."""
    ft = make_checkpoint("ft")
    rename_tensors(ft, names, {})
    layout = emb.locate(Checkpoint.open(ft))
    assert (layout.input.name, layout.output.name) == expected


def test_locate_text_config_and_quantised(make_checkpoint):
    """A multimodal text_config supplies vocab_size/tying; a quantised matrix is not judged."""
    ft = make_checkpoint("ft", tied=True)
    rename_tensors(ft, {}, {"text_config": {"vocab_size": 98, "tie_word_embeddings": True}})
    assert emb.locate(Checkpoint.open(ft)).vocab_size == 98
    path = ft / "model.safetensors"
    write_safetensors(path, {EMBED: ("U8", [98, 4], bytes(98 * 4))})
    layout = emb.locate(Checkpoint.open(ft))
    assert layout is not None and layout.input is None


def test_locate_nothing_for_tokenizer_only(tmp_path):
    """A folder without weights has no rows to judge."""
    from ckpt_builders import build_tokenizer

    folder = build_tokenizer(tmp_path / "tok")
    assert emb.locate(Checkpoint.open(folder)) is None


# ---------------------------------------------------------------------------- statistics
def test_sample_is_bounded_and_deterministic():
    """The sample excludes candidates, stays under its bound and is the same on every run."""
    first = emb.sample_ids(100_000, range(50), 2048)
    assert len(first) == 2048 and min(first) >= 50 and first == sorted(first)
    assert first == emb.sample_ids(100_000, range(50), 2048)
    assert emb.sample_ids(10, [3], 2048) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_row_stats_reads_only_the_sample(tmp_path, monkeypatch):
    """Statistics of a 60k-row matrix read a bounded number of rows, in a few calls."""
    rows, hidden = 60_000, 16
    values = np.random.default_rng(0).normal(0, 0.02, (rows, hidden)).astype(np.float32)
    path = write_safetensors(
        tmp_path / "m.safetensors", {EMBED: ("F32", [rows, hidden], values.tobytes())}
    )
    calls: list[int] = []
    import ftfix.io.safetensors as st_io  # rows are read through the file's reader

    original = st_io.os.pread

    def counting(fd, size, offset):
        calls.append(size)
        return original(fd, size, offset)

    monkeypatch.setattr(st_io.os, "pread", counting)
    source = emb.StoredRows(
        "input", EMBED, SafetensorsFile.open(path), "m.safetensors", EMBED, owned=True
    )
    stats = emb.row_stats(source, rows, exclude=range(10))
    assert stats is not None and stats.sampled == emb.SAMPLE_ROWS
    assert sum(calls) == emb.SAMPLE_ROWS * hidden * 4  # exactly the sampled rows' bytes
    assert len(calls) <= emb.SAMPLE_ROWS // emb.SAMPLE_BLOCK + 1  # whole blocks per call
    assert np.allclose(stats.mean, values[10:].mean(axis=0), atol=0.002)
    assert 0 < stats.tiny < stats.median_norm


# ------------------------------------------------------------------------------ evidence
def test_healthy_pair_has_no_evidence(pair):
    """Every in-scope row of a healthy checkpoint looks trained, on both sides."""
    analysis = emb.analyse(context(*pair))
    assert analysis is not None and analysis.verdicts
    assert all(s.evidence is None for v in analysis.verdicts for s in v.sides)
    roles = {v.token.content: v.token.roles for v in analysis.verdicts}
    assert {"template", "end-of-turn", "eos"} <= roles["<|eot_id|>"]
    assert "bos" in roles["<|begin_of_text|>"] and "pad" in roles["<|finetune_pad|>"]
    assert roles["<|reserved_special_token_0|>"] == {"special"}


def test_each_kind_of_evidence(make_checkpoint):
    """zero, non-finite, tiny norm and duplicate rows, each judged per side with its numbers."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_rows(ft, EMBED, [EOT], 0.0)
    set_rows(ft, HEAD, [EOT], np.nan)
    set_rows(ft, EMBED, [HEADER], 1e-4)
    pad = TOKEN_IDS["<|finetune_pad|>"]
    set_rows(ft, HEAD, [HEADER, pad], get_rows(ft, HEAD, [0])[0] * 1.5)
    analysis = emb.analyse(context(base, ft))
    assert verdict_of(analysis, EOT) == {"input": "zero", "output": "non-finite"}
    assert verdict_of(analysis, HEADER) == {"input": "tiny-norm", "output": "duplicate"}
    assert verdict_of(analysis, pad)["output"] == "duplicate"
    tiny = next(v for v in analysis.verdicts if v.token.id == HEADER).sides[0].evidence
    assert "below the 1% quantile" in tiny.detail and tiny.values["norm"] < tiny.values["q01"]


def test_mean_rows_are_initialized_not_untrained(make_checkpoint):
    """Rows at the mean of trained rows (transformers' resize init) are 'initialized'."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", mean_rows=[EOT, HEADER])
    for tensor in (EMBED, HEAD):
        shift_rows(ft, tensor)
    analysis = emb.analyse(context(base, ft))
    assert verdict_of(analysis, EOT) == {"input": "at-mean", "output": "at-mean"}
    assert verdict_of(analysis, HEADER) == {"input": "at-mean", "output": "at-mean"}


def test_unchanged_from_untrained_base(make_checkpoint):
    """A row equal to a base row that was only mean-initialised in the base is flagged."""
    base = make_checkpoint("base", mean_rows=[EOT])
    for tensor in (EMBED, HEAD):
        shift_rows(base, tensor)
    ft = make_checkpoint("ft")
    for tensor in (EMBED, HEAD):
        shift_rows(ft, tensor, seed=2)  # a full fine-tune moved every ordinary row ...
        set_rows(ft, tensor, [EOT], get_rows(base, tensor, [EOT]))  # ... but not this one
    analysis = emb.analyse(context(base, ft))
    evidence = verdict_of(analysis, EOT)
    assert evidence == {"input": "unchanged-untrained-base", "output": "unchanged-untrained-base"}
    side = next(v for v in analysis.verdicts if v.token.id == EOT).sides[0]
    assert side.state == "initialized" and "unchanged from the base" in side.evidence.detail


def test_subtoken_mean_is_recognised(make_checkpoint):
    """A row equal to the mean of its pieces' rows (init="subtokens") is 'initialized'."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=["(answer)"], embedding_rows=BASE_VOCAB_SIZE + 1)
    pieces = [TOKEN_IDS["("], TOKEN_IDS["answer"], TOKEN_IDS[")"]]
    tok = Checkpoint.open(ft).tokenizer()
    assert emb.piece_ids(tok, "(answer)", exclude=BASE_VOCAB_SIZE) == pieces
    for tensor in (EMBED, HEAD):
        set_rows(ft, tensor, [BASE_VOCAB_SIZE], get_rows(ft, tensor, pieces).mean(axis=0))
    analysis = emb.analyse(context(base, ft))
    assert verdict_of(analysis, BASE_VOCAB_SIZE) == {
        "input": "subtoken-mean",
        "output": "subtoken-mean",
    }
    assert "added" in next(v for v in analysis.verdicts if v.token.id == 98).token.roles


def test_tied_single_verdict(make_checkpoint):
    """A tied checkpoint gets one verdict per token, named 'tied'."""
    base = make_checkpoint("base", tied=True)
    ft = make_checkpoint("ft", tied=True, zero_rows=[EOT])
    assert verdict_of(emb.analyse(context(base, ft)), EOT) == {"tied": "zero"}


def test_head_row_verdict_for_stop_rules(make_checkpoint):
    """The helper the stop-token rules use judges one head row without a Context."""
    ft = make_checkpoint("ft", zero_rows=[EOT])
    ckpt = Checkpoint.open(ft)
    assert emb.head_row_verdict(ckpt, EOT).evidence.kind == "zero"
    assert emb.head_row_verdict(ckpt, TOKEN_IDS["hello"]).evidence is None
    assert emb.head_row_verdict(ckpt, 10_000) is None


def test_stored_row_evidence(make_checkpoint):
    """One stored row judged against its own tensor (the stop rules' helper)."""
    ft = make_checkpoint("ft", zero_rows=[EOT], mean_rows=[HEADER])
    shift_rows(ft, HEAD)
    set_rows(ft, HEAD, [EOT], 0.0)
    ckpt = Checkpoint.open(ft)
    assert emb.stored_row_evidence(ckpt, "model.safetensors", HEAD, EOT).kind == "zero"
    assert emb.stored_row_evidence(ckpt, "model.safetensors", HEAD, HEADER).state == "initialized"
    assert emb.stored_row_evidence(ckpt, "model.safetensors", HEAD, TOKEN_IDS["hi"]) is None
    assert emb.stored_row_evidence(ckpt, "model.safetensors", HEAD, 500) is None
    assert emb.stored_row_evidence(ckpt, "other.safetensors", HEAD, EOT) is None


def test_init_rows_mean_and_subtokens(make_checkpoint):
    """init="mean" gives the sample mean; init="subtokens" the mean of the token's pieces."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=["(answer)", "<odd>"], zero_rows=[98, 99])
    analysis = emb.analyse(context(base, ft))
    source = analysis.layout.input
    mean = analysis.init_rows(source, [98, 99], "mean")
    assert np.array_equal(mean[0], analysis.stats["input"].mean)
    sub = analysis.init_rows(source, [98, 99], "subtokens")
    pieces = get_rows(ft, EMBED, [TOKEN_IDS["("], TOKEN_IDS["answer"], TOKEN_IDS[")"]])
    assert np.allclose(sub[0], pieces.mean(axis=0))
    assert np.array_equal(sub[1], mean[1])  # no known piece: falls back to the mean


def test_scope_from_template_and_configs(make_checkpoint):
    """Tokens the template emits and ids named in the configs are in scope, with their roles."""
    from ckpt_builders import CHATML_TEMPLATE, SPECIALS_CHATML

    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    scope, length = emb.token_scope(context(base, ft))
    assert length == BASE_VOCAB_SIZE
    im_end = scope[TOKEN_IDS["<|im_end|>"]]
    assert {"template", "end-of-turn", "eos"} <= im_end.roles
    assert "template" in scope[TOKEN_IDS["<|im_start|>"]].roles
    assert "template" not in scope[EOT].roles and "eos" in scope[EOT].roles  # generation config


# ------------------------------------------------------------------------------ adapters
@pytest.fixture(scope="module")
def peft_base(tmp_path_factory):
    """A loadable tiny Llama base (untied) whose <|eot_id|> rows are zero, as in Llama-3 base."""
    root = tmp_path_factory.mktemp("peft")
    return build_merged(root / "base", full_model=True, zero_rows=[EOT])


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["modules_to_save", "trainable_tokens", "trainable_tokens_dict", "lora_embedding"]
)
def test_adapter_rows_match_peft(peft_base, tmp_path, kind):
    """Effective adapter rows (copies, token rows, LoRA deltas) equal what peft computes."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = {
        "modules_to_save": {"modules_to_save": ["embed_tokens", "lm_head"]},
        "trainable_tokens": {"trainable_token_indices": [EOT, HEADER]},
        "trainable_tokens_dict": {
            "trainable_token_indices": {"embed_tokens": [EOT], "lm_head": [EOT, HEADER]}
        },
        "lora_embedding": {"target_modules": ["q_proj", "embed_tokens", "lm_head"]},
    }[kind]
    model = LlamaForCausalLM.from_pretrained(str(peft_base))
    lora = {"target_modules": ["q_proj"], **config}
    peft_model = get_peft_model(model, LoraConfig(r=2, init_lora_weights=False, **lora))
    with torch.no_grad():  # "train": move every trainable parameter away from its init
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter), save_embedding_layers=False)
    layout = emb.locate(Checkpoint.open(adapter), Checkpoint.open(peft_base))
    assert layout.adapter and layout.adapter_rows
    merged = PeftModel.from_pretrained(
        LlamaForCausalLM.from_pretrained(str(peft_base)), str(adapter)
    ).merge_and_unload()
    ids = [EOT, HEADER, 0, 50]
    expected_in = merged.get_input_embeddings().weight[ids].detach().numpy()
    expected_out = merged.get_output_embeddings().weight[ids].detach().numpy()
    assert np.allclose(layout.input.read(ids), expected_in, atol=1e-6)
    assert np.allclose(layout.output.read(ids), expected_out, atol=1e-6)


@pytest.mark.slow
def test_adapter_homes(peft_base, tmp_path):
    """Rows an adapter stores can be patched in the adapter; rows from the base cannot."""
    mts = build_adapter(tmp_path / "mts", peft_base, modules_to_save=["embed_tokens"])
    layout = emb.locate(Checkpoint.open(mts), Checkpoint.open(peft_base))
    assert layout.input.homes(EOT)[0].path == "adapter_model.safetensors"
    assert layout.output.homes(EOT) == []
    tti = build_adapter(tmp_path / "tti", peft_base, trainable_token_indices=[7, EOT])
    layout = emb.locate(Checkpoint.open(tti), Checkpoint.open(peft_base))
    home = layout.input.homes(EOT)[0]
    assert home.tensor.endswith("trainable_tokens_delta") and home.row == 1
    assert layout.input.homes(0) == []


# --------------------------------------------------------------------- growing a shard
def _resize_edit(path: Path, tensor: str, new_rows: int, value: float) -> TensorResizeEdit:
    info = SafetensorsFile.open(path).info(tensor)
    rows = tuple(range(info.shape[0], new_rows))
    data = rows_from_float32(np.full((len(rows), info.shape[1]), value, np.float32), info.dtype)
    before = emb.header_sha256(SafetensorsFile.open(path))
    return TensorResizeEdit(path.name, tensor, rows, data, before)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_grow_shard_and_shrink_back(make_checkpoint, monkeypatch, dtype):
    """Growing two tensors moves later tensors, keeps metadata, loads; shrinking is exact."""
    from safetensors.numpy import load_file

    patch_writer(monkeypatch, "_COPY_CHUNK", 64)  # many chunks even for a tiny file
    ft = make_checkpoint("ft", dtype=dtype, full_model=True)
    path = ft / "model.safetensors"
    original = path.read_bytes()
    before = {n: read_tensor(path, n) for n in read_safetensors_header(path) if n != "__metadata__"}
    edits = [_resize_edit(path, EMBED, 101, 0.5), _resize_edit(path, HEAD, 100, -0.25)]
    grown = write.rewrite_shard_with_grown_tensors(path, edits)
    header = read_safetensors_header(path)
    assert header["__metadata__"] == {"format": "pt"}
    assert header[EMBED]["shape"] == [101, 8] and header[HEAD]["shape"] == [100, 8]
    after = {n: read_tensor(path, n) for n in before}
    for name, values in before.items():
        assert np.array_equal(after[name][: len(values)], values), name
    assert np.all(after[EMBED][98:] == 0.5) and np.all(after[HEAD][98:] == -0.25)
    if dtype == "float32":
        assert load_file(str(path))[EMBED].shape == (101, 8)  # the safetensors library agrees
    write.shrink_grown_shard(path, grown)
    assert path.read_bytes() == original


def test_grow_refuses_stale_header_and_bad_rows(make_checkpoint):
    """A header changed since planning, or rows that are not appended, are refused untouched."""
    ft = make_checkpoint("ft")
    path = ft / "model.safetensors"
    edit = _resize_edit(path, EMBED, 100, 0.0)
    stale = TensorResizeEdit(edit.path, edit.tensor, edit.rows, edit.data, "0" * 64)
    with pytest.raises(StaleEditError):
        write.rewrite_shard_with_grown_tensors(path, [stale])
    gap = TensorResizeEdit(edit.path, edit.tensor, (99, 100), edit.data, edit.before_sha256)
    original = path.read_bytes()
    with pytest.raises(ValueError, match="appended"):
        write.rewrite_shard_with_grown_tensors(path, [gap])
    assert path.read_bytes() == original


def test_shrink_refuses_a_modified_shard(make_checkpoint):
    """Undo of a growth refuses when the grown rows were changed since."""
    ft = make_checkpoint("ft")
    path = ft / "model.safetensors"
    grown = write.rewrite_shard_with_grown_tensors(path, [_resize_edit(path, EMBED, 99, 1.0)])
    set_rows(ft, EMBED, [98], 2.0)
    with pytest.raises(StaleEditError):
        write.shrink_grown_shard(path, grown)


def test_header_sha_matches_writer(make_checkpoint):
    """The planner's header hash is the one the writer checks."""
    path = make_checkpoint("ft") / "model.safetensors"
    assert emb.header_sha256(SafetensorsFile.open(path)) == write.shard_header_sha256(path)
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert len(path.read_bytes()) > 8 + length


def test_analysis_is_cached_per_view(pair):
    """All embedding rules of one run share one analysis (rows are read once)."""
    ctx = context(*pair)
    assert emb.analyse(ctx) is emb.analyse(ctx.with_target(ctx.target))
    other = copy_checkpoint(pair[1], pair[1].parent / "other")
    assert emb.analyse(ctx) is not emb.analyse(context(pair[0], other))
