"""FTX005 generation-prompt-missing: splice a generation prompt derived by rendering (unsafe)."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    CHATML_TEMPLATE_NO_GEN_PROMPT,
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    SPECIALS_CHATML,
    copy_checkpoint,
    tree_digest,
)
from helpers import CHATML_ASSISTANT_HEADER, set_json_key, transformers_render

import ftfix
from ftfix.analysis.probes import render_all
from ftfix.analysis.templates import splice_generation_prompt

SELECT = ["FTX001", "FTX002", "FTX008", "FTX003", "FTX005"]
TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
ROLE_INSENSITIVE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
LLAMA2_STYLE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + ' </s>' }}{% endif %}{% endfor %}"
)
# Phi-3's template ends every conversation with eos_token unless the flag is set.
PHI3_STYLE_LOST = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}"
    "{% endfor %}{{ eos_token }}"
)


def _codes(report):
    return [f.code for f in report.findings]


def _chatml_finetune(make_checkpoint, layout="v5", **kw):
    """A Llama-3 base fine-tuned on ChatML, saved by LLaMA-Factory without the prompt tail."""
    base = make_checkpoint("base", layout=layout, **kw)
    ft = make_checkpoint(
        "ft", layout=layout, chat_template=CHATML_TEMPLATE_NO_GEN_PROMPT, **SPECIALS_CHATML
    )
    return base, ft


def test_noop_generation_prompt_lost_is_ftx002(make_checkpoint):
    """Identical to the base except the prompt: FTX002 restores the base, FTX005 stays quiet."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == ["FTX002"]


@pytest.mark.parametrize(
    "template",
    [ROLE_INSENSITIVE, LLAMA2_STYLE, CHATML_TEMPLATE],
    ids=["role-insensitive", "whitespace-header", "keeps-its-prompt"],
)
def test_noop_no_prompt_needed(make_checkpoint, template):
    """Role-insensitive templates, whitespace headers and working prompts need no splice."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft", chat_template=template)
    assert _codes(ftfix.check(base, ft, select=["FTX005"])) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_llama_factory_chatml(make_checkpoint, layout):
    """The LLaMA-Factory ChatML case: unsafe splice, proven by transformers' own rendering."""
    base, ft = _chatml_finetune(make_checkpoint, layout)
    assert not transformers_render(ft).endswith(CHATML_ASSISTANT_HEADER)
    plain_before = transformers_render(ft, add_generation_prompt=False)

    report = ftfix.check(base, ft, select=SELECT)
    assert _codes(report) == ["FTX005"]
    finding = report.findings[0]
    assert finding.severity.value == "error"
    assert "appends nothing" in finding.message
    assert repr(CHATML_ASSISTANT_HEADER) in finding.message
    assert finding.fix.applicability.value == "unsafe"

    before = tree_digest(ft)
    assert ftfix.repair(base, ft, select=SELECT).exit_code == 1
    assert tree_digest(ft) == before  # unsafe: nothing written without --unsafe-fixes

    repaired = ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert repaired.exit_code == 0, repaired.render_text()
    assert transformers_render(ft).endswith(CHATML_ASSISTANT_HEADER)
    assert transformers_render(ft, add_generation_prompt=False) == plain_before
    if layout == "v4":
        assert not (ft / "chat_template.jinja").exists()
        spliced = json.loads((ft / "tokenizer_config.json").read_text())["chat_template"]
        assert spliced.startswith(CHATML_TEMPLATE_NO_GEN_PROMPT)
    after = tree_digest(ft)
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert tree_digest(ft) == after


def test_fix_base_model_without_template(make_checkpoint):
    """A base model (no template) fine-tuned on flag-ignoring ChatML is spliced as well."""
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE_NO_GEN_PROMPT, **SPECIALS_CHATML)
    assert _codes(ftfix.check(base, ft, select=SELECT)) == ["FTX005"]
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert transformers_render(ft).endswith(CHATML_ASSISTANT_HEADER)


def test_fix_every_location_spliced(make_checkpoint):
    """The spliced template goes to the .jinja file and the tokenizer_config.json key alike."""
    base, ft = _chatml_finetune(make_checkpoint)
    set_json_key(ft / "tokenizer_config.json", "chat_template", CHATML_TEMPLATE_NO_GEN_PROMPT)
    ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    jinja = (ft / "chat_template.jinja").read_text()
    assert json.loads((ft / "tokenizer_config.json").read_text())["chat_template"] == jinja


def test_fix_realworld_phi3_eos_suffix(shared_dir, tmp_path):
    """Phi-3 (real tokenizer) whose template lost its prompt: eos is dropped, prompt added."""
    real = shared_dir / "realworld" / "phi-3-mini-128k-instruct"
    base = copy_checkpoint(real, tmp_path / "base")
    set_json_key(base / "tokenizer_config.json", "chat_template", None)
    ft = copy_checkpoint(real, tmp_path / "ft")
    set_json_key(ft / "tokenizer_config.json", "chat_template", PHI3_STYLE_LOST)
    assert transformers_render(ft).endswith("<|end|>\n<|endoftext|>")  # Phi-3's eos_token

    report = ftfix.repair(base, ft, select=SELECT, unsafe_fixes=True)
    assert _codes(report) == ["FTX005"]
    assert transformers_render(ft).endswith("<|user|>\nHello, how are you?<|end|>\n<|assistant|>\n")
    assert transformers_render(ft, add_generation_prompt=False).endswith("<|end|>\n<|endoftext|>")


def test_finding_without_fix_when_splice_cannot_be_proven(make_checkpoint):
    """A prompt the template's history contradicts is reported, with the reason and no fix."""
    # The first answer is framed unlike later ones: the header found after one user turn is
    # not what precedes the answer after a second one.
    odd = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and loop.index0 == 1 %}"
        "{{ '<|im_start|>first answer\n' + m['content'] + '<|im_end|>\n' }}{% else %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
        "{% endif %}{% endfor %}"
    )
    base = make_checkpoint("base", chat_template=None)
    ft = make_checkpoint("ft", chat_template=odd, **SPECIALS_CHATML)
    report = ftfix.check(base, ft, select=["FTX005"])
    assert _codes(report) == ["FTX005"]
    assert "cannot splice" in report.findings[0].message
    assert report.findings[0].fix is None


@pytest.mark.parametrize(
    ("template", "header"),
    [
        (CHATML_TEMPLATE_NO_GEN_PROMPT + "\n", "<|im_start|>assistant\n"),
        (LLAMA3_TEMPLATE_NO_GEN_PROMPT, "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        (
            "{% for m in messages %}{{ '<｜' + m['role'] + '｜>' + m['content'] }}{% endfor %}",
            "<｜assistant｜>",
        ),
        (
            "{% for m in messages %}{{ m['role'] + \": 'q'\\\\ \" + m['content'] + '\n' }}"
            "{% endfor %}  ",
            # The trailing space is left to the model, as it wrote it in training.
            "assistant: 'q'\\",
        ),
        (PHI3_STYLE_LOST, "<|assistant|>\n"),
    ],
    ids=["trailing-newline", "llama3", "fullwidth", "quotes-backslash-end-spaces", "eos-suffix"],
)
def test_splice_renders_like_a_real_prompt_branch(template, header):
    """With the flag the spliced template ends its conversation with the header, else as before."""
    splice = splice_generation_prompt(template, TOKENS)
    assert splice.reason == ""
    assert splice.header.text == header
    # Text printed only at the very end of a conversation (eos, trailing spaces) gives way.
    end = len(splice.header.suffix)
    assert splice.header.suffix in ("", "  ", "</s>")
    old, new = render_all(template, TOKENS), render_all(splice.source, TOKENS)
    for before, after in zip(old.probes, new.probes, strict=True):
        assert after.plain == before.plain
        assert after.with_prompt == before.plain[: len(before.plain) - end] + header


def test_splice_matches_the_original_prompt_branch():
    """Splicing the Llama-3 template without its tail renders exactly like the original."""
    spliced = splice_generation_prompt(LLAMA3_TEMPLATE_NO_GEN_PROMPT, TOKENS).source
    original, repaired = render_all(LLAMA3_TEMPLATE, TOKENS), render_all(spliced, TOKENS)
    assert [(p.plain, p.with_prompt) for p in repaired.probes] == [
        (p.plain, p.with_prompt) for p in original.probes
    ]


def _reasoning_cases():
    from builders_capabilities import corpus_template, edit
    from test_template_corpus import strip_generation_prompt

    thinking = corpus_template("Qwen-Qwen3-4B-Thinking-2507")
    gpt_oss = corpus_template("openai-gpt-oss-120b")
    return {
        # Qwen3 Thinking-2507: every final answer opens `<think>\n`, closed empty without
        # reasoning, so the prompt opens it as the original's does.
        "qwen3-thinking": (
            thinking,
            edit(
                thinking,
                "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}"
                "\n{%- endif %}",
                "",
            ),
            "<|im_start|>assistant\n<think>\n",
        ),
        # gpt-oss: final answers go to `<|channel|>final`, reasoning to `<|channel|>analysis`;
        # the model picks the channel, so the prompt stops at `<|start|>assistant`.
        "gpt-oss": (
            gpt_oss,
            # The flag is also read when a final answer is rendered: strip every read of it.
            strip_generation_prompt(gpt_oss),
            "<|start|>assistant",
        ),
    }


@pytest.mark.parametrize("name", ["qwen3-thinking", "gpt-oss"])
def test_splice_reasoning_templates_like_the_original(name):
    """A reasoning template's prompt is what every final answer starts with, as the original's."""
    original, lost, prompt = _reasoning_cases()[name]
    assert render_all(lost, TOKENS).ignores_generation_prompt()
    splice = splice_generation_prompt(lost, TOKENS)
    assert splice.reason == ""
    assert splice.header.text == prompt
    spliced, before = render_all(splice.source, TOKENS), render_all(original, TOKENS)
    for mine, theirs in zip(spliced.probes, before.probes, strict=True):
        assert mine.plain == theirs.plain
        if theirs.probe != "assistant-last":  # gpt-oss rewrites a final answer under the flag
            assert mine.with_prompt == theirs.with_prompt


def test_spliced_prompt_honours_enable_thinking_false(make_checkpoint):
    """Qwen3 without its prompt branch: the splice closes the think block on enable_thinking=False.

    Qwen3 closes the block empty for answers without reasoning; the spliced switch does the
    same, so `enable_thinking=False` renders exactly as Qwen3's own template does.
    """
    from builders_capabilities import edit, qwen3

    original = qwen3()
    lost = edit(
        original,
        "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n"
        "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
        "        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n{%- endif %}",
        "",
    )
    base = make_checkpoint("base", chat_template=None, **SPECIALS_CHATML)
    ft = make_checkpoint("ft", chat_template=lost, **SPECIALS_CHATML)
    finding = ftfix.check(base, ft, select=["FTX005"]).findings[0]
    assert finding.data["assistant_header"] == "<|im_start|>assistant\n<think>\n"
    ftfix.repair(base, ft, select=["FTX005"], unsafe_fixes=True)

    from transformers import AutoTokenizer

    def prompt(template_dir, **kwargs):
        tokenizer = AutoTokenizer.from_pretrained(str(template_dir))
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": "hello"}],
            add_generation_prompt=True,
            tokenize=False,
            **kwargs,
        )

    reference = make_checkpoint("reference", chat_template=original, **SPECIALS_CHATML)
    assert prompt(ft, enable_thinking=False) == prompt(reference, enable_thinking=False)
    assert prompt(ft).endswith("<|im_start|>assistant\n<think>\n")
