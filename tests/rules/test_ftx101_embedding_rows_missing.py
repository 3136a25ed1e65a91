"""FTX101 embedding-rows-missing: rows vs tokenizer vs vocab_size; unsafe growth of the matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ckpt_builders import BASE_VOCAB_SIZE, build_merged, read_safetensors_header, tree_digest
from helpers import set_json_key
from test_embeddings import EMBED, HEAD, context, get_rows, weights_file

import ftfix
from ftfix import registry, write
from ftfix.analysis import embeddings as emb
from ftfix.analysis.context import Options
from ftfix.io.checkpoint import Checkpoint
from ftfix.plan import build

ADDED = ["<|im_start|>x", "(answer)", "thank-you"]
RULES = ["FTX1"]


def _codes(report):
    return [f.code for f in report.findings]


def _short(make_checkpoint, **kw):
    """A base, and a fine-tune whose tokenizer gained 3 tokens but whose matrices did not."""
    base = make_checkpoint("base", **kw)
    ft = make_checkpoint("ft", added_tokens=ADDED, embedding_rows=BASE_VOCAB_SIZE, **kw)
    return base, ft


# --------------------------------------------------------------------------------- NOOP
def test_noop_healthy_and_padded(make_checkpoint):
    """Matching sizes, and a padded vocabulary (more rows than tokens), are fine."""
    base = make_checkpoint("base")
    assert ftfix.check(base, make_checkpoint("ft"), select=["FTX101"]).findings == []
    padded = make_checkpoint("padded", embedding_rows=128)
    assert ftfix.check(base, padded, select=["FTX101"]).findings == []


# ---------------------------------------------------------------------------------- FIX
@pytest.mark.parametrize(
    "kw",
    [{}, {"shards": 2}, {"tied": True}, {"dtype": "bfloat16", "layout": "v4"}],
    ids=["single", "sharded", "tied", "bf16-v4"],
)
def test_fix_grow_to_tokenizer_length(make_checkpoint, kw):
    """Added tokens without rows: error; unsafe repair grows the matrices and vocab_size."""
    base, ft = _short(make_checkpoint, **kw)
    snapshot = tree_digest(ft)
    tensors = [EMBED] if kw.get("tied") else [EMBED, HEAD]
    old = {t: get_rows(ft, t, range(BASE_VOCAB_SIZE)) for t in tensors}
    means = {side: s.mean for side, s in emb.analyse(context(base, ft)).stats.items()}

    (finding,) = ftfix.check(base, ft, select=["FTX101"]).findings
    assert finding.severity.value == "error"
    assert (
        f"{EMBED} has 98 rows but the tokenizer has 101 tokens: ids 98..100 "
        f"(<|im_start|>x, (answer), thank-you) have no row"
    ) in finding.message
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"

    report = ftfix.repair(base, ft, select=RULES, unsafe_fixes=True)
    assert report.exit_code == 0, report.render_text()
    assert {f.code for f in report.remaining} == {"FTX103"}  # the new rows: initialized only
    assert json.loads((ft / "config.json").read_text())["vocab_size"] == 101
    for tensor in tensors:
        assert read_safetensors_header(weights_file(ft, tensor))[tensor]["shape"] == [101, 8]
        rows = get_rows(ft, tensor, range(101))
        assert np.array_equal(rows[:98], old[tensor])
        side = "input" if tensor == EMBED else "output"
        assert np.allclose(rows[98:], means[side], rtol=1e-2, atol=1e-6)
    if kw.get("shards"):
        index = json.loads((ft / "model.safetensors.index.json").read_text())
        assert index["metadata"]["total_size"] == (98 + 3) * 8 * 4 * 2
    second = tree_digest(ft)
    ftfix.repair(base, ft, select=RULES, unsafe_fixes=True)
    assert tree_digest(ft) == second
    ftfix.undo(ft)
    assert tree_digest(ft) == snapshot


def test_fix_is_unsafe(make_checkpoint):
    """Without unsafe_fixes the folder is not touched."""
    base, ft = _short(make_checkpoint)
    snapshot = tree_digest(ft)
    report = ftfix.repair(base, ft, select=["FTX101"])
    assert report.exit_code == 1 and tree_digest(ft) == snapshot


def test_fix_grow_with_subtoken_init(make_checkpoint):
    """init="subtokens": a grown row is the mean of the rows of its text's pieces."""
    from ckpt_builders import TOKEN_IDS

    base, ft = _short(make_checkpoint)
    plan = build(
        Checkpoint.open(base, role="base"),
        Checkpoint.open(ft),
        [registry.get("FTX101")],
        apply_fixes=True,
        unsafe_fixes=True,
        options=Options(init="subtokens"),
    )
    write.commit(ft, list(plan.file_edits.values()), plan.tensor_edits)
    pieces = [TOKEN_IDS[p] for p in ("(", "answer", ")")]
    for tensor in (EMBED, HEAD):
        assert np.allclose(get_rows(ft, tensor, [99])[0], get_rows(ft, tensor, pieces).mean(0))


def test_fix_vocab_size_only(make_checkpoint):
    """A config vocab_size that disagrees with the stored rows is set to the row count."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_json_key(ft / "config.json", "vocab_size", 100)
    (finding,) = ftfix.check(base, ft, select=["FTX101"]).findings
    assert "config.json vocab_size is 100 but" in finding.message
    assert finding.fix.title == "Set vocab_size to 98" and finding.path == "config.json"
    ftfix.repair(base, ft, select=["FTX101"], unsafe_fixes=True)
    assert json.loads((ft / "config.json").read_text())["vocab_size"] == 98
    assert ftfix.check(base, ft, select=["FTX101"]).findings == []


def test_fix_head_missing(make_checkpoint):
    """An untied config without a head tensor: tie it (transformers would init it randomly)."""
    base = make_checkpoint("base", tied=True)
    ft = make_checkpoint("ft", tied=True)
    set_json_key(ft / "config.json", "tie_word_embeddings", False)
    (finding,) = ftfix.check(base, ft, select=["FTX101"]).findings
    assert "tie_word_embeddings to false but no output head tensor is stored" in finding.message
    ftfix.repair(base, ft, select=["FTX101"], unsafe_fixes=True)
    assert json.loads((ft / "config.json").read_text())["tie_word_embeddings"] is True
    assert ftfix.check(base, ft, select=["FTX101"]).findings == []


@pytest.mark.slow
def test_fix_grown_model_loads_in_transformers(tmp_path):
    """After growing, transformers loads the model and embeds the new ids with the new rows."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    base = build_merged(tmp_path / "base", full_model=True)
    ft = build_merged(
        tmp_path / "ft", full_model=True, added_tokens=ADDED, embedding_rows=BASE_VOCAB_SIZE
    )
    before = LlamaForCausalLM.from_pretrained(str(ft)).state_dict()
    assert ftfix.repair(base, ft, select=RULES, unsafe_fixes=True).exit_code == 0
    model = LlamaForCausalLM.from_pretrained(str(ft))
    after = model.state_dict()
    for name, weight in before.items():
        if name in (EMBED, HEAD):
            assert after[name].shape == (101, 8)
            assert torch.equal(after[name][:98], weight)
        else:
            assert torch.equal(after[name], weight), name
    ids = AutoTokenizer.from_pretrained(str(ft))("hello (answer)", return_tensors="pt").input_ids
    assert ids.max().item() == 99
    with torch.no_grad():
        assert model(ids).logits.shape[-1] == 101


@pytest.mark.slow
def test_adapter_resized_without_rows(tmp_path):
    """An adapter trained on a resized vocabulary that saved no rows: error with the cure."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = build_merged(tmp_path / "base", full_model=True)
    model = LlamaForCausalLM.from_pretrained(str(base))
    model.resize_token_embeddings(BASE_VOCAB_SIZE + len(ADDED))
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter), save_embedding_layers=False)
    from ckpt_builders import build_tokenizer

    build_tokenizer(adapter, added_tokens=ADDED)
    (finding,) = ftfix.check(base, adapter, select=["FTX101"]).findings
    assert finding.fix is None and finding.path == "adapter_config.json"
    assert "the adapter stores no embedding rows and the base's" in finding.message
    for cure in ("modules_to_save", "save_embedding_layers=True", "trainable_token_indices"):
        assert cure in finding.message

    saved = tmp_path / "saved"
    peft_model.save_pretrained(str(saved))  # save_embedding_layers="auto" saves the rows
    build_tokenizer(saved, added_tokens=ADDED)
    assert ftfix.check(base, saved, select=["FTX101"]).findings == []
