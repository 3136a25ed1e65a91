"""Fine-tunes made the way users make them: TRL's SFTTrainer, with and without peft LoRA.

`trl_finetune` starts from a tiny loadable base (`tiny_training.build_base`: no chat template,
eos `<|end_of_text|>`), optionally adds ChatML-style tokens the base lacks with transformers'
default mean resizing, and trains with TRL on the `CONVERSATIONS` of `tiny_training`. What is on
disk afterwards is exactly what TRL and peft save: a merged folder (`save_model`) or an adapter.

torch, transformers, trl and peft are imported inside the functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tiny_training import CONVERSATIONS, END_OF_TEXT, _seed, build_base, one_thread

# Turn markers the base vocabulary does not hold: adding them grows the embedding matrix.
NEW_START, NEW_END = "<|turn_start|>", "<|turn_end|>"


def chatml(start: str = "<|im_start|>", end: str = "<|im_end|>") -> str:
    """ChatML with the given markers, as TRL's `clone_chat_template` writes it."""
    return (
        "{% for message in messages %}"
        f"{{{{ '{start}' + message['role'] + '\\n' + message['content'] + '{end}' + '\\n' }}}}"
        "{% endfor %}"
        f"{{% if add_generation_prompt %}}{{{{ '{start}assistant\\n' }}}}{{% endif %}}"
    )


def base_with_sampling(
    path: str | os.PathLike[str], sampling: Mapping[str, Any] | None = None, **kwargs: Any
) -> Path:
    """`build_base`, whose generation_config.json also holds release sampling defaults."""
    base = build_base(path, **kwargs)
    file = base / "generation_config.json"
    data = json.loads(file.read_text())
    data.update(sampling or {"do_sample": True, "temperature": 0.6, "top_p": 0.9})
    file.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
    return base


def trl_finetune(
    out_dir: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    add_tokens: Sequence[str] = (),
    start: str = "<|im_start|>",
    end: str = "<|im_end|>",
    lora: bool = False,
    modules_to_save: Sequence[str] = (),
    steps: int = 30,
    lr: float = 2e-2,
    seed: int = 0,
    pin_greedy: bool = False,
    base_generation_config: bool = True,
    stop_on_end: bool = True,
) -> Path:
    """Fine-tune `base` on ChatML conversations with TRL's SFTTrainer and save as TRL does.

    Args:
        out_dir: where `trainer.save_model` writes (merged model, or the adapter with `lora`).
        base: a loadable base folder.
        add_tokens: special tokens added to the tokenizer before training; the embedding grows
            with `resize_token_embeddings` (transformers' default mean init).
        start, end: the template's turn markers.
        lora: train a peft LoRA adapter (attention and MLP projections) instead of every weight.
        modules_to_save: peft `modules_to_save` (e.g. `("lm_head", "embed_tokens")`).
        steps, lr, seed: training length, learning rate and torch seed.
        pin_greedy: set `do_sample=False` on the model's generation config before saving, as
            scripts that want deterministic evaluation do.
        base_generation_config: train from the base as it is; `False` trains from a copy
            without `generation_config.json` (a snapshot downloaded with only config, weights
            and tokenizer), so transformers derives bos/eos/pad from config.json and TRL saves
            just those.
        stop_on_end: make `end` the eos of the tokenizer, config and generation config, as
            TRL's `clone_chat_template` does; `False` keeps the base's eos (the "never stops"
            mistake).
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = Path(out_dir)
    if not base_generation_config:
        import shutil

        snapshot = out.parent / f"_{out.name}_snapshot"
        shutil.copytree(base, snapshot, ignore=shutil.ignore_patterns("generation_config.json"))
        base = snapshot
    _seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    if add_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(add_tokens)})
    tokenizer.chat_template = chatml(start, end)
    tokenizer.pad_token = "<|finetune_pad|>"
    model = AutoModelForCausalLM.from_pretrained(str(base))
    if len(tokenizer) != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if stop_on_end:
        tokenizer.eos_token = end
        end_id = tokenizer.convert_tokens_to_ids(end)
        model.config.eos_token_id = end_id
        model.generation_config.eos_token_id = end_id
    if pin_greedy:
        model.generation_config.do_sample = False
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"],
            modules_to_save=list(modules_to_save) or None,
            task_type="CAUSAL_LM",
        )
    rows = [{"messages": list(c)} for c in CONVERSATIONS]
    args = SFTConfig(
        output_dir=str(out / "_run"), max_steps=steps, learning_rate=lr,
        per_device_train_batch_size=len(rows), report_to=[], use_cpu=True,
        logging_strategy="no", save_strategy="no", seed=seed, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    with one_thread():
        trainer.train()
    # Training turns the KV cache off (gradient checkpointing); careful scripts turn it back on
    # before saving for inference (else FTX402 reports use_cache false).
    trainer.model.config.use_cache = True
    trainer.save_model(str(out))
    import shutil

    shutil.rmtree(out / "_run", ignore_errors=True)
    return out


__all__ = ["END_OF_TEXT", "NEW_END", "NEW_START", "base_with_sampling", "chatml", "trl_finetune"]
