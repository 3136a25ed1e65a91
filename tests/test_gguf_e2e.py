"""GGUF stop tokens end to end, with llama.cpp's stop rule on a tiny model trained on CPU.

llama.cpp itself does not run here (llama-cpp-python did not build on the test machine within
10 minutes), so generation runs in transformers with exactly the stop set llama.cpp would build
from the GGUF's metadata (`ftfix.analysis.gguf.eog_ids`, modelled on llama.cpp's
`src/llama-vocab.cpp`): the model is real and trained, only the runtime is a stand-in.

The model learns InternLM-style turns ending in an added `<eoa>`, a token llama.cpp does not
guess by its text; the GGUF is written with the pre-training eos, as a converter reading
`tokenizer_config.json` would. Before the repair generation runs past `<eoa>` to the token
limit; after `ftfix repair model.gguf` (FTX500 sets `eot_token_id`) it stops right after it.
"""

from __future__ import annotations

import pytest
from builders_gguf import write_gguf
from tiny_training import (
    ANSWERS,
    INTERNLM_TEMPLATE,
    INTERNLM_TOKENS,
    QUESTIONS,
    build_base,
    generate_ids,
    load_model,
    train_chat_model,
)

import ftfix
from ftfix.analysis.gguf import eog_ids
from ftfix.io.gguf import read_gguf

pytestmark = pytest.mark.slow

MAX_NEW = 24


def _llama_cpp_answers(model, ft, gguf):
    from transformers import GenerationConfig

    stops = sorted(eog_ids(read_gguf(gguf)))
    config = GenerationConfig(eos_token_id=stops, max_new_tokens=MAX_NEW, do_sample=False)
    return [generate_ids(model, ft, q, max_new_tokens=MAX_NEW, generation_config=config)
            for q in QUESTIONS]  # fmt: skip


def test_gguf_generation_stops_after_repair(tmp_path):
    from transformers import AutoTokenizer

    base = build_base(tmp_path / "base", added_tokens=INTERNLM_TOKENS)
    ft = train_chat_model(
        tmp_path / "ft", base=base, template=INTERNLM_TEMPLATE, eot_token="<eoa>",
        added_tokens=INTERNLM_TOKENS,
    )  # fmt: skip
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>")
    tokenizer = AutoTokenizer.from_pretrained(str(ft))
    expected = [tokenizer(a + "<eoa>", add_special_tokens=False)["input_ids"] for a in ANSWERS]
    model = load_model(ft)

    before = _llama_cpp_answers(model, ft, gguf)
    for out, exp in zip(before, expected, strict=True):
        assert out[: len(exp)] == exp, "the tiny model did not learn its answers"
        assert len(out) == MAX_NEW  # past <eoa>, into the next turn

    report = ftfix.check(None, gguf)
    assert [f.code for f in report.findings if f.severity.value == "error"] == ["FTX500"]
    repaired = ftfix.repair(None, gguf, select=["FTX500"])
    assert repaired.exit_code == 0, repaired.render_text()

    assert _llama_cpp_answers(model, ft, gguf) == expected
