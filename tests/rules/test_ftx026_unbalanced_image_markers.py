"""FTX026 unbalanced-image-markers: template image markers pair up; BOS stripping keeps them."""

from __future__ import annotations

import json
import shutil

import pytest
from ckpt_builders import (
    CHATML_TEMPLATE,
    SPECIALS_CHATML,
    VL_MARKERS,
    VL_TEMPLATE,
    build_merged,
    copy_checkpoint,
    tree_digest,
)

import ftfix

OURS = ["FTX026"]
MINICPM_MARKERS = ["<image>", "</image>", "<slice>", "</slice>"]
# The keys MiniCPM-V's preprocessor_config.json uses (see ../shared/realworld/minicpm-v-2).
MINICPM_PREPROCESSOR = {
    "image_processor_type": "MiniCPMVImageProcessor",
    "image_feature_size": 64,
    "im_start": "<image>",
    "im_end": "</image>",
    "slice_start": "<slice>",
    "slice_end": "</slice>",
    "unk": "<unk>",
}


def _findings(base, ft):
    return ftfix.check(base, ft, select=OURS).findings


def _minicpm(path, *, add_bos, layout="v5", preprocessor=None):
    folder = build_merged(
        path,
        layout=layout,
        chat_template=CHATML_TEMPLATE,
        added_tokens=MINICPM_MARKERS,
        add_bos=add_bos,
    )
    if preprocessor is None:
        (folder / "preprocessor_config.json").write_text(json.dumps(MINICPM_PREPROCESSOR))
    else:
        shutil.copyfile(preprocessor, folder / "preprocessor_config.json")
    return folder


def _strip_bos_counts(path):
    """MiniCPM-V's finetune/dataset.py: encode a message that opens with an image, drop [0]."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    placeholder = "<image>" + "<unk>" * 4 + "</image>"
    ids = tok.encode(placeholder + "\nwhat is this?")[1:]
    return ids.count(tok.convert_tokens_to_ids("<image>")), ids.count(
        tok.convert_tokens_to_ids("</image>")
    )


def test_noop_balanced_vlm_template(tmp_path):
    """A Qwen2-VL-style template wraps every image in start and end: no finding."""
    kw = {"chat_template": VL_TEMPLATE, "added_tokens": VL_MARKERS, **SPECIALS_CHATML}
    base = build_merged(tmp_path / "base", **kw)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_noop_minicpm_with_bos(tmp_path, layout):
    """The tokenizer adds BOS, so dropping the first token drops only the BOS."""
    base = _minicpm(tmp_path / "base", add_bos=True, layout=layout)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []


def test_fix_template_unbalanced(tmp_path):
    """A template that forgets the end marker: error per probe, no fix, nothing written."""
    kw = {"added_tokens": VL_MARKERS, **SPECIALS_CHATML}
    base = build_merged(tmp_path / "base", chat_template=VL_TEMPLATE, **kw)
    broken = VL_TEMPLATE.replace("<|vision_end|>", "")
    ft = build_merged(tmp_path / "ft", chat_template=broken, **kw)
    [finding] = _findings(base, ft)
    assert finding.severity.value == "error"
    assert finding.path == "chat_template.jinja"
    assert "probe 'image-then-text' renders 1 '<|vision_start|>' but 0 '<|vision_end|>'" in (
        finding.message
    )
    assert finding.fix is None
    before = tree_digest(ft)
    ftfix.repair(base, ft, select=OURS, unsafe_fixes=True)
    assert tree_digest(ft) == before


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_fix_bos_stripping_drops_image_start(tmp_path, layout):
    """The MiniCPM-V crash: BOS lost, [1:] removes <image>; the base's BOS comes back safely."""
    base = _minicpm(tmp_path / "base", add_bos=True, layout=layout)
    ft = _minicpm(tmp_path / "ft", add_bos=False, layout=layout)
    assert _strip_bos_counts(ft) == (0, 1)  # torch.hstack would raise here
    [finding] = _findings(base, ft)
    assert finding.severity.value == "error"
    assert "0 '<image>' vs 1 '</image>' (preprocessor_config.json im_start)" in finding.message
    assert "0 '<slice>' vs 1 '</slice>'" in finding.message
    assert finding.fix.applicability.value == "safe"

    report = ftfix.repair(base, ft, select=OURS)
    assert report.exit_code == 0, report.render_text()
    assert _strip_bos_counts(ft) == _strip_bos_counts(base) == (1, 1)
    assert _findings(base, ft) == []


def test_fix_realworld_minicpm_preprocessor(shared_dir, tmp_path):
    """The same crash with MiniCPM-V-2's real preprocessor_config.json."""
    config = shared_dir / "realworld" / "minicpm-v-2" / "preprocessor_config.json"
    base = _minicpm(tmp_path / "base", add_bos=True, preprocessor=config)
    ft = _minicpm(tmp_path / "ft", add_bos=False, preprocessor=config)
    [finding] = _findings(base, ft)
    assert "MiniCPM-V" in finding.message
    ftfix.repair(base, ft, select=OURS)
    assert _strip_bos_counts(ft) == (1, 1)


def test_noop_no_bos_in_base_either(tmp_path):
    """A base that never added BOS (Qwen-based MiniCPM-V 2.6 style) is not a regression."""
    base = _minicpm(tmp_path / "base", add_bos=False)
    assert _findings(base, copy_checkpoint(base, tmp_path / "ft")) == []
