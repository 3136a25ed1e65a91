"""FTX502 gguf-generation-prompt-ignored: the GGUF's template never opens an assistant turn."""

from __future__ import annotations

from builders_gguf import tensor_bytes, write_gguf
from ckpt_builders import LLAMA3_TEMPLATE, LLAMA3_TEMPLATE_NO_GEN_PROMPT

import ftfix
from ftfix.analysis.render import render
from ftfix.io.gguf import read_gguf


def _found(report):
    return [f for f in report.findings if f.code == "FTX502"]


def test_noop_healthy(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")
    assert _found(ftfix.check(None, write_gguf(tmp_path / "a.gguf", ft))) == []


def test_alone_reported_without_fix(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft")
    gguf = write_gguf(tmp_path / "a.gguf", ft, template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    (finding,) = _found(ftfix.check(None, gguf))
    assert finding.fix is None


def test_fixed_from_the_folder(make_checkpoint, tmp_path):
    """Converted before the folder was repaired: the folder's template goes into the GGUF."""
    ft = make_checkpoint("ft")
    gguf = write_gguf(tmp_path / "a.gguf", ft, template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    data = tensor_bytes(gguf)
    report = ftfix.repair(None, ft, gguf=gguf, select=["FTX502"])
    assert not report.errors and _found(report)
    template = read_gguf(gguf).chat_template
    assert template == LLAMA3_TEMPLATE
    tokens = {"bos_token": "<|begin_of_text|>"}
    user = [{"role": "user", "content": "hi"}]
    prompt = render(template, user, add_generation_prompt=True, special_tokens=tokens)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tensor_bytes(gguf) == data
