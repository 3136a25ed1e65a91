"""End of a training script: repair each checkpoint as the Trainer saves it, then the final folder.

    python examples/end_of_training.py build/train-demo

Trains a tiny Llama for a few steps on CPU with a tokenizer whose saved chat template lost its
generation prompt (the way hard-coded templates break checkpoints); `RepairCallback` repairs every
`checkpoint-N` on save, and one `ftfix.repair` call repairs the final model folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, build_merged, build_tokenizer
from transformers import AutoTokenizer, LlamaForCausalLM, Trainer, TrainingArguments

import ftfix
from ftfix.integrations.transformers import RepairCallback


def main(out: Path) -> int:
    base = build_merged(out / "base", full_model=True)
    tokenizer = AutoTokenizer.from_pretrained(
        str(build_tokenizer(out / "tokenizer", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT))
    )
    ids = tokenizer("hello how are you", add_special_tokens=False)["input_ids"]
    data = [{"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)} for _ in range(8)]
    args = TrainingArguments(
        output_dir=str(out / "run"), max_steps=4, save_steps=2, per_device_train_batch_size=2,
        report_to=[], use_cpu=True, logging_strategy="no",
    )  # fmt: skip
    callback = RepairCallback(base=base)
    model = LlamaForCausalLM.from_pretrained(str(base))
    trainer = Trainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[callback]
    )
    trainer.train()
    trainer.save_model()  # the final model at the root of output_dir
    final = ftfix.repair(base, args.output_dir)
    for folder, report in callback.reports.items():
        print(f"{folder}: repaired {[f.code for f in report.applied]}")
    print(f"{args.output_dir}: {final.summary()}")
    return 0 if final.ok and not callback.errors else 1


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/train-demo")))
