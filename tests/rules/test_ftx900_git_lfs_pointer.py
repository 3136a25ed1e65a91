"""FTX900 git-lfs-pointer: a pointer text where a file should be is named as such, in every kind
of file, and every check that does not need the file still runs."""

from __future__ import annotations

import shutil

import pytest
from builders_files import GB_2_4, lfs_pointer_bytes, make_lfs_pointer
from ckpt_builders import copy_checkpoint, tree_digest

import ftfix
from ftfix.cli import main

KINDS = [
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "chat_template.jinja",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
]


def _found(report):
    return [f for f in report.findings if f.code == "FTX900"]


@pytest.mark.parametrize("with_base", [True, False], ids=["base", "alone"])
@pytest.mark.parametrize("rel", KINDS)
def test_pointer_named_in_every_file_kind(pair, rel, with_base):
    """The finding says what the file is and what to run; the other checks run (FTX001 finds the
    templates removed, with the base), nothing is written, no traceback."""
    base, ft = pair
    shutil.rmtree(ft / "additional_chat_templates", ignore_errors=True)
    if rel != "chat_template.jinja":
        (ft / "chat_template.jinja").unlink()
    make_lfs_pointer(ft, rel)
    size = len(lfs_pointer_bytes(GB_2_4, rel))
    before = tree_digest(ft)
    report = ftfix.check(base, ft) if with_base else ftfix.check(ft)
    (finding,) = _found(report)
    assert finding.path == rel
    assert finding.severity is ftfix.Severity.ERROR
    assert finding.message == (
        f"is a Git LFS pointer (a {size}-byte text standing for a 2.4 GB file); run `git lfs pull`"
    )
    assert report.exit_code == 1
    if with_base and rel == "tokenizer_config.json":  # templates may live there: FTX001 waits
        assert "FTX001" in {s.code for s in report.skipped_rules}, report.render_text()
    elif with_base and rel != "chat_template.jinja":
        assert "FTX001" in {f.code for f in report.findings}, report.render_text()
    assert tree_digest(ft) == before


def test_pointer_in_an_adapter(tmp_path):
    """adapter_config.json and adapter_model.safetensors as pointers next to a readable
    tokenizer: both named, the folder is still checked."""
    from ckpt_builders import build_tokenizer

    adapter = tmp_path / "adapter"
    build_tokenizer(adapter)
    make_lfs_pointer(adapter, "adapter_config.json", size=900)
    make_lfs_pointer(adapter, "adapter_model.safetensors", size=54_000_000)
    report = ftfix.check(adapter)
    assert {f.path for f in _found(report)} == {"adapter_config.json", "adapter_model.safetensors"}
    assert "54.0 MB" in next(f.message for f in _found(report) if f.path.endswith("safetensors"))


def test_loaders_fail_on_a_pointer(pair):
    """Why it is an error: transformers cannot load the config or the tokenizer from a pointer."""
    transformers = pytest.importorskip("transformers")
    _, ft = pair
    make_lfs_pointer(ft, "config.json")
    with pytest.raises((OSError, ValueError)):
        transformers.AutoConfig.from_pretrained(ft)
    make_lfs_pointer(ft, "tokenizer_config.json")
    make_lfs_pointer(ft, "tokenizer.json")
    with pytest.raises((OSError, ValueError)):
        transformers.AutoTokenizer.from_pretrained(ft)


def test_nothing_readable_is_bad_input(pair, capsys):
    """A folder whose every file ftfix reads is a pointer: exit 2, one error naming it."""
    _, ft = pair
    shutil.rmtree(ft / "additional_chat_templates", ignore_errors=True)
    for path in ft.iterdir():
        if path.is_file():
            make_lfs_pointer(ft, path.name)
    assert main(["check", str(ft)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ftfix: error: {ft}: nothing in the folder can be read"), err
    assert "Git LFS pointer" in err and "Traceback" not in err


def test_noop_healthy(pair):
    """No pointer, no finding."""
    base, ft = pair
    assert _found(ftfix.check(base, ft)) == []


def test_copy_keeps_healthy(pair, tmp_path):
    """A pointer-looking text longer than the 1 KiB a pointer may be is not one."""
    base, ft = pair
    copy = copy_checkpoint(ft, tmp_path / "copy")
    data = lfs_pointer_bytes() + b"x" * 2000
    (copy / "merges.txt").write_bytes(data)
    assert _found(ftfix.check(base, copy)) == []
