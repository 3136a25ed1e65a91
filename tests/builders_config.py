"""Break config.json and the weight headers the way training and merge scripts do.

Small helpers over `ckpt_builders`: set or remove config keys (keeping transformers' JSON
format), rename or add tensors in `model.safetensors`, and find the transformers 4 interpreter
the cross-version tests run (built by `make venv-tf4`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ckpt_builders import read_safetensors_header, write_safetensors

REPO_ROOT = Path(__file__).resolve().parent.parent


def set_json(folder: Path, rel: str, remove: tuple[str, ...] = (), **updates: Any) -> Path:
    """Set (or with `remove`, drop) top-level keys of a JSON file, in transformers' format."""
    path = folder / rel
    data = json.loads(path.read_text("utf-8"))
    for key in remove:
        data.pop(key, None)
    data.update(updates)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    return path


def read_json(folder: Path, rel: str = "config.json") -> dict[str, Any]:
    """A JSON file of the folder."""
    return dict(json.loads((folder / rel).read_text("utf-8")))


def rewrite_tensors(
    folder: Path,
    rename: Callable[[str], str] = lambda name: name,
    add: Mapping[str, tuple[str, tuple[int, ...], bytes]] | None = None,
    file: str = "model.safetensors",
) -> None:
    """Rewrite one safetensors file with renamed tensors (same bytes) and extra tensors."""
    path = folder / file
    header = read_safetensors_header(path)
    raw = path.read_bytes()
    data_start = 8 + int.from_bytes(raw[:8], "little")
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[rename(name)] = (
            info["dtype"],
            tuple(info["shape"]),
            raw[data_start + start : data_start + end],
        )
    tensors.update(add or {})
    write_safetensors(path, tensors, metadata=header.get("__metadata__") or {"format": "pt"})


@functools.cache
def tf4_python() -> Path | None:
    """A Python with transformers 4.x (no torch), or `None` when none exists or can be built.

    Looked for in `$FTFIX_TF4_VENV`, `.venv-tf4` in the checkout, then `../venv-tf4` beside it;
    when none exists, `make venv-tf4` is tried once (it needs the package index).
    """
    candidates = [
        os.environ.get("FTFIX_TF4_VENV"),
        REPO_ROOT / ".venv-tf4",
        REPO_ROOT.parent / "venv-tf4",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "python").is_file():
            return Path(candidate) / "bin" / "python"
    try:
        subprocess.run(
            ["make", "venv-tf4"], cwd=REPO_ROOT, check=True, capture_output=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError):
        return None
    built = REPO_ROOT / ".venv-tf4" / "bin" / "python"
    return built if built.is_file() else None


def run_tf4(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `script` with the transformers 4 interpreter (offline)."""
    python = tf4_python()
    assert python is not None
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    return subprocess.run(
        [str(python), "-c", script, *args], capture_output=True, text=True, env=env, timeout=300
    )
