"""RepairCallback records training rows at train start; a later check compares them (FTX600).

A real tiny Trainer run on CPU: rows are tokenized with the tokenizer's own chat template (as
TRL does), the callback records them into `.ftfix/training_samples.jsonl` of the output folder
and of each checkpoint, and a template edited after training is reported from those rows alone.
"""

from __future__ import annotations

import json

import pytest
from ckpt_builders import LLAMA3_TEMPLATE, build_merged, build_tokenizer
from tiny_training import CONVERSATIONS

import ftfix
from ftfix.io.samples import read_recorded

pytestmark = pytest.mark.slow


def _train(tmp_path, rows, tokenizer, base, callback):
    from transformers import LlamaForCausalLM, Trainer, TrainingArguments

    model = LlamaForCausalLM.from_pretrained(str(base))
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, save_steps=2, per_device_train_batch_size=1,
        report_to=[], use_cpu=True, logging_strategy="no", save_strategy="steps",
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, processing_class=tokenizer, callbacks=[callback]
    )
    trainer.train()
    return tmp_path / "out"


def test_recorded_rows_find_a_template_edited_after_training(tmp_path):
    import torch
    from transformers import AutoTokenizer

    from ftfix.integrations.transformers import RepairCallback

    base = build_merged(tmp_path / "base", full_model=True)
    tokenizer = AutoTokenizer.from_pretrained(str(build_tokenizer(tmp_path / "tok")))
    rows = []
    for messages in CONVERSATIONS:
        encoded = tokenizer.apply_chat_template(list(messages), tokenize=True)
        ids = (
            encoded["input_ids"]
            if isinstance(encoded, dict) or hasattr(encoded, "keys")
            else encoded
        )
        rows.append(
            {
                "messages": list(messages),
                "input_ids": torch.tensor(ids),
                "labels": torch.tensor(ids),
            }
        )
    callback = RepairCallback(base=base, record_samples=4)
    out = _train(tmp_path, rows, tokenizer, base, callback)
    assert callback.errors == {}

    ckpt = out / "checkpoint-2"
    for folder in (out, ckpt):
        lines = (folder / ".ftfix" / "training_samples.jsonl").read_text("utf-8").splitlines()
        recorded = [json.loads(line) for line in lines]
        assert len(recorded) == 4
        assert recorded[0]["messages"] == list(CONVERSATIONS[0])
        assert recorded[0]["input_ids"] == rows[0]["input_ids"].tolist()
        assert recorded[0]["labels"] == rows[0]["labels"].tolist()
    assert len(read_recorded(ckpt)) == 4

    # Saved as trained: the recorded rows render identically.
    assert (ckpt / "chat_template.jinja").read_text("utf-8") == LLAMA3_TEMPLATE
    assert not [f for f in ftfix.check(ckpt).findings if f.code == "FTX600"]

    # Edited after training: a default system prompt when the request has none.
    old = "{% set content = bos_token + content %}"
    assert old in LLAMA3_TEMPLATE
    edited = LLAMA3_TEMPLATE.replace(
        old,
        "{% set content = bos_token + ('<|start_header_id|>system<|end_header_id|>\\n\\n"
        "you are a helpful assistant.<|eot_id|>' if message['role'] != 'system' else '')"
        " + content %}",
    )
    (ckpt / "chat_template.jinja").write_text(edited, "utf-8")
    (finding,) = [f for f in ftfix.check(ckpt).findings if f.code == "FTX600"]
    assert finding.severity.value == "error"
    assert finding.data["region"] == "system prompt"
    assert finding.data["differing"] == 4
    assert finding.data["served"] == "you are a helpful assistant ."  # as the tokenizer decodes
    assert "training had no system prompt" in finding.message
    assert finding.data["sample"].startswith(".ftfix/training_samples.jsonl:")

    # A copy of the checkpoint without the trainer root still carries its rows.
    import shutil

    alone = shutil.copytree(ckpt, tmp_path / "alone")
    assert [f.code for f in ftfix.check(alone).findings if f.code == "FTX600"] == ["FTX600"]


def test_no_rows_recorded_when_disabled(tmp_path):
    import torch
    from transformers import AutoTokenizer

    from ftfix.integrations.transformers import RepairCallback

    base = build_merged(tmp_path / "base", full_model=True)
    tokenizer = AutoTokenizer.from_pretrained(str(build_tokenizer(tmp_path / "tok")))
    ids = tokenizer("hello how are you", add_special_tokens=False)["input_ids"]
    rows = [{"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)} for _ in range(2)]
    out = _train(tmp_path, rows, tokenizer, base, RepairCallback(base=base, record_samples=0))
    assert not (out / ".ftfix" / "training_samples.jsonl").exists()
    assert not (out / "checkpoint-2" / ".ftfix" / "training_samples.jsonl").exists()
