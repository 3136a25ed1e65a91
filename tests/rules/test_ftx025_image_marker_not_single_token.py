"""FTX025 image-marker-not-single-token: processor and template image markers must be tokens."""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import SPECIALS_CHATML, VL_MARKERS, VL_TEMPLATE, build_merged, copy_checkpoint

import ftfix

OURS = ["FTX025"]
MARKERS = VL_MARKERS


def _vlm(path, *, added=tuple(MARKERS), template=VL_TEMPLATE, processor=True, **kw):
    """A tiny Qwen2-VL-shaped checkpoint: image markers, a content-list template, processor."""
    folder = build_merged(
        path, chat_template=template, added_tokens=list(added), **{**SPECIALS_CHATML, **kw}
    )
    if processor:
        config = {"processor_class": "Qwen2VLProcessor", "image_token": "<|image_pad|>"}
        (folder / "processor_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def _findings(base, ft):
    return ftfix.check(base, ft, select=OURS).findings


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_healthy_vlm(tmp_path, layout):
    """Every marker is an added token: no finding."""
    base = _vlm(tmp_path / "base", layout=layout)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []


def test_noop_text_model(pair):
    """A text-only template and no processor: no markers, no finding."""
    assert _findings(*pair) == []


def test_fix_processor_marker_split(tmp_path):
    """processor_config.json's image_token is not in the fine-tune's vocabulary: error."""
    base = _vlm(tmp_path / "base")
    ft = _vlm(tmp_path / "ft", added=MARKERS[:2])
    [finding] = _findings(base, ft)
    assert finding.severity.value == "error"
    assert finding.path == "processor_config.json"
    assert "'<|image_pad|>' (processor_config.json image_token) is not one token" in (
        finding.message
    )
    assert "the base encodes it as one token (100)" in finding.message
    assert finding.fix is None
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(str(ft))("<|image_pad|>")["input_ids"]) > 1


def test_fix_template_marker_split(tmp_path):
    """A marker only the template prints for images, missing from the vocabulary: error."""
    template = VL_TEMPLATE.replace("<|image_pad|>", "<|image_pad|><|image_sep|>")
    base = _vlm(tmp_path / "base", template=template, added=[*MARKERS, "<|image_sep|>"])
    ft = _vlm(tmp_path / "ft", template=template)
    finding = next(f for f in _findings(base, ft) if f.path == "chat_template.jinja")
    assert "'<|image_sep|>' (the chat template (probe 'image-then-text'))" in finding.message


def test_fix_realworld_minicpm_markers(shared_dir, tmp_path):
    """MiniCPM-V-2's real preprocessor markers against a fine-tune tokenizer that lost </slice>."""
    config = shared_dir / "realworld" / "minicpm-v-2" / "preprocessor_config.json"
    base = build_merged(
        tmp_path / "base", added_tokens=["<image>", "</image>", "<slice>", "</slice>"]
    )
    ft = build_merged(tmp_path / "ft", added_tokens=["<image>", "</image>", "<slice>"])
    for folder in (base, ft):
        shutil.copyfile(config, folder / "preprocessor_config.json")
    [finding] = _findings(base, ft)
    assert finding.path == "preprocessor_config.json"
    assert "'</slice>' (preprocessor_config.json slice_end)" in finding.message
    assert "'<image>'" not in finding.message
