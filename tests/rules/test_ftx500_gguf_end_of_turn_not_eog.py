"""FTX500 gguf-end-of-turn-not-eog: llama.cpp's end-of-generation set lacks the turn end."""

from __future__ import annotations

from builders_gguf import tensor_bytes, write_gguf
from ckpt_builders import CHATML_TEMPLATE

import ftfix
from ftfix.analysis.gguf import eog_ids
from ftfix.io.gguf import KEY_EOT, read_gguf

# A fine-tune's own turn end: not one of the texts llama.cpp guesses as end of generation.
EOA_TEMPLATE = CHATML_TEMPLATE.replace("<|im_end|>", "<eoa>")


def _found(report):
    return [f for f in report.findings if f.code == "FTX500"]


def test_noop_guessed_by_text(make_checkpoint, tmp_path):
    """<|im_end|> is in llama.cpp's EOG set by its text, whatever the eos id says."""
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE)
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>")
    assert _found(ftfix.check(None, gguf)) == []


def test_custom_turn_end_added_as_eot(make_checkpoint, tmp_path):
    """No eot key: the fix adds one by rewriting the metadata; tensors stay byte-identical."""
    ft = make_checkpoint("ft", chat_template=EOA_TEMPLATE, added_tokens=["<eoa>"])
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>")
    eoa = read_gguf(gguf).tokens.index("<eoa>")
    assert eoa not in eog_ids(read_gguf(gguf))
    (finding,) = _found(ftfix.check(None, gguf))
    assert "<eoa>" in finding.message and finding.severity.value == "error"
    data = tensor_bytes(gguf)
    report = ftfix.repair(None, gguf, select=["FTX500"])
    assert report.written == ["ft.gguf"] and _found(report) and not report.errors
    meta = read_gguf(gguf)
    assert meta.int_value(KEY_EOT) == eoa and eoa in eog_ids(meta)
    assert tensor_bytes(gguf) == data
    assert _found(ftfix.check(None, gguf)) == []


def test_existing_eot_patched_in_place(make_checkpoint, tmp_path):
    """An eot key that points elsewhere is patched where it stands: same size, 4 bytes."""
    ft = make_checkpoint("ft", chat_template=EOA_TEMPLATE, added_tokens=["<eoa>"])
    gguf = write_gguf(
        tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", eot="<|reserved_special_token_0|>"
    )
    before = gguf.read_bytes()
    report = ftfix.repair(None, gguf, unsafe_fixes=True)  # replaces an eot that stopped
    after = gguf.read_bytes()
    assert len(after) == len(before)
    assert sum(a != b for a, b in zip(before, after, strict=True)) <= 4
    assert read_gguf(gguf).int_value(KEY_EOT) == read_gguf(gguf).tokens.index("<eoa>")
    assert not report.errors
    ftfix.undo(gguf)
    assert gguf.read_bytes() == before


def test_replacing_a_stopping_eot_is_unsafe(make_checkpoint, tmp_path):
    ft = make_checkpoint("ft", chat_template=EOA_TEMPLATE, added_tokens=["<eoa>"])
    gguf = write_gguf(
        tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", eot="<|reserved_special_token_0|>"
    )
    before = gguf.read_bytes()
    (finding,) = _found(ftfix.repair(None, gguf, select=["FTX500"]))
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"
    assert gguf.read_bytes() == before
