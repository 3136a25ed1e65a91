"""FTX102 untrained-token-rows: rows of tokens in use that were never trained; unsafe mean init."""

from __future__ import annotations

import numpy as np
import pytest
from ckpt_builders import (
    BASE_VOCAB_SIZE,
    CHATML_TEMPLATE,
    SPECIALS_CHATML,
    TOKEN_IDS,
    build_adapter,
    build_merged,
    copy_checkpoint,
    tree_digest,
)
from test_embeddings import EMBED, EOT, HEAD, HEADER, context, get_rows, set_rows, weights_file

import ftfix
from ftfix import registry, write
from ftfix.analysis import embeddings as emb
from ftfix.analysis.context import Options
from ftfix.io.checkpoint import Checkpoint
from ftfix.plan import build

EMBEDDING_RULES = ["FTX1"]


def _codes(report, severity=None):
    return [f.code for f in report.findings if severity is None or f.severity.value == severity]


def _expected_means(base, ft):
    """The per-side means ftfix initialises with (from its own sample of the fine-tune)."""
    analysis = emb.analyse(context(base, ft))
    return {side: stats.mean for side, stats in analysis.stats.items()}


# --------------------------------------------------------------------------------- NOOP
def test_noop_healthy_pair(pair):
    """A healthy pair: every in-scope row looks trained."""
    assert ftfix.check(*pair, select=EMBEDDING_RULES).findings == []


def test_noop_padded_vocabulary(make_checkpoint):
    """Zero padding rows past the tokenizer (a padded vocabulary) are not tokens."""
    base = make_checkpoint("base", embedding_rows=128, zero_rows=range(98, 128))
    ft = make_checkpoint("ft", embedding_rows=128, zero_rows=range(98, 128))
    assert ftfix.check(base, ft, select=EMBEDDING_RULES).findings == []


def test_noop_untrained_reserved_is_not_an_error(make_checkpoint):
    """Untrained rows of unused special tokens are FTX104's warning, never FTX102's error."""
    reserved = [TOKEN_IDS["<|reserved_special_token_0|>"], TOKEN_IDS["<|im_start|>"]]
    base = make_checkpoint("base", zero_rows=reserved)
    ft = make_checkpoint("ft", zero_rows=reserved)
    assert _codes(ftfix.check(base, ft, select=EMBEDDING_RULES)) == ["FTX104"]


# ---------------------------------------------------------------------------------- FIX
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"dtype": "float16"},
        {"dtype": "bfloat16"},
        {"shards": 2},
        {"tied": True},
        {"tied": True, "dtype": "bfloat16", "layout": "v4"},
    ],
    ids=["f32", "f16", "bf16", "sharded", "tied", "tied-bf16-v4"],
)
def test_fix_zero_rows_of_template_tokens(make_checkpoint, kw):
    """Zero rows of tokens the template emits: error; unsafe repair sets them to the mean."""
    broken = [EOT, HEADER]
    base = make_checkpoint("base", **kw)
    ft = make_checkpoint("ft", zero_rows=broken, **kw)
    tensors = [EMBED] if kw.get("tied") else [EMBED, HEAD]
    others = [i for i in range(BASE_VOCAB_SIZE) if i not in broken]
    before = {t: get_rows(ft, t, range(BASE_VOCAB_SIZE)) for t in tensors}
    means = _expected_means(base, ft)

    report = ftfix.check(base, ft, select=EMBEDDING_RULES)
    assert _codes(report) == ["FTX102", "FTX102"]
    side = "input/output row (tied)" if kw.get("tied") else "input row"
    assert f"{side} is all zeros" in report.findings[0].message
    assert report.findings[0].path == weights_file(ft, EMBED).name
    assert report.findings[0].data["tokens"][0]["id"] == HEADER

    repaired = ftfix.repair(base, ft, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert repaired.exit_code == 0, repaired.render_text()
    assert [f.code for f in repaired.remaining] == ["FTX103", "FTX103"]
    for tensor in tensors:
        after = get_rows(ft, tensor, range(BASE_VOCAB_SIZE))
        assert np.array_equal(after[others], before[tensor][others])
        mean = means["input" if tensor == EMBED else "output"]
        assert np.allclose(after[broken], mean, rtol=1e-2, atol=1e-6)
    snapshot = tree_digest(ft)
    second = ftfix.repair(base, ft, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert second.written == [] and tree_digest(ft) == snapshot
    assert _codes(ftfix.check(base, ft, select=EMBEDDING_RULES), "error") == []


def test_fix_is_unsafe(make_checkpoint):
    """Without unsafe_fixes nothing is written and the error remains."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", zero_rows=[EOT])
    snapshot = tree_digest(ft)
    report = ftfix.repair(base, ft, select=EMBEDDING_RULES)
    assert report.exit_code == 1 and report.written == []
    assert "unsafe (use --unsafe-fixes)" in report.render_text()
    assert tree_digest(ft) == snapshot


def test_fix_undo_restores_exact_bytes(make_checkpoint):
    """Only the affected rows' bytes change, and undo puts the original bytes back."""
    base = make_checkpoint("base", dtype="bfloat16", shards=2)
    ft = make_checkpoint("ft", dtype="bfloat16", shards=2, zero_rows=[EOT])
    snapshot = tree_digest(ft)
    originals = {t: weights_file(ft, t).read_bytes() for t in (EMBED, HEAD)}
    report = ftfix.repair(base, ft, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert sorted(report.written) == sorted(weights_file(ft, t).name for t in (EMBED, HEAD))
    for tensor, data in originals.items():
        now = weights_file(ft, tensor).read_bytes()
        changed = [i for i, (a, b) in enumerate(zip(data, now, strict=True)) if a != b]
        info = emb.SafetensorsFile.open(weights_file(ft, tensor)).info(tensor)
        row = range(info.row_offset(EOT), info.row_offset(EOT) + info.row_bytes)
        assert changed and all(i in row for i in changed)
    ftfix.undo(ft)
    assert tree_digest(ft) == snapshot


def test_fix_stop_token_zero_output_row_message(make_checkpoint):
    """A zero output row of the end-of-turn token: the message says what cures it."""
    base = make_checkpoint("base", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, **SPECIALS_CHATML)
    set_rows(ft, HEAD, [TOKEN_IDS["<|im_end|>"]], 0.0)
    (finding,) = ftfix.check(base, ft, select=EMBEDDING_RULES).findings
    assert finding.message.startswith("<|im_end|> (id 7, emitted by the chat template, ends")
    assert "output row is all zeros; its logit is pinned near 0" in finding.message
    assert "does not teach the model to stop" in finding.message
    assert "ftfix verify" in finding.message and "trainable_token_indices" in finding.message
    report = ftfix.repair(base, ft, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert "[fixed]" in report.render_text() and "does not teach" in report.render_text()
    # The mean row is initialized, never trained: for the output row of a stop token that is
    # the stop chain's error (FTX206), not FTX103's warning.
    assert report.remaining == []
    (after,) = ftfix.check(base, ft, select=["FTX206"]).findings
    assert after.severity.value == "error" and "initialized, never trained" in after.message


@pytest.mark.parametrize(
    ("damage", "evidence"),
    [
        (1e-4, "tiny-norm"),
        (np.nan, "non-finite"),
    ],
    ids=["tiny", "nan"],
)
def test_fix_other_evidence(make_checkpoint, damage, evidence):
    """Tiny and non-finite rows are untrained too, and the repair fixes them."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    set_rows(ft, EMBED, [EOT], damage)
    (finding,) = ftfix.check(base, ft, select=EMBEDDING_RULES).findings
    assert finding.code == "FTX102"
    assert finding.data["tokens"][0]["rows"]["input"]["evidence"] == evidence
    assert finding.data["tokens"][0]["rows"]["output"]["state"] == "trained"
    assert ftfix.repair(base, ft, select=EMBEDDING_RULES, unsafe_fixes=True).exit_code == 0
    assert np.isfinite(get_rows(ft, EMBED, [EOT])).all()


def test_fix_duplicated_rows_of_added_tokens(make_checkpoint):
    """Added tokens sharing one copied row are untrained (identical rows never diverged)."""
    added = ["<tool_call>", "</tool_call>"]
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=added)
    copy = get_rows(ft, EMBED, [TOKEN_IDS["hello"]])
    set_rows(ft, EMBED, [98, 99], copy)
    report = ftfix.check(base, ft, select=EMBEDDING_RULES)
    assert _codes(report) == ["FTX102", "FTX102"]
    assert "identical to the row of </tool_call>" in report.findings[0].message
    assert "added by the fine-tune" in report.findings[0].message


def test_fix_init_subtokens(make_checkpoint):
    """init="subtokens": each row becomes the mean of the rows of the pieces of its text."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=["(answer)", "thank-you"], zero_rows=[98, 99])
    target = Checkpoint.open(ft)
    plan = build(
        Checkpoint.open(base, role="base"),
        target,
        [registry.get("FTX102")],
        apply_fixes=True,
        unsafe_fixes=True,
        options=Options(init="subtokens"),
    )
    assert {e.reason for e in plan.tensor_edits} == {"mean of the token's pieces"}
    write.commit(ft, list(plan.file_edits.values()), plan.tensor_edits)
    for tensor in (EMBED, HEAD):
        pieces = [TOKEN_IDS[p] for p in ("(", "answer", ")")]
        assert np.allclose(get_rows(ft, tensor, [98])[0], get_rows(ft, tensor, pieces).mean(0))
        pieces = [TOKEN_IDS[p] for p in ("thank", "-", "you")]
        assert np.allclose(get_rows(ft, tensor, [99])[0], get_rows(ft, tensor, pieces).mean(0))
    report = ftfix.check(base, ft, select=EMBEDDING_RULES)
    assert _codes(report) == ["FTX103", "FTX103"]
    assert "mean of the rows of the 3 pieces" in report.findings[0].message


def test_fix_many_tokens_summarised(make_checkpoint):
    """Dozens of untrained added tokens give a bounded number of lines, one fix for the rest."""
    added = [f"<tool_{i}>" for i in range(40)]
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", added_tokens=added, zero_rows=range(98, 138))
    report = ftfix.check(base, ft, select=["FTX102"])
    assert len(report.findings) == emb.MAX_LISTED + 1
    assert report.findings[-1].message.startswith("24 more tokens in use have untrained rows")
    repaired = ftfix.repair(base, ft, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert _codes(ftfix.check(base, ft, select=EMBEDDING_RULES), "error") == []
    assert repaired.exit_code == 0


# ------------------------------------------------------------------------- real models
@pytest.mark.slow
def test_fix_transformers_sees_exactly_the_repaired_rows(tmp_path):
    """LlamaForCausalLM loads the repaired rows where they were broken, identical elsewhere."""
    import torch
    from transformers import LlamaForCausalLM

    broken = [EOT, HEADER, TOKEN_IDS["<|end_header_id|>"]]
    base = build_merged(tmp_path / "base", full_model=True, dtype="bfloat16")
    ft = build_merged(tmp_path / "ft", full_model=True, dtype="bfloat16", zero_rows=broken)
    before = LlamaForCausalLM.from_pretrained(str(ft)).state_dict()
    means = _expected_means(base, ft)
    assert ftfix.repair(base, ft, unsafe_fixes=True, select=EMBEDDING_RULES).exit_code == 0
    after = LlamaForCausalLM.from_pretrained(str(ft)).state_dict()
    for name, weight in before.items():
        if name not in (EMBED, HEAD):
            assert torch.equal(after[name], weight), name
            continue
        others = [i for i in range(BASE_VOCAB_SIZE) if i not in broken]
        assert torch.equal(after[name][others], weight[others])
        mean = torch.tensor(means["input" if name == EMBED else "output"]).to(torch.bfloat16)
        assert torch.equal(after[name][broken], mean.expand(len(broken), -1))


@pytest.fixture(scope="module")
def zero_eot_base(tmp_path_factory):
    """A loadable base whose <|eot_id|> rows are zero (a Llama-3 base) and a copy to adapt."""
    root = tmp_path_factory.mktemp("ftx102")
    return build_merged(root / "base", full_model=True, zero_rows=[EOT])


@pytest.mark.slow
def test_fix_adapter_modules_to_save_copy(zero_eot_base, tmp_path):
    """An adapter's saved embed/lm_head copies are patched in the adapter, never in the base."""
    adapter = build_adapter(
        tmp_path / "adapter", zero_eot_base, modules_to_save=["embed_tokens", "lm_head"]
    )
    base_snapshot = tree_digest(zero_eot_base)
    report = ftfix.check(zero_eot_base, adapter, select=EMBEDDING_RULES)
    assert _codes(report) == ["FTX102"] and report.findings[0].path == "adapter_model.safetensors"
    repaired = ftfix.repair(zero_eot_base, adapter, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert repaired.exit_code == 0 and repaired.written == ["adapter_model.safetensors"]
    assert [f.code for f in repaired.remaining] == ["FTX103"]
    assert tree_digest(zero_eot_base) == base_snapshot
    key = "base_model.model." + EMBED
    assert np.abs(get_rows(adapter, key, [EOT])).sum() > 0


@pytest.mark.slow
def test_fix_adapter_trainable_tokens_untied(zero_eot_base, tmp_path):
    """trainable_token_indices rows are patched in place; the untied head's row stays in the
    base, so the error remains with advice on how to train it."""
    adapter = build_adapter(tmp_path / "adapter", zero_eot_base, trainable_token_indices=[EOT])
    report = ftfix.check(zero_eot_base, adapter, select=EMBEDDING_RULES)
    (finding,) = report.findings
    assert "input row is all zeros; output row is all zeros" in finding.message
    assert "takes these rows from the base model" in finding.message
    assert f"trainable_token_indices=[{EOT}]" in finding.message
    repaired = ftfix.repair(zero_eot_base, adapter, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert repaired.written == ["adapter_model.safetensors"]
    (left,) = [f for f in repaired.remaining if f.code == "FTX102"]
    assert "output row is all zeros" in left.message and "input row" not in left.message
    assert left.fix is None and left.path == "adapter_config.json"


@pytest.mark.slow
def test_fix_adapter_without_rows_has_no_fix(zero_eot_base, tmp_path):
    """A plain LoRA stores no rows: the base's zero rows are reported, nothing is patched."""
    adapter = build_adapter(tmp_path / "adapter", zero_eot_base)
    (finding,) = ftfix.check(zero_eot_base, adapter, select=EMBEDDING_RULES).findings
    assert finding.code == "FTX102" and finding.fix is None
    assert 'modules_to_save=["embed_tokens", "lm_head"]' in finding.message
    snapshot = tree_digest(adapter)
    ftfix.repair(zero_eot_base, adapter, select=EMBEDDING_RULES, unsafe_fixes=True)
    assert tree_digest(adapter) == snapshot


def test_check_does_not_modify_or_import_torch(make_checkpoint, tmp_path):
    """check on a broken pair reads rows without torch and without writing."""
    import subprocess
    import sys

    base = make_checkpoint("base")
    ft = copy_checkpoint(make_checkpoint("src", zero_rows=[EOT]), tmp_path / "ft")
    snapshot = tree_digest(ft)
    probe = (
        "import sys, ftfix; r = ftfix.check(sys.argv[1], sys.argv[2], select=['FTX1']); "
        "print(len(r.findings), [m for m in ('torch', 'transformers', 'peft') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(base), str(ft)], capture_output=True, text=True
    )
    assert out.stdout.split(maxsplit=1) == ["1", "[]\n"], out.stderr
    assert tree_digest(ft) == snapshot


def test_all_zero_matrix_offers_no_fix(tmp_path):
    """Issue 19: with no trained row to take a mean from, nothing is "fixed" and nothing changes."""
    from ckpt_builders import build_merged, tree_digest

    from ftfix.cli import main

    base = build_merged(tmp_path / "base")
    ft = build_merged(tmp_path / "ft", added_tokens=("<t0>", "<t1>"), zero_rows=tuple(range(100)))
    before = tree_digest(ft)
    report = ftfix.check(base, ft, select=["FTX102"])
    assert report.findings and all(f.fix is None for f in report.findings)
    assert main(["repair", "--unsafe-fixes", str(base), str(ft)]) == 1
    assert tree_digest(ft) == before
