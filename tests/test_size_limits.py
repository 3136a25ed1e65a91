"""Issue 19: every file read whole has a size limit, checked before reading (README, Safety)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ftfix.cli import main
from ftfix.errors import InvalidCheckpointError
from ftfix.io.limits import JSON_LIMIT, TOKENIZER_LIMIT, limit_for, read_limited


def _sparse(path, size: int) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)  # no disk, no memory: the size alone must refuse it


@pytest.mark.parametrize(
    ("name", "size"),
    [("config.json", JSON_LIMIT + 1), ("tokenizer.json", TOKENIZER_LIMIT + 1),
     ("chat_template.jinja", 16 * 1024 * 1024 + 1)],
)  # fmt: skip
def test_oversized_file_is_bad_input_without_reading_it(pair, capsys, name, size):
    base, ft = pair
    _sparse(ft / name, size)
    started = time.monotonic()
    # bad input (2), or an unreadable-file finding (1) when the rest can still be checked
    assert main(["check", str(base), str(ft)]) in (1, 2)
    out, err = capsys.readouterr()
    assert "limit for this file" in out + err and name in out + err
    assert time.monotonic() - started < 30


def test_limits_by_name():
    assert limit_for("tokenizer.json") == limit_for("sub/tokenizer_config.json") == TOKENIZER_LIMIT
    assert limit_for("config.json") == JSON_LIMIT
    assert limit_for("additional_chat_templates/tool_use.jinja") < JSON_LIMIT


def test_reader_stops_at_the_limit_and_refuses_non_files(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_limited(path, 100) == b"x" * 100
    with pytest.raises(InvalidCheckpointError, match="limit"):
        read_limited(path, 99)
    assert read_limited(tmp_path, 10) is None  # a folder
    assert read_limited(tmp_path / "missing", 10) is None
    os.symlink(path, tmp_path / "link")
    assert read_limited(tmp_path / "link", 100) == b"x" * 100
    assert read_limited(tmp_path / "link", 100, follow_symlinks=False) is None


def test_fifo_under_a_file_name_does_not_hang(pair, tmp_path):
    base, ft = pair
    (ft / "generation_config.json").unlink()
    os.mkfifo(ft / "generation_config.json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "ftfix", "check", str(base), str(ft)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr
