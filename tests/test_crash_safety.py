"""Crash safety: SIGKILL at any instant, failing writes, disk full, read-only folders.

The repair under test writes three files (one in a new folder), grows two tensors (the shard is
rewritten) and patches rows of both in place: `ftfix repair --unsafe-fixes` with FTX001, FTX101
and FTX102 on a fine-tune that lost its templates, has one embedding row too few, and has five
all-zero rows of added tokens.

The fault-injection test kills real repairs with SIGKILL between every two steps of the commit
(`FTFIX_TEST_PAUSE`, read only by `ftfix.write` and only for tests, sleeps between steps, and each
step is logged, so a kill can be aimed at any of them) and also at timed instants; after each
kill the next writing ftfix command (repair, undo) recovers (`check` only reports it), and the
folder must equal either the original or the fully repaired state, file by file. The other
tests inject failures in-process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from ckpt_builders import CHATML_TEMPLATE, build_merged, copy_checkpoint, tree_digest
from helpers import patch_writer

import ftfix
from ftfix import write
from ftfix.cli import main
from ftfix.errors import RecoveryError, WriteFailedError
from ftfix.findings import FileEdit, TensorRowsEdit, sha256_hex
from ftfix.io.safetensors import SafetensorsFile, rows_from_float32
from ftfix.write import BACKUPS, MANIFEST, STATE_DIR

RULES = "FTX001,FTX101,FTX102"
REPAIR = ["repair", "--unsafe-fixes", "--select", RULES]
CHECK = ["--select", RULES + ",FTX920"]  # FTX920: check reports what a kill left
# A writer that changes nothing itself: it rolls back what a killed repair left (FTX920 has no fix).
RECOVER = ["repair", "--select", "FTX920"]
TENSORS = ("model.embed_tokens.weight", "lm_head.weight")
ZERO_ROWS = (98, 99, 100, 101, 102)  # added tokens whose rows were never trained
PAUSE = 0.003

# The kills: a launcher process imports ftfix once, then for each trial forks a child that runs
# the CLI (`ftfix.cli.main`, as the console script does) with every step of a commit logged. The
# launcher reads the child's log, sends SIGKILL a chosen fraction of a pause after the chosen
# step (or a chosen time after the commit began), and reports. Forking skips the interpreter
# start-up, so 60+ trials take seconds; a few trials also kill real `python -m ftfix` processes.
LAUNCHER = """
import json, logging, os, signal, sys, time, traceback
from ftfix.cli import main

def child(spec):
    os.environ["FTFIX_TEST_PAUSE"] = str(spec["pause"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ftfix: %(levelname)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("ftfix").setLevel(logging.DEBUG)  # every "step:" of the commit
    return main(spec["argv"])

for line in sys.stdin:
    spec = json.loads(line)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.close(r)
            os.dup2(w, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            code = child(spec)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    out, started, steps = b"", None, 0
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        out += chunk
        if started is None and b"committing" in out:
            started = time.monotonic()
        steps = out.count(b"step: ")
        if spec["step"] is not None and steps >= spec["step"] and started is not None:
            break
        if spec["step"] is None and started is not None:
            break
    if spec["kill"]:
        time.sleep(spec["after"])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    end = time.monotonic()
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    os.close(r)
    print(json.dumps({
        "killed": os.WIFSIGNALED(status),
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "window": None if started is None else end - started,
        "steps": out.count(b"step: "),
        "stderr": out.decode("utf-8", "replace")[-3000:],
    }), flush=True)
"""


def planned_edits(base: Path, ft: Path):
    """The repair's planned edits: FTX001's files, FTX101's growth and config, FTX102's rows."""
    from ftfix import registry
    from ftfix.io.checkpoint import Checkpoint
    from ftfix.plan import build

    plan = build(
        Checkpoint.open(base, role="base"),
        Checkpoint.open(ft),
        registry.resolve(RULES.split(",")),
        apply_fixes=True,
        unsafe_fixes=True,
    )
    return list(plan.file_edits.values()), list(plan.tensor_edits)


def row_edits(ft: Path, rows=(3, 5, 7), value: float = 0.25) -> list[TensorRowsEdit]:
    """Set `rows` of both embedding tensors to `value`."""
    file = SafetensorsFile.open(ft / "model.safetensors")
    edits = []
    for name in TENSORS:
        info = file.info(name)
        data = rows_from_float32(np.full((len(rows), info.shape[1]), value), info.dtype)
        before = sha256_hex(file.read_raw_rows(name, rows))
        edits.append(TensorRowsEdit("model.safetensors", name, tuple(rows), data, before, "test"))
    return edits


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The base, and a fine-tune the repair writes files, grows tensors and patches rows in."""
    root = tmp_path_factory.mktemp("crash")
    templates = {"tool_use": CHATML_TEMPLATE}
    base = build_merged(root / "base", dtype="bfloat16", extra_chat_templates=templates)
    added = tuple(f"<tool_{i}>" for i in range(6))
    ft = build_merged(
        root / "ft",
        dtype="bfloat16",
        added_tokens=added,
        embedding_rows=98 + len(added) - 1,  # one row short: FTX101 grows both tensors
        zero_rows=ZERO_ROWS,  # never trained: FTX102 patches them
        extra_chat_templates=templates,
    )
    (ft / "chat_template.jinja").unlink()  # FTX001 writes both templates back
    shutil.rmtree(ft / "additional_chat_templates")
    return base, ft


def _fresh(pristine, path: Path) -> Path:
    return copy_checkpoint(pristine[1], path)


def _content(folder: Path) -> dict[str, str]:
    """sha256 of every checkpoint file, ignoring ftfix's own .ftfix/ folder."""
    return {k: v for k, v in tree_digest(folder).items() if not k.startswith(STATE_DIR + "/")}


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".ftfix-tmp")]


def _journals(folder: Path) -> list[dict]:
    backups = folder / STATE_DIR / BACKUPS
    if not backups.is_dir():
        return []
    return [
        json.loads((d / MANIFEST).read_text()) for d in sorted(backups.iterdir())
        if (d / MANIFEST).is_file()
    ]  # fmt: skip


# ------------------------------------------------------------------------ SIGKILL trials
class Launcher:
    """One launcher process (see LAUNCHER): `run(spec)` forks, maybe kills, and reports."""

    def __init__(self) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    def run(self, spec: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the launcher died"
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Trial:
    """One repair killed at one instant, and what it left behind."""

    kind: str  # "cli" / "cli-no-backup" (forked launcher children), "process" (python -m ftfix)
    folder: Path
    step: int | None  # kill after this many commit steps (None: `after` s after it began)
    after: float  # seconds to wait after that point before SIGKILL
    result: dict = field(default_factory=dict)
    left: str = ""

    def argv(self, base: Path) -> list[str]:
        extra = ["--no-backup"] if self.kind == "cli-no-backup" else []
        return ["-v", *REPAIR, *extra, str(base), str(self.folder)]

    def describe(self) -> str:
        where = f"after step {self.step}" if self.step is not None else "after the commit began"
        return f"{self.kind} killed {self.after:.4f}s {where}"


def _kill_process(trial: Trial, base: Path) -> None:
    """Kill a real `python -m ftfix repair` process `after` seconds after it started."""
    cmd = [sys.executable, "-m", "ftfix", *trial.argv(base)]
    env = {**os.environ, "FTFIX_TEST_PAUSE": str(PAUSE)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(trial.after)
    proc.kill()
    proc.wait()
    trial.result = {"killed": proc.returncode == -signal.SIGKILL}


def _classify(folder: Path, original: dict[str, str], original_rows: dict[str, bytes]) -> str:
    """What a kill left, before recovery: shows the kills covered every phase of the commit."""
    journals = _journals(folder)
    if not journals:
        return "no journal"
    state = journals[-1]["state"]
    if state == "complete":
        return "complete"
    content = _content(folder)
    written = [
        k for k in ("chat_template.jinja", "config.json") if content.get(k) != original.get(k)
    ]
    file = SafetensorsFile.open(folder / "model.safetensors")
    grown = file.info(TENSORS[0]).shape[0] > min(ZERO_ROWS) + len(ZERO_ROWS)
    changed = sum(
        file.read_raw_rows(name, [row]) != original_rows[f"{name}:{row}"]
        for name in TENSORS
        for row in ZERO_ROWS
    )
    rows = f"rows {changed}/{len(TENSORS) * len(ZERO_ROWS)}"
    return f"{state}: {len(written)}/2 files, {'grown' if grown else 'not grown'}, {rows}"


def _recover_and_verify(
    trial: Trial, n: int, base: Path, original_full: dict[str, str], repaired: dict[str, str]
) -> None:
    """The next writer recovers; the folder is then the original or the repaired state.

    `check` and `--dry-run` first: they report an unfinished journal and change nothing.
    """
    ft = trial.folder
    commands = ["check", "repair --dry-run", "undo"] * 6 + ["python -m ftfix repair"]
    command = commands[n % len(commands)]
    where = f"{trial.describe()}: left {trial.left}; then {command}"
    original = {k: v for k, v in original_full.items() if not k.startswith(STATE_DIR + "/")}
    if command == "undo":
        # undo recovers first, then restores a repair that had completed before the kill.
        assert main(["undo", str(ft)]) in (0, 2), where
        if trial.kind != "cli-no-backup":
            assert tree_digest(ft) == original_full, where
            return
    elif command.startswith("python"):
        out = subprocess.run(
            [sys.executable, "-m", "ftfix", *RECOVER, str(base), str(ft)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert out.returncode in (0, 1), where + out.stderr
        if trial.left.startswith("pending"):  # the rollback is reported on stderr
            assert "ftfix: WARNING: " in out.stderr, where + out.stderr
            assert "rolled back an interrupted repair" in out.stderr, where + out.stderr
    else:
        left = tree_digest(ft)
        code = main([*command.split(), *CHECK, str(base), str(ft)])
        assert code in (0, 1) and tree_digest(ft) == left, where  # readers never act on it
        assert code == 1 or not trial.left.startswith("pending"), where
        assert main([*RECOVER, str(base), str(ft)]) == 0, where
    assert not _tmp_files(ft), where
    assert all(j["state"] == "complete" for j in _journals(ft)), where
    state = _content(ft)
    assert state in (original, repaired), where
    if state == original:
        assert tree_digest(ft) == original_full, where  # and no .ftfix/ left behind
    elif trial.kind == "cli-no-backup":
        assert not (ft / STATE_DIR).exists(), where
    else:
        assert ftfix.undo(ft), where  # a repair that completed before the kill is undoable
        assert tree_digest(ft) == original_full, where


def test_sigkill_at_any_instant_leaves_old_or_new_state(pristine, tmp_path, monkeypatch):
    """70+ SIGKILLs spread over whole repairs; the next command always recovers a clean state."""
    base, pristine_ft = pristine
    original_full = tree_digest(pristine_ft)
    original = _content(pristine_ft)
    file = SafetensorsFile.open(pristine_ft / "model.safetensors")
    original_rows = {
        f"{name}:{row}": file.read_raw_rows(name, [row]) for name in TENSORS for row in ZERO_ROWS
    }
    launchers = [Launcher(), Launcher()]
    try:
        # Unkilled runs: the repaired state, the number of steps and the length of a commit.
        repaired, steps, windows = {}, {}, {}
        for kind in ("cli", "cli-no-backup"):
            ref = Trial(kind, _fresh(pristine, tmp_path / f"reference-{kind}"), None, 0.0)
            spec = {"argv": ref.argv(base), "pause": PAUSE, "step": None, "after": 0, "kill": 0}
            result = launchers[0].run(spec)
            assert result["code"] == 0 and result["steps"] >= 20, result["stderr"]
            repaired[kind], steps[kind], windows[kind] = (
                _content(ref.folder), result["steps"], result["window"]
            )  # fmt: skip
        assert repaired["cli"] == repaired["cli-no-backup"] != original
        repaired["process"] = repaired["cli"]

        trials = [
            Trial("process", tmp_path / f"process{i}", None, after)
            for i, after in enumerate((0.2, 0.5, 1.0))
        ]  # real processes, killed while importing, planning or committing
        for step in range(steps["cli"] + 1):  # between every two steps
            fraction = (0.2, 0.8)[step % 2]
            trials.append(Trial("cli", tmp_path / f"cli-step{step}", step, fraction * PAUSE))
        for step in range(0, steps["cli-no-backup"] + 1, 6):
            name = f"no-backup-step{step}"
            trials.append(Trial("cli-no-backup", tmp_path / name, step, 0.5 * PAUSE))
        for i, after in enumerate(np.linspace(0.0, windows["cli"] * 1.3, 6)):  # timed kills
            trials.append(Trial("cli", tmp_path / f"cli-timed{i}", None, float(after)))
        for trial in trials:
            _fresh(pristine, trial.folder)

        def work(index: int) -> None:
            for trial in trials[index::2]:
                if trial.kind == "process":
                    _kill_process(trial, base)
                    continue
                spec = {
                    "argv": trial.argv(base),
                    "pause": PAUSE,
                    "step": trial.step,
                    "after": trial.after,
                    "kill": 1,
                }
                trial.result = launchers[index].run(spec)
                assert "Traceback" not in trial.result["stderr"], trial.result["stderr"]

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(work, range(2)))
    finally:
        for launcher in launchers:
            launcher.close()

    # The kills hit processes that fsynced for real; recovering here need not (speed).
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    outcomes: dict[str, int] = {}
    for n, trial in enumerate(trials):
        trial.left = _classify(trial.folder, original, original_rows)
        outcomes[trial.left] = outcomes.get(trial.left, 0) + 1
        _recover_and_verify(trial, n, base, original_full, repaired[trial.kind])

    killed = sum(bool(t.result.get("killed")) for t in trials)
    print(f"\n{len(trials)} trials, {killed} killed; what the kills left before recovery:")
    print(json.dumps(outcomes, indent=1, sort_keys=True))
    assert killed >= 50
    pending = {left for left in outcomes if left.startswith("pending")}
    assert any("1/2 files" in left for left in pending), outcomes  # between two file writes
    assert any(", grown" in left and "rows 0/" in left for left in pending), outcomes
    assert any(", grown" in left and "rows 0/" not in left for left in pending), outcomes
    assert "complete" in outcomes and "no journal" in outcomes, outcomes


# -------------------------------------------------------- crashes at every step, in-process
class Killed(BaseException):
    """Stands in for SIGKILL: raised at a chosen step; nothing of ftfix runs after it."""


def _crash_at(monkeypatch, ft: Path, files, tensors, stop: int, *, keep: bool = True) -> None:
    """Commit, dying at step `stop` exactly as a kill would (no rollback, journal left)."""
    calls = []
    real_step = write.atomic._step

    def step(what: str) -> None:
        calls.append(what)
        real_step(what)
        if len(calls) == stop:
            raise Killed(what)

    with monkeypatch.context() as patch:
        patch_writer(patch, "_step", step)
        patch_writer(patch, "_rollback_after_failure", lambda *args: None)
        with pytest.raises(Killed):
            write.commit(ft, files, tensors, backup=keep)


def _count_steps(monkeypatch, ft: Path, files, tensors) -> list[str]:
    """The steps of committing these edits, on a throw-away copy of `ft`."""
    copy = copy_checkpoint(ft, ft.parent / f"{ft.name}-steps")
    seen: list[str] = []
    with monkeypatch.context() as patch:
        patch_writer(patch, "_step", seen.append)
        write.commit(copy, files, tensors)
    shutil.rmtree(copy)
    return seen


def _first(steps: list[str], prefix: str) -> int:
    """The 1-based number of the first step starting with `prefix`."""
    return next(i for i, s in enumerate(steps, 1) if s.startswith(prefix))


@pytest.fixture
def case(pristine, tmp_path):
    """A fresh copy of the fine-tune, its digest, and its planned edits."""
    ft = _fresh(pristine, tmp_path / "ft")
    files, tensors = planned_edits(pristine[0], ft)
    return ft, tree_digest(ft), files, tensors


@pytest.fixture
def no_fsync(monkeypatch):
    """Skip real fsyncs (durability is not what a loop of in-process crashes tests; speed is)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_a_crash_at_every_step_is_rolled_back(pristine, case, monkeypatch, tmp_path, no_fsync):
    """Dying after any step of the commit: the next command restores every original byte."""
    ft0, original, files, tensors = case
    steps = _count_steps(monkeypatch, ft0, files, tensors)
    assert any(s.startswith("grew") for s in steps) and any(
        s.startswith("wrote row") for s in steps
    )
    for stop in range(1, len(steps) + 1):
        ft = _fresh(pristine, tmp_path / f"stop{stop}")
        _crash_at(monkeypatch, ft, files, tensors, stop)
        where = f"killed after step {stop}: {steps[stop - 1]}"
        command = ("recover", "check", "recover", "undo", "recover", "repair --dry-run")[stop % 6]
        if command == "recover":
            journaled = bool(_journals(ft))  # before the journal exists nothing was changed
            assert len(write.recover(ft)) == journaled, where
        elif command == "undo":
            assert main(["undo", str(ft)]) == 0, where  # rolled back; nothing left to undo
        else:
            left = tree_digest(ft)
            assert main([*command.split(), *CHECK, str(pristine[0]), str(ft)]) == 1, where
            assert tree_digest(ft) == left, where  # readers never act on a journal
            assert main([*RECOVER, str(pristine[0]), str(ft)]) == 0, where
        assert tree_digest(ft) == original, where


# ---------------------------------------------------------------- failures in-process
def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # pragma: no cover - no /proc
        return ""


def _in_checkpoint(path: str) -> bool:
    return f"/{STATE_DIR}/" not in path


def test_every_fsync_failing_rolls_back(pristine, case, monkeypatch, tmp_path, no_fsync):
    """An fsync failing at any point of the commit: clear error, nothing changed."""
    ft0, original, files, tensors = case
    real_fsync = os.fsync  # the no-op: counting and failing is what matters here
    count: list[int] = []
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: count.append(fd) or real_fsync(fd))
        write.commit(ft0, files, tensors)
    assert len(count) >= 30
    every_other = sorted({*range(1, len(count) + 1, 2), len(count)})  # all kinds of fsync
    for nth in every_other:
        ft = _fresh(pristine, tmp_path / f"fsync{nth}")
        calls: list[str] = []

        def failing(fd, nth=nth, calls=calls):
            calls.append(_fd_path(fd))
            if len(calls) == nth:  # once: the rollback's own fsyncs then work
                raise OSError(errno.EIO, "Input/output error")
            return real_fsync(fd)

        with monkeypatch.context() as patch:
            patch.setattr(os, "fsync", failing)
            with pytest.raises(WriteFailedError, match="nothing was changed") as info:
                write.commit(ft, files, tensors)
        assert info.value.errno == errno.EIO
        assert tree_digest(ft) == original, f"fsync {nth} of {calls[-1]}"


def test_every_replace_failing_rolls_back(pristine, case, monkeypatch, tmp_path, no_fsync):
    """os.replace failing at any point of the commit: nothing changed, nothing left behind."""
    ft0, original, files, tensors = case
    real_replace = os.replace
    count: list[str] = []
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", lambda s, d: count.append(d) or real_replace(s, d))
        write.commit(ft0, files, tensors)
    assert len(count) >= 8
    for nth in range(1, len(count) + 1):
        ft = _fresh(pristine, tmp_path / f"replace{nth}")
        calls: list[str] = []

        def failing(src, dst, nth=nth, calls=calls):
            calls.append(str(dst))
            if len(calls) == nth:
                raise OSError(errno.EIO, "simulated failure", str(dst))
            return real_replace(src, dst)

        with monkeypatch.context() as patch:
            patch.setattr(os, "replace", failing)
            with pytest.raises(WriteFailedError, match="simulated failure"):
                write.commit(ft, files, tensors)
        assert tree_digest(ft) == original, f"replace {nth}: {calls[-1]}"


def test_disk_full_while_writing_rolls_back(pristine, case, monkeypatch, capsys):
    """ENOSPC from the write hook mid-commit: one error line and hint, exit 2, nothing changed."""
    ft, before, _, _ = case
    real_write = write.atomic._write_all

    def full(fd, data):
        if "config.json" in _fd_path(fd) and _in_checkpoint(_fd_path(fd)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    patch_writer(monkeypatch, "_write_all", full)
    assert main([*REPAIR, str(pristine[0]), str(ft)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert "No space left on device; nothing was changed" in lines[0]
    assert lines[1].startswith("hint: check free disk space")
    assert tree_digest(ft) == before


def test_disk_full_while_rewriting_a_shard(case, monkeypatch):
    """ENOSPC while streaming the grown shard (after files were written): rolled back."""
    ft, before, files, tensors = case
    real_copy = write.streamed._copy_span

    def full(src, dst, *args, **kwargs):
        if dst is not None:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, *args, **kwargs)

    patch_writer(monkeypatch, "_copy_span", full)
    with pytest.raises(WriteFailedError, match="No space left"):
        write.commit(ft, files, tensors)
    assert tree_digest(ft) == before


def test_disk_full_while_backing_up(case, monkeypatch):
    """ENOSPC while writing the backups: the checkpoint was never touched; no .ftfix/ left."""
    ft, before, files, tensors = case

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    patch_writer(monkeypatch, "_write_all", full)
    with pytest.raises(WriteFailedError, match="No space left"):
        write.commit(ft, files, tensors)
    assert tree_digest(ft) == before


def test_not_enough_free_space_is_refused_up_front(case, monkeypatch):
    """A disk that cannot hold backups and temp files is refused before anything is written."""
    ft, before, files, tensors = case
    usage = shutil.disk_usage(ft)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(WriteFailedError, match="not enough free disk space") as info:
        write.commit(ft, files, tensors)
    assert info.value.errno == errno.ENOSPC
    assert tree_digest(ft) == before


def test_read_only_folder_via_hook(pristine, case, monkeypatch, capsys):
    """A read-only folder (simulated: root ignores permissions): clear error, nothing changed."""
    ft, before, _, _ = case

    def read_only(folder):
        raise OSError(errno.EROFS, "Read-only file system", str(folder))

    patch_writer(monkeypatch, "_mkdirs", read_only)
    assert main([*REPAIR, str(pristine[0]), str(ft)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == f"ftfix: error: {ft / STATE_DIR}: cannot write: Read-only file system; " + (
        "nothing was changed"
    )
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert tree_digest(ft) == before


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    """Mount a small tmpfs at `path`, or skip when this machine does not allow it."""
    path.mkdir()
    try:
        made = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
        )
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_real_disk_full(pristine, case, tmp_path, monkeypatch, capsys):
    """A real, nearly full filesystem (tmpfs): exit 2, one error and a hint, nothing changed."""
    ft_src = case[0]
    size = sum(p.stat().st_size for p in ft_src.rglob("*") if p.is_file())
    with _tmpfs(tmp_path / "small", f"{size + 64 * 1024}") as mount:
        ft = copy_checkpoint(ft_src, mount / "ft")
        with contextlib.suppress(OSError), (mount / "filler").open("wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        before = tree_digest(ft)
        for precheck in (True, False):
            if not precheck:  # let the writes themselves hit ENOSPC
                patch_writer(monkeypatch, "_check_space", lambda *a: None)
            capsys.readouterr()
            assert main([*REPAIR, str(pristine[0]), str(ft)]) == 2
            lines = capsys.readouterr().err.strip().splitlines()
            assert len(lines) == 2, lines
            assert "space" in lines[0] and lines[1].startswith("hint: ")
            assert tree_digest(ft) == before


def test_real_read_only_filesystem(pristine, case, tmp_path, capsys):
    """A read-only mount: repair exits 2 with a clear error; check still works."""
    with _tmpfs(tmp_path / "ro", "4m") as mount:
        ft = copy_checkpoint(case[0], mount / "ft")
        before = tree_digest(ft)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        assert main([*REPAIR, str(pristine[0]), str(ft)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert "Read-only file system" in lines[0] and len(lines) == 2
        assert main(["check", *CHECK, str(pristine[0]), str(ft)]) == 1
        assert tree_digest(ft) == before


def test_rollback_failing_too_leaves_a_journal_the_next_run_rolls_back(
    pristine, case, monkeypatch, caplog
):
    """When even the rollback fails, the error says so; the next command rolls back."""
    ft, before, files, tensors = case
    real_fsync = os.fsync

    def failing(fd):
        if _fd_path(fd).endswith("/model.safetensors"):
            raise OSError(errno.EIO, "Input/output error")  # patching rows, and unpatching them
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(WriteFailedError, match="rolling it back failed too") as info:
        write.commit(ft, files, tensors)
    assert "run `ftfix repair` or `ftfix undo`" in str(info.value)
    assert [j["state"] for j in _journals(ft)] == ["pending"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(["check", *CHECK, str(pristine[0]), str(ft)]) == 1
    assert [j["state"] for j in _journals(ft)] == ["pending"]  # check reports, never acts
    assert main([*RECOVER, str(pristine[0]), str(ft)]) == 0
    assert "rolled back an interrupted repair" in caplog.text
    assert tree_digest(ft) == before


def test_ctrl_c_mid_commit_rolls_back(pristine, case, monkeypatch):
    """KeyboardInterrupt while patching rows: rolled back, exit 130."""
    ft, before, _, _ = case

    def interrupt(root, tedit):
        raise KeyboardInterrupt

    patch_writer(monkeypatch, "_patch_rows", interrupt)
    assert main([*REPAIR, str(pristine[0]), str(ft)]) == 130
    assert tree_digest(ft) == before


def test_undo_after_a_recovered_crash(pristine, case, monkeypatch):
    """Repair 1 completes, repair 2 is killed part-way: undo rolls 2 back, then undoes 1."""
    ft, original, _, _ = case
    first = ftfix.repair(pristine[0], ft, select=RULES.split(","), unsafe_fixes=True)
    assert first.written and first.backup and first.exit_code == 0
    after_first = _content(ft)
    gen = ft / "generation_config.json"
    second = [FileEdit("generation_config.json", gen.read_bytes(), b'{"eos_token_id": 9}\n')]
    rows = row_edits(ft)
    steps = _count_steps(monkeypatch, ft, second, rows)
    _crash_at(monkeypatch, ft, second, rows, stop=_first(steps, "wrote row") + 1)
    assert _content(ft) != after_first
    assert sorted(ftfix.undo(ft)) == sorted(first.written)
    assert tree_digest(ft) == original


def test_no_backup_repair_is_still_journaled(case, monkeypatch):
    """backup=False keeps the journal until the repair completes, so a crash rolls back too."""
    ft, original, files, tensors = case
    steps = _count_steps(monkeypatch, ft, files, tensors)
    _crash_at(monkeypatch, ft, files, tensors, stop=_first(steps, "grew"), keep=False)
    assert [j["keep"] for j in _journals(ft)] == [False]
    assert write.recover(ft)
    assert tree_digest(ft) == original
    result = write.commit(ft, files, tensors, backup=False)
    assert result.backup is None and not (ft / STATE_DIR).exists()


def test_interrupted_undo_is_finished_by_the_next_command(case, monkeypatch):
    """An undo killed part-way (journal `undoing`) is completed by the next check."""
    ft, original, files, tensors = case
    write.commit(ft, files, tensors)

    def interrupt(root, folder, entry):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch_writer(patch, "_restore_grown", interrupt)  # files and rows already restored
        with pytest.raises(KeyboardInterrupt):
            write.undo(ft)
    assert [j["state"] for j in _journals(ft)] == ["undoing"]
    notices = write.recover(ft)
    assert "finished an undo" in notices[0]
    assert tree_digest(ft) == original


def test_recovery_waits_for_a_live_repair(case, monkeypatch):
    """While another process holds the lock, a pending journal is not touched."""
    ft, original, files, tensors = case
    steps = _count_steps(monkeypatch, ft, files, tensors)
    _crash_at(monkeypatch, ft, files, tensors, stop=_first(steps, "wrote row"))
    crashed = tree_digest(ft)
    with write.locked(ft):
        assert write.recover(ft) == []
        assert tree_digest(ft) == {**crashed, ".ftfix/lock": sha256_hex(b"")}
    assert write.recover(ft)
    assert tree_digest(ft) == original


def test_leftovers_are_cleaned_and_healthy_folders_untouched(case, monkeypatch):
    """Temp files and backup folders without a journal are removed; kept backups are not."""
    ft, original, files, tensors = case
    write.commit(ft, files, tensors)  # a kept backup: recovery must leave it alone, lock-free
    kept = tree_digest(ft)
    assert write.recover(ft) == [] and tree_digest(ft) == kept
    orphan = ft / STATE_DIR / BACKUPS / "20990101T000000000000Z-aaaaaa" / "files"
    orphan.mkdir(parents=True)
    (orphan / "0").write_text("x")
    (ft / ".config.json.1234abcd.ftfix-tmp").write_text("half")
    assert write.recover(ft) == []
    assert tree_digest(ft) == kept
    write.undo(ft)
    assert tree_digest(ft) == original


def test_symlinked_weights_are_restored_as_symlinks(pristine, tmp_path, monkeypatch):
    """A symlinked shard (a cache blob) is never written through; rollback puts the link back."""
    ft = _fresh(pristine, tmp_path / "ft")
    blob = tmp_path / "blob.safetensors"
    shutil.move(ft / "model.safetensors", blob)
    (ft / "model.safetensors").symlink_to(blob)
    original, blob_bytes = tree_digest(ft), blob.read_bytes()
    files, tensors = planned_edits(pristine[0], ft)
    steps = _count_steps(monkeypatch, ft, files, tensors)
    for stop in (len(steps) - 1, _first(steps, "grew"), _first(steps, "rewrote")):
        _crash_at(monkeypatch, ft, files, tensors, stop=stop)
        assert write.recover(ft)
        assert (ft / "model.safetensors").is_symlink() and blob.read_bytes() == blob_bytes
        assert tree_digest(ft) == original
    write.commit(ft, files, tensors)
    assert blob.read_bytes() == blob_bytes
    write.undo(ft)
    assert (ft / "model.safetensors").is_symlink() and tree_digest(ft) == original


def test_damaged_backup_is_refused(case, monkeypatch):
    """A backup that no longer matches its journal's sha256 is reported, not restored."""
    ft, _, files, tensors = case
    steps = _count_steps(monkeypatch, ft, files, tensors)
    _crash_at(monkeypatch, ft, files, tensors, stop=_first(steps, "wrote row"))
    backup = next(next((ft / STATE_DIR / BACKUPS).iterdir()).glob("files/*"))
    backup.write_bytes(b"tampered")
    crashed = tree_digest(ft)
    with pytest.raises(RecoveryError, match="does not match the journal"):
        write.recover(ft)
    assert tree_digest(ft) == crashed
