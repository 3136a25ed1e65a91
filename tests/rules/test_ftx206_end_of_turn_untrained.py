"""FTX206 end-of-turn-untrained: a model with a zero lm_head row for its turn end never stops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ckpt_builders import (
    BASE_VOCAB_SIZE,
    CHATML_TEMPLATE,
    TOKEN_IDS,
    build_tokenizer,
    copy_checkpoint,
    tree_digest,
)

import ftfix
from ftfix.analysis.stops import untrained_output_row
from ftfix.io.checkpoint import Checkpoint

EOT = TOKEN_IDS["<|eot_id|>"]
IM_END = TOKEN_IDS["<|im_end|>"]


def _found(report):
    return [f for f in report.findings if f.code == "FTX206"]


def _adapter(folder, *, head_row=None, trainable=None):
    """An adapter folder: tokenizer (ChatML), config, and optionally a saved lm_head copy."""
    from safetensors.numpy import save_file

    folder.mkdir()
    config = {"peft_type": "LORA", "r": 2, "trainable_token_indices": trainable}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    tensors = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((2, 8))}
    if head_row is not None:
        # A trained head: rows differ (a constant head would make every row "at the mean").
        head = np.random.default_rng(1).normal(0, 0.5, (BASE_VOCAB_SIZE, 8)).astype(np.float32)
        head[IM_END] = head_row
        tensors["base_model.model.lm_head.weight"] = head
    save_file(
        {k: v.astype(np.float32) for k, v in tensors.items()}, folder / "adapter_model.safetensors"
    )
    build_tokenizer(folder, chat_template=CHATML_TEMPLATE)
    return folder


def test_noop_healthy_pair(pair):
    """Trained (random, non-zero) rows everywhere."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


@pytest.mark.parametrize("tied", [False, True])
def test_error_zero_row(make_checkpoint, tmp_path, tied):
    """lm_head (or the tied embedding) row of <|eot_id|> is zero: reported, nothing to fix."""
    base = make_checkpoint("base", tied=tied)
    ft = make_checkpoint("ft", tied=tied, zero_rows=[EOT])
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "error"
    tensor = "model.embed_tokens.weight" if tied else "lm_head.weight"
    assert finding.message.startswith(
        f"the output row of <|eot_id|> (5) ({tensor} in model.safetensors) is all zero"
    )
    assert "modules_to_save or trainable_token_indices" in finding.message
    assert finding.path == "model.safetensors"
    assert finding.fix is None

    before = tree_digest(ft)
    report = ftfix.repair(base, ft, select=["FTX206"])
    assert tree_digest(ft) == before
    assert report.exit_code == 1


def test_error_zero_row_in_shards(make_checkpoint):
    """Sharded weights: the row is found through the index."""
    base = make_checkpoint("base", shards=2, full_model=True)
    ft = make_checkpoint("ft", shards=2, full_model=True, zero_rows=[EOT])
    assert _found(ftfix.check(base, ft))[0].path.startswith("model-0000")


def test_bf16_rows(make_checkpoint):
    """BF16 weights are read row by row too."""
    base = make_checkpoint("base", dtype="bfloat16")
    ft = make_checkpoint("ft", dtype="bfloat16", zero_rows=[EOT])
    assert len(_found(ftfix.check(base, ft))) == 1
    assert _found(ftfix.check(base, copy_checkpoint(base, base.parent / "copy"))) == []


def test_adapter_runs_with_the_bases_zero_row(make_checkpoint, tmp_path):
    """LoRA without lm_head training on a base whose <|im_end|> row is zero."""
    base = make_checkpoint("base", chat_template=None, zero_rows=[IM_END])
    adapter = _adapter(tmp_path / "adapter")
    finding = _found(ftfix.check(base, adapter))[0]
    assert finding.data["in_base"] is True
    assert finding.path is None
    assert "of the base" in finding.message


def test_adapter_trained_head_is_read(make_checkpoint, tmp_path):
    """modules_to_save=["lm_head"]: the adapter's own head decides."""
    base = make_checkpoint("base", chat_template=None, zero_rows=[IM_END])
    assert _found(ftfix.check(base, _adapter(tmp_path / "trained", head_row=0.25))) == []
    zero = _found(ftfix.check(base, _adapter(tmp_path / "zero", head_row=0.0)))[0]
    assert zero.path == "adapter_model.safetensors"


@pytest.mark.parametrize(
    ("trainable", "tied", "reported"),
    [
        pytest.param({"lm_head": [IM_END]}, False, False, id="lm-head-entry"),
        pytest.param([IM_END], False, True, id="list-trains-embedding-only"),
        pytest.param([IM_END], True, False, id="list-with-tied-weights"),
    ],
)
def test_adapter_trainable_tokens(make_checkpoint, tmp_path, trainable, tied, reported):
    """trainable_token_indices trains the output row only through lm_head or tied weights."""
    base = make_checkpoint("base", chat_template=None, tied=tied, zero_rows=[IM_END])
    adapter = _adapter(tmp_path / "adapter", trainable=trainable)
    assert bool(_found(ftfix.check(base, adapter))) is reported


def test_helper_reads_one_row(make_checkpoint):
    """The helper reports the tensor and says nothing for trained or out-of-range rows."""
    ft = Checkpoint.open(make_checkpoint("ft", zero_rows=[EOT]))
    row = untrained_output_row(ft, EOT)
    assert row is not None and (row.tensor, row.reason) == ("lm_head.weight", "all zero")
    assert untrained_output_row(ft, IM_END) is None
    assert untrained_output_row(ft, 10_000) is None


def _record(folder, token, rate):
    """The record `ftfix verify` keeps: its result and fingerprints of the files it loaded."""
    from ftfix.analysis.verified import fingerprint

    files = {p.name: fingerprint(p) for p in folder.iterdir() if p.is_file()}
    (folder / ".ftfix").mkdir(exist_ok=True)
    data = {"end_of_turn": token, "end_of_turn_stop_rate": rate, "date": "2026-11-29T21:00:00",
            "files": files}  # fmt: skip
    (folder / ".ftfix" / "verified.json").write_text(json.dumps(data))


def test_mean_initialized_row_is_an_error(make_checkpoint):
    """A row at the mean of trained rows (resize default) was never trained: error, not a
    warning, and FTX103 leaves that output row to this rule."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", mean_rows=[EOT])
    report = ftfix.check(base, ft)
    (finding,) = _found(report)
    assert finding.severity.value == "error"
    assert "initialized, never trained" in finding.message
    assert report.exit_code == 1


def test_verify_record_overrules_while_files_are_unchanged(make_checkpoint):
    """Behaviour outranks heuristics: a verify record proving the model stops turns the error
    into info ("verified"); a changed file, or a record that proves nothing, does not."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", mean_rows=[EOT])
    _record(ft, "<|eot_id|>", 0.2)
    assert _found(ftfix.check(base, ft))[0].severity.value == "error"
    _record(ft, "<|eot_id|>", 1.0)
    (finding,) = _found(ftfix.check(base, ft))
    assert finding.severity.value == "info"
    assert "verified" in finding.message and "1.00 on 2026-11-29" in finding.message
    assert ftfix.check(base, ft).exit_code == 0
    config = ft / "config.json"
    config.write_text(config.read_text() + " ")
    assert _found(ftfix.check(base, ft))[0].severity.value == "error"
