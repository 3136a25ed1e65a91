"""RepairCallback: a real tiny Trainer run on CPU saves checkpoints that ftfix repairs on save."""

from __future__ import annotations

import pytest
from ckpt_builders import (
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    build_merged,
    build_tokenizer,
)

pytestmark = pytest.mark.slow


def test_callback_repairs_each_saved_checkpoint(tmp_path, capsys):
    """Every checkpoint-N saved with a template that lost its tail is repaired during training."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, Trainer, TrainingArguments

    from ftfix.integrations.transformers import RepairCallback

    base = build_merged(tmp_path / "base", full_model=True)
    broken_tok = build_tokenizer(tmp_path / "tok", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    tokenizer = AutoTokenizer.from_pretrained(str(broken_tok))
    model = LlamaForCausalLM.from_pretrained(str(base))
    ids = tokenizer("hello how are you", add_special_tokens=False)["input_ids"]
    rows = [{"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)} for _ in range(8)]
    callback = RepairCallback(base=base)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=4, save_steps=2, per_device_train_batch_size=2,
        report_to=[], use_cpu=True, logging_strategy="no", save_strategy="steps",
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, processing_class=tokenizer, callbacks=[callback]
    )
    trainer.train()

    saved = sorted((tmp_path / "out").glob("checkpoint-*"))
    assert [p.name for p in saved] == ["checkpoint-2", "checkpoint-4"]
    for folder in saved:
        assert (folder / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
        report = callback.reports[str(folder)]
        # FTX402: the Trainer saves checkpoints with use_cache false (TrainingArguments.use_cache)
        assert [f.code for f in report.applied] == ["FTX002", "FTX402"]
    assert callback.errors == {}
    # Issue 13 item 17: one visible line per repaired checkpoint during training.
    err = capsys.readouterr().err
    for folder in saved:
        assert f"ftfix: {folder}: Fixed 2 problems; none remaining." in err


def test_callback_never_raises(tmp_path, caplog):
    """A bad checkpoint is logged and kept in errors; training code is not interrupted."""
    from types import SimpleNamespace

    from ftfix.integrations.transformers import RepairCallback

    out = tmp_path / "out"
    (out / "checkpoint-1").mkdir(parents=True)
    callback = RepairCallback(base=tmp_path / "missing-base")
    state = SimpleNamespace(is_world_process_zero=True, global_step=1)
    callback.on_save(SimpleNamespace(output_dir=str(out)), state, None)
    assert list(callback.errors) == [str(out / "checkpoint-1")]
    assert "not a Hugging Face checkpoint" in next(iter(callback.errors.values()))
