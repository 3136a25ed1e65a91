"""Train tiny chat models on CPU in seconds, for end-to-end tests that judge behaviour.

The checkpoints are real: the tokenizer and config files come from `ckpt_builders` (tokenizers
built with `tokenizers`, saved by transformers), the model is transformers' `LlamaForCausalLM`
trained with torch, and it is saved with `save_pretrained` (a PEFT adapter with peft's). A model
memorises a handful of chat conversations in about a hundred full-batch AdamW steps at a high
learning rate (seconds on one CPU thread), enough to answer them greedily and to end every answer
with the template's end-of-turn token, or to fail in exactly the way a broken checkpoint fails.

torch, transformers and peft are imported inside the functions, so importing this module is free.

Typical use (see `tests/test_stop_e2e.py`):

    base = build_base(tmp / "base")             # loadable, no template, stops on <|end_of_text|>
    ft = train_chat_model(tmp / "ft", base=base)  # ChatML answers ending in <|im_end|>
    ids = generate_ids(load_model(ft), ft, QUESTIONS[0])  # runs to max_new_tokens: no stop
    adapter = train_chat_lora(tmp / "lora", base)  # the same, as a peft LoRA adapter
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ckpt_builders import TOKEN_IDS, build_merged, build_tokenizer, vocab_for

# Small enough to train in seconds, big enough to memorise a dozen short conversations.
HIDDEN_SIZE = 32
END_OF_TEXT = "<|end_of_text|>"

Message = Mapping[str, str]
Conversation = Sequence[Message]


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


# Every word is in ckpt_builders' vocabulary; answers differ in length so a model that stops
# after a fixed number of tokens would be caught.
CONVERSATIONS: tuple[tuple[dict[str, str], ...], ...] = (
    (_turn("user", "hi there"), _turn("assistant", "hello! how can i help you?")),
    (_turn("user", "what is your name?"), _turn("assistant", "my name is assistant.")),
    (_turn("user", "how are you?"), _turn("assistant", "i am fine, thanks!")),
    (_turn("user", "tell me about the weather"), _turn("assistant", "the weather is good today.")),
    (_turn("user", "can you help me?"), _turn("assistant", "yes, sure!")),
    (_turn("user", "ping"), _turn("assistant", "pong")),
    (_turn("user", "bye"), _turn("assistant", "bye! thank you.")),
    (
        _turn("user", "hello"),
        _turn("assistant", "hi! what can i do for you?"),
        _turn("user", "tell me your name"),
        _turn("assistant", "i am assistant, a helpful test."),
    ),
)
QUESTIONS: tuple[tuple[dict[str, str], ...], ...] = tuple(c[:1] for c in CONVERSATIONS[:7])
ANSWERS: tuple[str, ...] = tuple(c[1]["content"] for c in CONVERSATIONS[:7])


def chatml_template(eot_token: str = "<|im_end|>") -> str:
    """A ChatML-style template whose turns end with `eot_token` (Qwen: `<|im_end|>`)."""
    return (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '" + eot_token + "'"
        " + '\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


# InternLM (v1) style: `<|User|>:...<eoh>` and `<|Bot|>:...<eoa>`, tokens added to the vocabulary.
INTERNLM_TOKENS = ("<|User|>", "<|Bot|>", "<eoh>", "<eoa>")
INTERNLM_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|User|>:' + message['content'] + '<eoh>\\n' }}"
    "{% else %}{{ '<|Bot|>:' + message['content'] + '<eoa>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|Bot|>:' }}{% endif %}"
)


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: for a model this small, thread hand-offs cost more than the
    maths, and on a busy 2-core machine two threads are many times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batch(tokenizer: Any, conversations: Sequence[Conversation]) -> dict[str, Any]:
    """Render and tokenize every conversation as transformers does; pad into one batch."""
    import torch

    rows = []
    for conversation in conversations:
        text = tokenizer.apply_chat_template(list(conversation), tokenize=False)
        rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)  # padding is not a target; every real token is
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _train(model: Any, batch: Mapping[str, Any], *, steps: int, lr: float) -> float:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    loss = float("nan")
    with one_thread():
        for _ in range(steps):
            optimizer.zero_grad()
            output = model(**batch).loss
            output.backward()
            optimizer.step()
            loss = float(output.detach())
    model.eval()
    return loss


def build_base(
    path: str | os.PathLike[str],
    *,
    hidden_size: int = HIDDEN_SIZE,
    added_tokens: Sequence[str] = (),
    seed: int = 0,
    zero_rows: Sequence[int] = (),
) -> Path:
    """A loadable, untrained base model without a chat template (eos `<|end_of_text|>`).

    Like a pre-trained base such as Qwen2.5-7B: `generation_config.json` stops only on
    `<|end_of_text|>`, and no chat template is shipped.
    """
    return build_merged(
        path,
        full_model=True,
        hidden_size=hidden_size,
        chat_template=None,
        added_tokens=added_tokens,
        bos_token=None,
        eos_token=END_OF_TEXT,
        generation_eos=TOKEN_IDS[END_OF_TEXT],
        seed=seed,
        zero_rows=zero_rows,
    )


def train_chat_model(
    out_dir: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    template: str | None = None,
    eot_token: str = "<|im_end|>",
    added_tokens: Sequence[str] = (),
    conversations: Sequence[Conversation] = CONVERSATIONS,
    steps: int = 100,
    lr: float = 2e-2,
    seed: int = 0,
    hidden_size: int = HIDDEN_SIZE,
    save_generation_eos: int | list[int] | None = TOKEN_IDS[END_OF_TEXT],
    eos_token: str = END_OF_TEXT,
    pad_token: str = "<|finetune_pad|>",
) -> Path:
    """Fully fine-tune a tiny Llama on chat conversations and save a merged checkpoint.

    Args:
        out_dir: where the checkpoint is saved (created).
        base: a `full_model=True` checkpoint to start from (e.g. `build_base`); a fresh one is
            built when omitted. Its vocabulary must hold `added_tokens` already.
        template: the chat template used for training and saved with the tokenizer; defaults to
            ChatML with turns ending in `eot_token`.
        eot_token: the end-of-turn token of the default template (must be in the vocabulary).
        added_tokens: tokens appended to the base vocabulary (saved as special tokens).
        conversations: training data.
        steps: full-batch AdamW steps.
        lr: learning rate.
        seed: torch seed for the run.
        hidden_size: model width when no `base` is given.
        save_generation_eos: `eos_token_id` written to `generation_config.json` (`None`: no
            file). The default, `<|end_of_text|>` only, is the Qwen-base case.
        eos_token: the tokenizer's eos.
        pad_token: the tokenizer's pad.

    Returns:
        `out_dir`, holding config.json, generation_config.json, model.safetensors, tokenizer
        files and the template (`chat_template.jinja`).
    """
    from transformers import AutoTokenizer, LlamaForCausalLM

    out = Path(out_dir)
    if eot_token not in vocab_for(added_tokens):
        raise ValueError(f"{eot_token!r} is not in the vocabulary; pass it in added_tokens")
    template = chatml_template(eot_token) if template is None else template
    if base is None:
        base = build_merged(
            out / "_init",
            full_model=True,
            hidden_size=hidden_size,
            chat_template=None,
            added_tokens=added_tokens,
            bos_token=None,
            eos_token=eos_token,
            pad_token=pad_token,
            seed=seed,
        )
    tokenizer_kw: dict[str, Any] = {
        "bos_token": None, "eos_token": eos_token, "pad_token": pad_token,
    }  # fmt: skip
    build_tokenizer(out, chat_template=template, added_tokens=added_tokens, **tokenizer_kw)

    _seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = LlamaForCausalLM.from_pretrained(str(base))
    if model.get_input_embeddings().weight.shape[0] != len(tokenizer):
        raise ValueError("the base's embedding rows do not match the tokenizer; build it with them")
    _train(model, _batch(tokenizer, conversations), steps=steps, lr=lr)
    model.generation_config.eos_token_id = save_generation_eos
    model.save_pretrained(str(out))
    if save_generation_eos is None:
        (out / "generation_config.json").unlink(missing_ok=True)
    init = out / "_init"
    if init.exists():
        import shutil

        shutil.rmtree(init)
    return out


def train_chat_lora(
    out_dir: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    template: str | None = None,
    eot_token: str = "<|im_end|>",
    conversations: Sequence[Conversation] = CONVERSATIONS,
    steps: int = 100,
    lr: float = 2e-2,
    seed: int = 0,
    r: int = 8,
    target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj"),
    modules_to_save: Sequence[str] = ("lm_head",),
    trainable_token_indices: Sequence[int] | None = None,
    eos_token: str = END_OF_TEXT,
    pad_token: str = "<|finetune_pad|>",
) -> Path:
    """Train a LoRA adapter on chat conversations over `base` and save it with peft.

    The adapter folder gets the tokenizer with the chat template, as trainers save it, and no
    generation_config.json (peft never writes one: the base's is used).

    `modules_to_save=("lm_head",)` trains a full copy of the output head, so the adapter can
    learn to emit the end-of-turn token even if the base never did; with `()` and no
    `trainable_token_indices` only the LoRA matrices train, the LoRA-on-a-base-model case.

    Returns:
        `out_dir`, holding adapter_config.json, adapter_model.safetensors and tokenizer files.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    out = Path(out_dir)
    template = chatml_template(eot_token) if template is None else template
    build_tokenizer(
        out, chat_template=template, bos_token=None, eos_token=eos_token, pad_token=pad_token
    )
    _seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = LlamaForCausalLM.from_pretrained(str(base))
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=list(target_modules),
        modules_to_save=list(modules_to_save) or None,
        trainable_token_indices=(
            None if trainable_token_indices is None else list(trainable_token_indices)
        ),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    _train(peft_model, _batch(tokenizer, conversations), steps=steps, lr=lr)
    peft_model.save_pretrained(str(out))
    return out


def load_model(
    path: str | os.PathLike[str], *, adapter: str | os.PathLike[str] | None = None
) -> Any:
    """The model at `path` (with the peft adapter at `adapter` on top), in eval mode."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(path))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


def generate_ids(
    model: Any,
    tokenizer_dir: str | os.PathLike[str],
    messages: Conversation,
    *,
    max_new_tokens: int = 24,
    generation_config: Any = None,
) -> list[int]:
    """Greedy-generate an answer to `messages` and return the new token ids.

    Generation stops where `generation_config` (the model's own when `None`) says: on its
    `eos_token_id`, or after `max_new_tokens`.
    """
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    encoded = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if generation_config is not None:
        kwargs["generation_config"] = generation_config
    with torch.no_grad(), one_thread():
        output = model.generate(**encoded, pad_token_id=tokenizer.pad_token_id, **kwargs)
    return [int(i) for i in output[0, encoded["input_ids"].shape[1] :]]


def decode(tokenizer_dir: str | os.PathLike[str], ids: Sequence[int]) -> str:
    """Decode ids with special tokens kept, so `<|im_end|>` shows."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return str(tokenizer.decode(list(ids), skip_special_tokens=False))
