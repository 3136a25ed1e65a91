"""Hand-written mutation testing over ftfix's core: does the suite notice when the code is wrong?

    python tools/mutation.py                 # every mutant in tools/mutants.toml
    python tools/mutation.py --only W03 P01  # some of them
    python tools/mutation.py --list          # what each mutant changes

Each mutant in `tools/mutants.toml` is one meaningful mistake (a flipped comparison, a dropped
condition, an early return, a skipped fsync, an off-by-one row index, a changed severity): a
`find` string that must occur exactly once in `file`, its `replace`ment, and the test files that
guard that code. The runner applies one mutant at a time *in the working tree*, runs those tests
(`pytest -x`), and puts the file back byte for byte (also on ^C). A mutant is *killed* when the
tests fail, *survived* when they pass, *stale* when its `find` no longer matches (the code moved:
update the mutant), *equivalent* when the TOML says so (with the reason; not counted).

Running only the guarding tests keeps a mutant to seconds; `--full` runs the whole suite instead.
The score printed last is killed / (killed + survived). Exit 1 when it is below `--goal`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "tools" / "mutants.toml"


@dataclass(frozen=True)
class Mutant:
    id: str
    area: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    what: str
    equivalent: str = ""


def load() -> list[Mutant]:
    data = tomllib.loads(MUTANTS.read_text(encoding="utf-8"))
    mutants = []
    for row in data["mutant"]:
        mutants.append(
            Mutant(
                id=row["id"],
                area=row["area"],
                file=row["file"],
                find=row["find"],
                replace=row["replace"],
                tests=tuple(row["tests"]),
                what=row["what"],
                equivalent=row.get("equivalent", ""),
            )
        )
    ids = [m.id for m in mutants]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        sys.exit(f"duplicate mutant ids: {sorted(dupes)}")
    return mutants


def run_one(mutant: Mutant, *, full: bool, timeout: float) -> tuple[str, float]:
    path = ROOT / mutant.file
    original = path.read_bytes()
    text = original.decode("utf-8")
    if text.count(mutant.find) != 1:
        return "stale", 0.0
    mutated = text.replace(mutant.find, mutant.replace)
    tests = ["tests"] if full else list(mutant.tests)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    previous = signal.getsignal(signal.SIGINT)
    try:
        path.write_text(mutated, encoding="utf-8")
        try:
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, timeout=timeout, check=False
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1  # a mutant that hangs the tests is noticed too
    finally:
        path.write_bytes(original)
        signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - started
    if code == 0:
        return "survived", seconds
    if code in (2, 3, 4, 5):  # interrupted, internal, usage or no tests: not a verdict
        return f"error (pytest exit {code})", seconds
    return "killed", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="mutant ids to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--full", action="store_true", help="run the whole suite per mutant")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--goal", type=float, default=0.9, help="minimum score (0-1)")
    args = parser.parse_args(argv)
    mutants = load()
    if args.only:
        mutants = [m for m in mutants if m.id in set(args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.id}  {m.area:<10} {m.file}: {m.what}")
        return 0
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *sorted({m.file for m in mutants})],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if dirty:
        sys.exit(f"uncommitted changes in mutated files; commit or stash first:\n{dirty}")
    rows = []
    counts: dict[str, int] = {}
    for m in mutants:
        if m.equivalent:
            verdict, seconds = "equivalent", 0.0
        else:
            verdict, seconds = run_one(m, full=args.full, timeout=args.timeout)
        key = verdict.split(" ")[0]
        counts[key] = counts.get(key, 0) + 1
        rows.append((m, verdict, seconds))
        print(f"{m.id:<5} {verdict:<10} {seconds:6.1f} s  {m.area:<10} {m.what}", flush=True)
    by_area: dict[str, list[int]] = {}
    for m, verdict, _ in rows:
        tally = by_area.setdefault(m.area, [0, 0])
        if verdict == "killed":
            tally[0] += 1
        if verdict in ("killed", "survived"):
            tally[1] += 1
    killed, judged = counts.get("killed", 0), counts.get("killed", 0) + counts.get("survived", 0)
    score = killed / judged if judged else 0.0
    print()
    print("| area | killed |")
    print("|---|---|")
    for area, (k, n) in sorted(by_area.items()):
        print(f"| {area} | {k}/{n} |")
    print()
    print(
        f"score {killed}/{judged} = {score:.0%} killed; "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    for m, verdict, _ in rows:
        if verdict != "killed":
            extra = f" ({m.equivalent})" if m.equivalent else ""
            print(f"  {m.id} {verdict}: {m.file}: {m.what}{extra}")
    return 0 if score >= args.goal and not counts.get("stale") else 1


if __name__ == "__main__":
    raise SystemExit(main())
