"""GGUF files: the metadata reader, the CLI, -o copies, and crash safety of metadata rewrites."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders_gguf import tensor_bytes, write_gguf
from ckpt_builders import CHATML_TEMPLATE, LLAMA3_TEMPLATE
from hypothesis import example, given
from hypothesis import strategies as st

import ftfix
from ftfix.cli import main
from ftfix.io.gguf import read_gguf
from ftfix.write import recover

ROOT = Path(__file__).resolve().parent.parent


def test_reader_matches_gguf_and_never_reads_tensors(make_checkpoint, tmp_path):
    """Every field as gguf's GGUFReader decodes it; 64 MB of sparse tensor data never read."""
    import gguf

    ft = make_checkpoint("ft")
    path = write_gguf(
        tmp_path / "a.gguf", ft, add_bos=True, extra={"tokenizer.chat_template.tool_use": "x"}
    )
    writer_extra = gguf.GGUFWriter(str(tmp_path / "b.gguf"), "llama")
    writer_extra.add_token_merges(["a b", "c d"])
    writer_extra.add_float32("general.f", 0.5)
    writer_extra.add_array("general.ints", [1, -2, 3])
    writer_extra.add_uint64("general.big", 2**40)
    writer_extra.write_header_to_file()
    writer_extra.write_kv_data_to_file()
    writer_extra.write_tensors_to_file()
    writer_extra.close()
    with path.open("r+b") as handle:  # make the data section large and sparse
        handle.truncate(path.stat().st_size + 64 * 2**20)
    for file in (path, tmp_path / "b.gguf"):
        meta = read_gguf(file)
        reader = gguf.GGUFReader(file)
        assert meta.data_offset == reader.data_offset
        assert meta.tensor_count == len(reader.tensors)
        names = [n for n in reader.fields if not n.startswith("GGUF.")]
        assert list(meta.fields) == names
        for name in names:
            theirs = reader.fields[name].contents()
            theirs = theirs.tolist() if hasattr(theirs, "tolist") else theirs
            assert meta.fields[name].value == theirs, name
    meta = read_gguf(path)
    assert meta.chat_template == LLAMA3_TEMPLATE
    assert meta.named_templates() == {"tool_use": "x"}
    assert len(meta.read_prefix()) == meta.data_offset


def test_bad_gguf_is_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    assert main(["check", str(bad)]) == 2
    assert "bad.gguf" in capsys.readouterr().err
    assert bad.read_bytes() == b"GGUF\x03\x00\x00\x00garbage"


def test_cli_check_and_repair_with_output_copy(make_checkpoint, tmp_path, capsys):
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", template=LLAMA3_TEMPLATE)
    before = gguf.read_bytes()
    assert main(["check", str(ft), "--gguf", str(gguf)]) == 1
    out = capsys.readouterr().out
    assert "FTX503" in out and "FTX504" in out
    copy = tmp_path / "fixed.gguf"
    assert main(["repair", str(ft), "--gguf", str(gguf), "-o", str(copy)]) == 0
    assert gguf.read_bytes() == before  # the original is untouched
    meta = read_gguf(copy)
    assert meta.chat_template == CHATML_TEMPLATE and meta.int_value(
        "tokenizer.ggml.eos_token_id"
    ) == meta.tokens.index("<|im_end|>")
    assert tensor_bytes(copy) == tensor_bytes(gguf)
    assert main(["check", str(ft), "--gguf", str(copy)]) == 0


def test_dry_run_writes_nothing_and_shows_the_splice(make_checkpoint, tmp_path, capsys):
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", template=LLAMA3_TEMPLATE)
    before = gguf.read_bytes()
    assert main(["repair", str(ft), "--gguf", str(gguf), "--diff"]) == 1
    assert "metadata rewritten" in capsys.readouterr().out
    assert gguf.read_bytes() == before and not (tmp_path / ".ftfix").exists()


# ------------------------------------------------------------------------ SIGKILL trials
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DELAYS = [0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.15, 1.3, 1.45, 1.6, 2.0]


@pytest.mark.parametrize("delay", DELAYS)
def test_sigkill_during_metadata_rewrite(make_checkpoint, tmp_path, delay):
    """Killed at any instant of a template rewrite + eos patch (`delay` seconds after the commit
    starts; each step pauses 0.2 s): the next command leaves the file byte-identical to the
    original or to the fully repaired one, and undo restores the original."""
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(
        tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", template=LLAMA3_TEMPLATE,
        pad_tensor_bytes=8 * 2**20,
    )  # fmt: skip
    original = _digest(gguf)
    reference = tmp_path / "ref"
    reference.mkdir()
    repaired_copy = reference / "ft.gguf"
    repaired_copy.write_bytes(gguf.read_bytes())
    ftfix.repair(None, ft, gguf=repaired_copy, select=["FTX503", "FTX504"])
    repaired = _digest(repaired_copy)
    env = {**os.environ, "FTFIX_TEST_PAUSE": "0.2", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "ftfix", "-v", "repair", str(ft), "--gguf", str(gguf)]
    proc = subprocess.Popen(
        [*argv, "--select", "FTX503,FTX504"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "committing" in line:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ftfix.check(None, ft, gguf=gguf)  # check reports, never acts (issue 19)
    recover(tmp_path, writer=True)  # what the next repair or undo does first
    state = _digest(gguf)
    assert state in (original, repaired), delay
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".ftfix-tmp")]
    if state == repaired and (tmp_path / ".ftfix").exists():
        ftfix.undo(gguf)
        assert _digest(gguf) == original


def test_torn_in_place_patch_rolled_back(make_checkpoint, tmp_path):
    """A repair killed inside an in-place patch (neither old nor new bytes): the next command
    puts the original bytes back from the journal's backup."""
    import json

    from ftfix.write.journal import _write_journal

    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>")
    original = gguf.read_bytes()
    ftfix.repair(None, ft, gguf=gguf, select=["FTX504"])
    (journal,) = (tmp_path / ".ftfix" / "backups").iterdir()
    manifest = journal / "manifest.json"
    data = json.loads(manifest.read_text())
    (entry,) = data["spliced"]
    data["state"] = "pending"  # as if killed before the commit point
    data.pop("seal", None)
    _write_journal(tmp_path, journal, data)  # sealed again, as ftfix writes it
    with gguf.open("r+b") as handle:  # half-written: garbage of the same length
        handle.seek(entry["offset"])
        handle.write(b"\xee" * entry["after_length"])
    ftfix.check(None, ft, gguf=gguf)  # check reports, never acts (issue 19)
    assert gguf.read_bytes() != original
    recover(tmp_path, writer=True)  # what the next repair or undo does first
    assert gguf.read_bytes() == original
    assert not (tmp_path / ".ftfix").exists()


def test_changed_file_is_not_undone(make_checkpoint, tmp_path):
    """Undo refuses, changing nothing, when the metadata changed after the repair."""
    from ftfix.errors import StaleEditError

    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", template=LLAMA3_TEMPLATE)
    ftfix.repair(None, ft, gguf=gguf, select=["FTX503"])
    with gguf.open("r+b") as handle:  # someone edits the metadata afterwards
        handle.seek(read_gguf(gguf).fields["tokenizer.chat_template"].value_offset + 8)
        handle.write(b"X")
    changed = gguf.read_bytes()
    with pytest.raises(StaleEditError):
        ftfix.undo(gguf)
    assert gguf.read_bytes() == changed


@given(
    st.binary(max_size=200),
    st.integers(0, 200),
    st.integers(0, 200),
    st.binary(max_size=40),
)
@example(b"\0", 1, 1, b"\0")  # old is a prefix and a suffix of new: the ranges must not overlap
@example(b"aa", 0, 1, b"")
def test_splice_between_turns_old_into_new(old, i, j, insert):
    """The smallest splice, applied to `old`, gives `new` (a range of `old` replaced)."""
    from ftfix.analysis.gguf import apply_to_prefix, splice_between

    i, j = sorted((min(i, len(old)), min(j, len(old))))
    new = old[:i] + insert + old[j:]
    edit = splice_between("f", old, new, "")
    assert apply_to_prefix(old, edit) == new
    assert len(edit.before) <= j - i and len(edit.after) <= len(insert)
    if old == new:
        assert edit.before == edit.after == b""


def test_a_rule_that_raises_does_not_hide_the_others(make_checkpoint, tmp_path, monkeypatch):
    from ftfix.rules.gguf.gguf_double_bos import GgufDoubleBos

    def broken(self, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(GgufDoubleBos, "check_gguf", broken)
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>")
    report = ftfix.check(None, ft, gguf=gguf)
    assert [e.code for e in report.internal_errors] == ["FTX501"]
    assert "FTX504" in [f.code for f in report.findings]


def test_cli_repair_then_undo(make_checkpoint, tmp_path, capsys):
    ft = make_checkpoint("ft", chat_template=CHATML_TEMPLATE, eos_token="<|im_end|>")
    gguf = write_gguf(tmp_path / "ft.gguf", ft, eos="<|end_of_text|>", template=LLAMA3_TEMPLATE)
    before = gguf.read_bytes()
    assert main(["repair", str(ft), "--gguf", str(gguf)]) == 0
    assert gguf.read_bytes() != before and (tmp_path / "Modelfile").exists()
    assert main(["undo", str(gguf)]) == 0
    assert "Restored 2 files." in capsys.readouterr().out
    assert gguf.read_bytes() == before and not (tmp_path / "Modelfile").exists()
