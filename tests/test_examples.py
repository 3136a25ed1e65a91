"""The bundled examples run: the toy checkpoints, the CI gate and the demo's before/after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)


def test_demo_flow(tmp_path):
    """Toy checkpoints: check exits 1, repair 0, check 0; transformers then renders the prompt."""
    out = tmp_path / "demo"
    made = _run(
        sys.executable, str(ROOT / "examples" / "make_toy_checkpoints.py"), str(out), cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    base, ft = str(out / "base"), str(out / "finetuned")
    show = [sys.executable, str(ROOT / "examples" / "show_generation_prompt.py"), ft]
    assert "NO (empty answers)" in _run(*show, cwd=tmp_path).stdout
    assert _run(sys.executable, "-m", "ftfix", "check", base, ft, cwd=tmp_path).returncode == 1
    assert _run(sys.executable, "-m", "ftfix", "repair", base, ft, cwd=tmp_path).returncode == 0
    assert _run(sys.executable, "-m", "ftfix", "check", base, ft, cwd=tmp_path).returncode == 0
    assert "assistant header: yes" in _run(*show, cwd=tmp_path).stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_gate(tmp_path):
    """examples/ci_gate.sh fails on a broken fine-tune and passes on a repaired one."""
    out = tmp_path / "demo"
    _run(sys.executable, str(ROOT / "examples" / "make_toy_checkpoints.py"), str(out), cwd=tmp_path)
    gate = [
        "bash",
        str(ROOT / "examples" / "ci_gate.sh"),
        str(out / "base"),
        str(out / "finetuned"),
    ]
    if shutil.which("ftfix") is None and not (Path(sys.executable).parent / "ftfix").exists():
        pytest.skip("ftfix console script not installed")
    assert _run(*gate, cwd=tmp_path).returncode == 1
    _run(
        sys.executable,
        "-m",
        "ftfix",
        "repair",
        str(out / "base"),
        str(out / "finetuned"),
        cwd=tmp_path,
    )
    assert _run(*gate, cwd=tmp_path).returncode == 0


def test_notebook_script(tmp_path):
    """examples/notebook.py runs top to bottom: check, dry-run diff, repair, HTML, undo."""
    done = _run(
        sys.executable, str(ROOT / "examples" / "notebook.py"), str(tmp_path / "nb"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "FTX002 error" in done.stdout
    assert "+++ b/chat_template.jinja" in done.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_one_off_script(tmp_path):
    """examples/one_off.sh repairs the toy fine-tune and ends with a clean check."""
    out = tmp_path / "demo"
    _run(sys.executable, str(ROOT / "examples" / "make_toy_checkpoints.py"), str(out), cwd=tmp_path)
    done = _run(
        "bash",
        str(ROOT / "examples" / "one_off.sh"),
        str(out / "base"),
        str(out / "finetuned"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All checks passed." in done.stdout


@pytest.mark.slow
def test_end_of_training_example(tmp_path):
    """end_of_training.py: 4 training steps; every checkpoint and the final model repaired."""
    done = _run(
        sys.executable,
        str(ROOT / "examples" / "end_of_training.py"),
        str(tmp_path / "t"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # transformers 5's Trainer saves checkpoints with `use_cache: false` (it sets the config from
    # TrainingArguments.use_cache, default False): FTX402 restores it.
    assert "checkpoint-2: repaired ['FTX002', 'FTX402']" in done.stdout
    assert "checkpoint-4: repaired ['FTX002', 'FTX402']" in done.stdout
