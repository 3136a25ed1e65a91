"""FTX021 missing-tokenizer-file: copy what the base has, in the fine-tune's layout, never over."""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import build_merged, copy_checkpoint, tree_digest

import ftfix

OURS = ["FTX02"]
PROBE_TEXTS = (
    "Hello, how are you?",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi there!<|eot_id|>",
    "<|im_start|>assistant\nThank you, bye.<|im_end|>\n",
    "What is 42? <|reserved_special_token_0|>",
)


def _codes(report):
    return [f.code for f in report.findings]


def encodings(path):
    """What transformers' AutoTokenizer loads from `path`: ids of the probe texts and specials."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    ids = [tok(text)["input_ids"] for text in PROBE_TEXTS]
    specials = {
        name: getattr(tok, name)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")
    }
    return ids, specials


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy(make_checkpoint, tmp_path, layout):
    """A fine-tune with every file the base has gives no finding."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    assert "FTX021" not in _codes(ftfix.check(base, ft, select=OURS))


def test_noop_v5_finetune_of_v4_base(make_checkpoint):
    """transformers 5 writes no special_tokens_map.json / added_tokens.json: not asked for."""
    base = make_checkpoint("base", layout="v4", added_tokens=["<tool>"], added_tokens_json=True)
    ft = make_checkpoint("ft", layout="v5", added_tokens=["<tool>"])
    assert "FTX021" not in _codes(ftfix.check(base, ft, select=OURS))


def test_noop_adapter_without_tokenizer(make_checkpoint, tmp_path):
    """An adapter without tokenizer files uses the base's tokenizer: nothing is missing."""
    base = make_checkpoint("base")
    (base / "preprocessor_config.json").write_text('{"image_processor_type": "X"}\n')
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert ftfix.check(base, adapter, select=OURS).findings == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_tokenizer_json_missing(make_checkpoint, tmp_path, layout):
    """Without tokenizer.json the fine-tune cannot load; the copy makes it load like the base."""
    base = make_checkpoint("base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    (ft / "tokenizer.json").unlink()
    report = ftfix.check(base, ft, select=OURS)
    finding = next(f for f in report.findings if f.code == "FTX021")
    assert finding.severity.value == "error"
    assert finding.path == "tokenizer.json"
    assert "cannot load" in finding.message
    with pytest.raises(Exception):  # noqa: B017, PT011 - transformers raises various errors
        encodings(ft)

    repaired = ftfix.repair(base, ft, select=OURS)
    assert repaired.exit_code == 0, repaired.render_text()
    assert (ft / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert encodings(ft) == encodings(base)
    assert ftfix.check(base, ft, select=OURS).findings == []


def test_fix_tokenizer_config_missing(pair):
    """Without tokenizer_config.json transformers knows no eos; the copy restores it."""
    base, ft = pair
    (ft / "tokenizer_config.json").unlink()
    report = ftfix.check(base, ft, select=OURS)
    assert [f.path for f in report.findings if f.code == "FTX021"] == ["tokenizer_config.json"]
    assert encodings(ft) != encodings(base)
    ftfix.repair(base, ft, select=OURS)
    assert encodings(ft) == encodings(base)
    assert ftfix.check(base, ft, select=OURS).findings == []


def test_fix_v4_special_tokens_map_and_added_tokens(make_checkpoint, tmp_path):
    """v4 layout: special_tokens_map.json comes back byte for byte; added_tokens.json is not
    asked for, since tokenizer.json and added_tokens_decoder hold the added tokens."""
    base = make_checkpoint("base", layout="v4", added_tokens=["<tool>"], added_tokens_json=True)
    ft = copy_checkpoint(base, tmp_path / "ft")
    for name in ("special_tokens_map.json", "added_tokens.json"):
        (ft / name).unlink()
    report = ftfix.check(base, ft, select=OURS)
    found = {f.path: f for f in report.findings if f.code == "FTX021"}
    assert set(found) == {"special_tokens_map.json"}
    assert all(f.severity.value == "warning" for f in found.values())
    assert all(f.fix.applicability.value == "safe" for f in found.values())

    ftfix.repair(base, ft, select=OURS)
    restored = {k: v for k, v in tree_digest(ft).items() if not k.startswith(".ftfix/")}
    expected = {k: v for k, v in tree_digest(base).items() if k != "added_tokens.json"}
    assert restored == expected
    assert encodings(ft) == encodings(base)


def test_fix_extended_vocabulary_keeps_finetune_files(make_checkpoint):
    """An extended fine-tune gets processor files but never the base's vocabulary files."""
    base = make_checkpoint("base", layout="v4", added_tokens_json=True, added_tokens=["<tool>"])
    (base / "preprocessor_config.json").write_text('{"image_processor_type": "X"}\n')
    ft = make_checkpoint(
        "ft", layout="v4", added_tokens_json=True, added_tokens=["<tool>", "<think>"]
    )
    (ft / "special_tokens_map.json").unlink()
    (ft / "added_tokens.json").unlink()
    own = {n: (ft / n).read_bytes() for n in ("tokenizer.json", "tokenizer_config.json")}
    report = ftfix.check(base, ft, select=OURS)
    found = {f.path: f for f in report.findings if f.code == "FTX021"}
    assert "added_tokens.json" not in found  # tokenizer.json + added_tokens_decoder suffice
    assert found["special_tokens_map.json"].fix is None
    assert "extended the vocabulary" in found["special_tokens_map.json"].message
    assert found["preprocessor_config.json"].fix.applicability.value == "safe"

    ftfix.repair(base, ft, select=OURS)
    assert not (ft / "added_tokens.json").exists()
    assert not (ft / "special_tokens_map.json").exists()
    assert (ft / "preprocessor_config.json").exists()
    assert {n: (ft / n).read_bytes() for n in own} == own
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(ft)).convert_tokens_to_ids("<think>") == 99


def test_fix_special_tokens_map_clash_not_copied(make_checkpoint, tmp_path):
    """A base map naming another eos than the fine-tune's tokenizer_config is not copied."""
    base = make_checkpoint("base", layout="v4")
    ft = make_checkpoint("ft", layout="v4", eos_token="<|im_end|>")
    (ft / "special_tokens_map.json").unlink()
    finding = next(f for f in ftfix.check(base, ft, select=OURS).findings if f.code == "FTX021")
    assert finding.fix is None
    assert "eos_token" in finding.message


def test_fix_unknown_vocabulary_is_unsafe(make_checkpoint, tmp_path):
    """A resized embedding with no tokenizer.json to read: the copy is only offered as unsafe."""
    base = make_checkpoint("base")
    ft = make_checkpoint("ft", embedding_rows=128)
    (ft / "tokenizer.json").unlink()
    finding = next(f for f in ftfix.check(base, ft, select=OURS).findings if f.code == "FTX021")
    assert finding.fix.applicability.value == "unsafe"
    assert "vocab_size is 128" in finding.message

    ftfix.repair(base, ft, select=OURS)
    assert not (ft / "tokenizer.json").exists()
    ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert (ft / "tokenizer.json").exists()


def test_fix_processor_chat_template_json(make_checkpoint, tmp_path):
    """A v4 processor's chat_template.json comes back when no .jinja file serves the processor."""
    base = make_checkpoint("base", layout="v4")
    template = json.loads((base / "tokenizer_config.json").read_text())["chat_template"]
    (base / "chat_template.json").write_text(json.dumps({"chat_template": template}, indent=2))
    (base / "processor_config.json").write_text('{"processor_class": "LlavaProcessor"}\n')
    ft = copy_checkpoint(base, tmp_path / "ft")
    (ft / "chat_template.json").unlink()
    (ft / "processor_config.json").unlink()
    report = ftfix.repair(base, ft, select=OURS)
    assert report.exit_code == 0, report.render_text()
    assert (ft / "chat_template.json").read_bytes() == (base / "chat_template.json").read_bytes()
    assert (ft / "processor_config.json").exists()


def test_noop_processor_template_differs(make_checkpoint, tmp_path):
    """The base's processor template is not copied next to a different fine-tune template."""
    base = make_checkpoint("base", layout="v4")
    (base / "chat_template.json").write_text('{"chat_template": "{{ messages }}"}')
    (base / "processor_config.json").write_text('{"processor_class": "LlavaProcessor"}\n')
    ft = copy_checkpoint(base, tmp_path / "ft")
    (ft / "chat_template.json").unlink()
    assert "chat_template.json" not in [f.path for f in ftfix.check(base, ft, select=OURS).findings]


def test_fix_realworld_qwen_added_tokens(shared_dir, tmp_path):
    """Qwen2.5's real vocab.json/merges.txt folder: a lost added_tokens.json is copied back."""
    source = shared_dir / "realworld" / "qwen2.5-14b-instruct"
    base = tmp_path / "base"
    shutil.copytree(source, base)
    ft = copy_checkpoint(base, tmp_path / "ft")
    for folder in (base, ft):
        folder.chmod(0o755)
        for child in folder.iterdir():
            child.chmod(0o644)
    (ft / "added_tokens.json").unlink()
    report = ftfix.check(base, ft, select=OURS)
    assert [f.path for f in report.findings if f.code == "FTX021"] == ["added_tokens.json"]
    ftfix.repair(base, ft, select=OURS)
    assert (ft / "added_tokens.json").read_bytes() == (source / "added_tokens.json").read_bytes()


def test_fix_realworld_minicpm_preprocessor(shared_dir, tmp_path):
    """MiniCPM-V-2's real files: preprocessor_config.json is restored from the base."""
    source = shared_dir / "realworld" / "minicpm-v-2"
    base = tmp_path / "base"
    shutil.copytree(source, base)
    for child in base.iterdir():
        child.chmod(0o644)
    ft = copy_checkpoint(base, tmp_path / "ft")
    (ft / "preprocessor_config.json").unlink()
    finding = next(f for f in ftfix.check(base, ft, select=OURS).findings if f.code == "FTX021")
    assert finding.severity.value == "error"
    assert finding.fix.applicability.value == "safe"
    ftfix.repair(base, ft, select=OURS)
    assert (ft / "preprocessor_config.json").read_bytes() == (
        source / "preprocessor_config.json"
    ).read_bytes()


def test_unsafe_fix_not_applied_without_flag(make_checkpoint):
    """Only --unsafe-fixes applies an unsafe copy."""
    base = make_checkpoint("base")
    ft = build_merged(base.parent / "ft", embedding_rows=120)
    (ft / "tokenizer.json").unlink()
    report = ftfix.repair(base, ft, select=["FTX021"])
    assert report.findings[0].fix.applicability.value == "unsafe"
    assert not (ft / "tokenizer.json").exists()
    assert "FTX021" in [f.code for f in report.remaining]


def test_noop_added_tokens_json_with_decoder_and_tokenizer_json(shared_dir, tmp_path):
    """Issue 13 item 7: the real SmolLM2 fine-tune has tokenizer.json and added_tokens_decoder
    in tokenizer_config.json (every loader since transformers 4.34 reads those): an
    added_tokens.json the base still ships is not asked for."""
    import json as _json
    import shutil

    source = shared_dir / "wild" / "045-smollm2-merged" / "ft"
    names = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "vocab.json", "merges.txt"]  # fmt: skip
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        folder.mkdir()
        for name in names:
            shutil.copy(source / name, folder / name)
    decoder = _json.loads((source / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    added = {value["content"]: int(key) for key, value in decoder.items()}
    (base / "added_tokens.json").write_text(_json.dumps(added, indent=2))
    report = ftfix.check(base, ft)
    assert [f for f in report.findings if f.code == "FTX021"] == []
