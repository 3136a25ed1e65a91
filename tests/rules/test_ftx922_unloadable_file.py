"""FTX922 unloadable-file: what ftfix reads leniently but transformers refuses."""

from __future__ import annotations

import json

import pytest

import ftfix

SELECT = ["FTX922"]


def _set(path, key, value):
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data, indent=2))


def test_bom_is_reported_and_removed_so_transformers_loads(pair):
    from transformers import AutoConfig

    base, ft = pair
    original = (ft / "config.json").read_bytes()
    (ft / "config.json").write_bytes(b"\xef\xbb\xbf" + original)
    with pytest.raises(Exception, match="not a valid JSON file"):
        AutoConfig.from_pretrained(ft)
    report = ftfix.check(base, ft, select=SELECT)
    assert [f.path for f in report.findings] == ["config.json"]
    assert report.findings[0].fix.applicability.value == "safe"
    ftfix.repair(base, ft, select=SELECT)
    assert (ft / "config.json").read_bytes() == original
    assert AutoConfig.from_pretrained(ft).vocab_size > 0


@pytest.mark.parametrize("value", ["98", None, 0, 1.5])
def test_config_sizes_must_be_positive_integers(pair, value):
    base, ft = pair
    _set(ft / "config.json", "vocab_size", value)
    [finding] = ftfix.check(base, ft, select=SELECT).findings
    assert "vocab_size" in finding.message and finding.fix is None


def test_special_token_as_a_list(pair):
    base, ft = pair
    _set(ft / "tokenizer_config.json", "eos_token", ["<a>", "<b>"])
    [finding] = ftfix.check(base, ft, select=SELECT).findings
    assert "eos_token is a list" in finding.message


def test_template_list_entry_without_name(pair):
    base, ft = pair
    _set(ft / "tokenizer_config.json", "chat_template", [{"template": "{{ 1 }}"}])
    findings = ftfix.check(base, ft, select=SELECT).findings
    assert any("entry 0" in f.message for f in findings)


def test_folder_where_the_weights_belong(pair):
    base, ft = pair
    (ft / "model.safetensors").unlink()
    (ft / "model.safetensors").mkdir()
    report = ftfix.check(base, ft, select=SELECT)
    assert [f.path for f in report.findings] == ["model.safetensors"]


def test_healthy_checkpoint_has_no_finding(pair):
    base, ft = pair
    assert ftfix.check(base, ft, select=SELECT).findings == []
