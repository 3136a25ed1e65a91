"""FTX506 ollama-template-not-recognised: a Modelfile beside the GGUF, validated by rendering."""

from __future__ import annotations

from builders_gguf import write_gguf
from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE

import ftfix
from ftfix.analysis.ollama import convert, levenshtein_below, ollama_render
from ftfix.analysis.render import render

QWEN_LIKE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nyou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    + CHATML_TEMPLATE
)


def _found(report):
    return [f for f in report.findings if f.code == "FTX506"]


def test_noop_close_to_base_or_modelfile_present(make_checkpoint, tmp_path):
    base = make_checkpoint("base")
    ft = make_checkpoint("ft")
    assert _found(ftfix.check(base, write_gguf(tmp_path / "a.gguf", ft))) == []
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "Modelfile").write_text("FROM ./b.gguf\n")
    assert _found(ftfix.check(None, write_gguf(tmp_path / "m" / "b.gguf", ft))) == []


def test_modelfile_written_and_equivalent(make_checkpoint, tmp_path):
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE)
    gguf = write_gguf(tmp_path / "a.gguf", ft, eos="<|end_of_text|>")
    (finding,) = _found(ftfix.check(base, gguf))
    assert "100" in finding.message
    report = ftfix.repair(base, gguf)
    text = (tmp_path / "Modelfile").read_text()
    assert "FROM ./a.gguf" in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert "{{ .System }}" in text and "{{ .Prompt }}" in text and "{{ .Response }}" in text
    assert report.written == ["Modelfile"]
    assert _found(ftfix.check(base, gguf)) == []


def test_conversion_renders_like_jinja_and_keeps_default_system():
    result = convert(QWEN_LIKE, {}, ["<|im_end|>"])
    assert not isinstance(result, str), result
    assert result.system == "you are a helpful assistant."
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    want = render(QWEN_LIKE, messages, add_generation_prompt=True)
    assert ollama_render(result, messages) == want


def test_conversion_of_llama3_drops_bos():
    result = convert(LLAMA3_TEMPLATE, {"bos_token": "<|begin_of_text|>"}, ["<|eot_id|>"])
    assert not isinstance(result, str), result
    assert "<|begin_of_text|>" not in result.template
    assert result.template.endswith("{{ .Response }}<|eot_id|>")


def test_unconvertible_template_gives_no_modelfile(make_checkpoint, tmp_path):
    odd = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    ft = make_checkpoint("ft", chat_template=odd)
    gguf = write_gguf(tmp_path / "a.gguf", ft)
    (finding,) = _found(ftfix.check(None, gguf))
    assert finding.fix is None and "no Modelfile" in finding.message


def test_levenshtein_band():
    assert levenshtein_below("abc", "abd") == 1
    assert levenshtein_below("a" * 50, "b" * 50) == 50
    assert levenshtein_below("a" * 150, "b" * 150) is None
    assert levenshtein_below("x" * 10, "x" * 200) is None


def test_conversion_refused_when_renders_differ():
    """A template that repeats the system prompt before every user turn: the first turn has
    the shape Ollama's per-turn template can hold, later ones do not (Ollama passes the system
    prompt only to the first turn); the multi-turn probe shows it."""
    repeats_system = (
        "{% set sys = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
        "{% for m in messages %}{% if m['role'] == 'user' %}"
        "{% if sys %}<s>{{ sys }}</s>{% endif %}<u>{{ m['content'] }}</u>"
        "{% elif m['role'] == 'assistant' %}<a>{{ m['content'] }}</a>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<a>{% endif %}"
    )
    result = convert(repeats_system, {}, ["</a>"])
    assert isinstance(result, str) and "renders" in result, result
