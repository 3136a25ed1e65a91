"""FTX405 weights-upcast: float32 weights where the base is 16-bit."""

from __future__ import annotations

import ftfix


def _found(report):
    return [f for f in report.findings if f.code == "FTX405"]


def test_noop_same_dtype(make_checkpoint):
    """Both bf16, or both fp32: nothing."""
    for dtype in ("bfloat16", "float32"):
        base = make_checkpoint(f"base-{dtype}", dtype=dtype)
        ft = make_checkpoint(f"ft-{dtype}", dtype=dtype)
        assert _found(ftfix.check(base, ft)) == []


def test_warns_with_size(make_checkpoint):
    """fp32 fine-tune of a bf16 base: a warning naming the wasted bytes, and no fix."""
    base = make_checkpoint("base", dtype="bfloat16", full_model=True)
    ft = make_checkpoint("ft", dtype="float32", full_model=True)
    finding = _found(ftfix.check(base, ft))[0]
    assert finding.severity.value == "warning"
    assert finding.fix is None
    stored = (ft / "model.safetensors").stat().st_size
    assert finding.data["extra_bytes"] * 2 <= stored
    assert "float32" in finding.message and "bfloat16" in finding.message


def test_base_weights_absent_uses_its_config(make_checkpoint):
    """Without the base's weights, its config's dtype says what it was."""
    base = make_checkpoint("base", dtype="bfloat16")
    (base / "model.safetensors").unlink()
    ft = make_checkpoint("ft", dtype="float32")
    assert len(_found(ftfix.check(base, ft))) == 1
