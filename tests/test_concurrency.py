"""Concurrency: two repairs of one folder at once; one fails clearly, the folder stays consistent.

The lock is `flock` on `.ftfix/lock`, taken without waiting: the second writer fails at once
with `LockedError` ("another ftfix process is repairing this checkpoint", exit 2). A repair
whose plan went stale while it waited is refused with `StaleEditError`. Readers (`check`) take
no lock and never touch a commit in progress.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ckpt_builders import CHATML_TEMPLATE, build_merged, copy_checkpoint, tree_digest
from helpers import patch_writer

import ftfix
from ftfix import write
from ftfix.cli import main
from ftfix.errors import LockedError, StaleEditError
from ftfix.write import BACKUPS, STATE_DIR

RULES = "FTX001,FTX101,FTX102"
LOCKED = "another ftfix process is repairing this checkpoint"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A base, and a fine-tune whose repair writes files, grows tensors and patches rows."""
    root = tmp_path_factory.mktemp("concurrency")
    templates = {"tool_use": CHATML_TEMPLATE}
    base = build_merged(root / "base", extra_chat_templates=templates)
    added = ("<a>", "<b>", "<c>")
    ft = build_merged(
        root / "ft", added_tokens=added, embedding_rows=100, zero_rows=(98, 99),
        extra_chat_templates=templates,
    )  # fmt: skip
    (ft / "chat_template.jinja").unlink()
    shutil.rmtree(ft / "additional_chat_templates")
    return base, ft


def _content(folder: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(folder).items() if not k.startswith(STATE_DIR + "/")}


def _repair(base: Path, ft: Path, pause: str, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "ftfix", "-v", "repair", "--unsafe-fixes", "--select", RULES,
        *extra, str(base), str(ft),
    ]  # fmt: skip
    env = {**os.environ, "FTFIX_TEST_PAUSE": pause}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _repaired_state(pristine, tmp_path: Path) -> dict[str, str]:
    ref = copy_checkpoint(pristine[1], tmp_path / "reference")
    assert ftfix.repair(pristine[0], ref, select=RULES.split(","), unsafe_fixes=True).ok
    return _content(ref)


def test_second_repair_during_a_commit_fails_clearly(pristine, tmp_path, capsys):
    """B runs while process A is committing: B exits 2 with LockedError; A's repair is whole."""
    base = pristine[0]
    ft = copy_checkpoint(pristine[1], tmp_path / "ft")
    original, repaired = tree_digest(ft), _repaired_state(pristine, tmp_path)
    first = _repair(base, ft, "0.03")
    assert first.stderr is not None and first.stdout is not None
    for line in first.stderr:  # A holds the lock from here for ~2 s (paused steps)
        if "committing" in line:
            break
    for command in (["repair", "--unsafe-fixes"], ["undo"]):
        paths = [str(ft)] if command == ["undo"] else [str(base), str(ft)]
        assert main([*command, *paths]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [
            f"ftfix: error: {ft}: {LOCKED}",
            "hint: wait for it to finish; the lock is released when that process exits",
        ]
    assert first.poll() is None, "A finished too early for this test to mean anything"
    rest = first.stderr.read()
    assert first.wait(timeout=60) == 0, rest
    first.stdout.close()
    first.stderr.close()
    assert _content(ft) == repaired
    ftfix.undo(ft)
    assert tree_digest(ft) == original


def test_two_repairs_started_together(pristine, tmp_path):
    """Two repairs launched at once: one repairs, the other fails clearly or finds nothing."""
    base = pristine[0]
    ft = copy_checkpoint(pristine[1], tmp_path / "ft")
    original, repaired = tree_digest(ft), _repaired_state(pristine, tmp_path)
    procs = [_repair(base, ft, "0.01"), _repair(base, ft, "0.01")]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    assert sum("[fixed]" in out for _, out, _ in results) == 1, results
    for code, out, err in results:
        assert "Traceback" not in err
        if code == 2:
            assert LOCKED in err or "changed on disk since the repair was planned" in err, err
        elif "[fixed]" not in out:
            assert out.strip() == "All checks passed.", out  # it ran after the other one
    assert _content(ft) == repaired
    journals = list((ft / STATE_DIR / BACKUPS).iterdir())
    assert len(journals) == 1  # exactly one repair was written
    ftfix.undo(ft)
    assert tree_digest(ft) == original


def test_check_while_repairing_reads_without_interfering(pristine, tmp_path):
    """`check` during a commit runs (exit 0 or 1), takes no lock, and recovers nothing."""
    base = pristine[0]
    ft = copy_checkpoint(pristine[1], tmp_path / "ft")
    repaired = _repaired_state(pristine, tmp_path)
    writer = _repair(base, ft, "0.02")
    assert writer.stderr is not None
    for line in writer.stderr:
        if "committing" in line:
            break
    reader = subprocess.run(
        [sys.executable, "-m", "ftfix", "check", "--select", RULES, str(base), str(ft)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert reader.returncode in (0, 1), reader.stderr
    assert "Traceback" not in reader.stderr and "rolled back" not in reader.stderr
    writer.stderr.read()
    assert writer.wait(timeout=60) == 0
    writer.stdout.close()
    writer.stderr.close()
    assert _content(ft) == repaired


def test_undo_during_a_repair_is_locked_out(pristine, tmp_path, monkeypatch):
    """undo while a commit holds the lock: LockedError, nothing restored."""
    base = pristine[0]
    ft = copy_checkpoint(pristine[1], tmp_path / "ft")
    inside, release = threading.Event(), threading.Event()
    real_step = write.atomic._step

    def slow_step(what: str) -> None:
        real_step(what)
        if what == "journal written":
            inside.set()
            release.wait(10)

    patch_writer(monkeypatch, "_step", slow_step)
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(ftfix.repair, base, ft, select=RULES.split(","), unsafe_fixes=True)
        assert inside.wait(10)
        with pytest.raises(LockedError, match=LOCKED):
            ftfix.undo(ft)
        with pytest.raises(LockedError, match=LOCKED):
            ftfix.repair(base, ft, select=RULES.split(","), unsafe_fixes=True)
        release.set()
        assert job.result().ok
    assert _content(ft) == _repaired_state(pristine, tmp_path)


def test_a_plan_that_went_stale_is_refused(pristine, tmp_path):
    """A plan made before another repair changed the folder is refused, nothing written."""
    from ftfix import registry
    from ftfix.io.checkpoint import Checkpoint
    from ftfix.plan import build

    base = pristine[0]
    ft = copy_checkpoint(pristine[1], tmp_path / "ft")
    plan = build(
        Checkpoint.open(base, role="base"), Checkpoint.open(ft), registry.resolve(["FTX001"]),
        apply_fixes=True,
    )  # fmt: skip
    assert ftfix.repair(base, ft, select=["FTX001"]).ok  # someone else repaired it meanwhile
    after = tree_digest(ft)
    with pytest.raises(StaleEditError, match="changed on disk since the repair was planned"):
        write.commit(ft, list(plan.file_edits.values()), plan.tensor_edits)
    assert tree_digest(ft) == after


def test_lock_is_exclusive_under_contention(tmp_path):
    """Many threads racing for the lock (which is dropped and re-created) never overlap."""
    (tmp_path / "config.json").write_text("{}")
    inside: list[int] = []
    overlaps: list[int] = []
    taken = [0]
    errors: list[Exception] = []

    def worker(n: int) -> None:
        for _ in range(60):
            try:
                with write.locked(tmp_path):
                    inside.append(n)
                    if len(inside) > 1:
                        overlaps.append(n)
                    time.sleep(0.0005)
                    inside.remove(n)
                    taken[0] += 1
            except LockedError:
                time.sleep(0.0002)
            except Exception as exc:  # anything else is a bug in the lock
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and overlaps == [] and taken[0] > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no .ftfix/ left
