"""The command line: argument parsing, printing and exit codes (the only module that prints)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from . import __version__, api, config, formats, registry
from .batch import BatchResult, expand_targets, run_many
from .errors import FtfixError, NothingToUndoError, UsageError, is_panic
from .report import Report

__all__ = ["main", "run"]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_RULE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _codes(values: list[str] | None, *, option: str = "--select") -> list[str] | None:
    if values is None:
        return None
    codes = [code.strip() for value in values for code in value.split(",") if code.strip()]
    if not codes:
        raise UsageError(option, "names no rule", hint="pass codes, prefixes or names: FTX0,FTX201")
    return codes


def _add_global(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the subcommand (`ftfix check -v ...`); SUPPRESS keeps the value given
    # before it when the flag is not repeated here.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for errors")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log what is done")  # fmt: skip


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="[BASE] FINETUNED",
        help="base model folder or Hub id, then one or more fine-tuned checkpoints, adapters "
        "or trainer output folders; with a single path the base is the one the folder names "
        "(or none: the checks that need it are skipped, with a note)",
    )
    parser.add_argument(
        "--all-checkpoints", action="store_true", help="every checkpoint-N of a trainer folder"
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, help="checkpoints to process in parallel"
    )
    parser.add_argument(
        "--select", action="append", metavar="CODES", help="rules to run, e.g. FTX0,FTX201"
    )
    parser.add_argument("--ignore", action="append", metavar="CODES", help="rules to skip")
    parser.add_argument(
        "--format",
        "--output-format",
        dest="format",
        choices=("text", "json", *formats.FORMATS),
        default="text",
        help="text, json, github (workflow annotations), sarif (code scanning), junit",
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        default=None,
        help="lowest severity that makes the exit code 1 (default: the config's, else error)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="ftfix.toml or pyproject.toml to use instead of searching"
    )
    parser.add_argument("--isolated", action="store_true", help="read no configuration file")
    parser.add_argument(
        "--files",
        action="store_true",
        help="paths may be files (as pre-commit passes them): each stands for its folder, "
        "checked once; a base, if any, is the first path and a folder",
    )
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even if problems remain")
    parser.add_argument(
        "--template", metavar="FILE", help="chat template the model was trained with"
    )
    parser.add_argument(
        "--gguf", metavar="FILE.gguf", help="a GGUF file converted from FINETUNED: check it"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `ftfix`."""
    parser = argparse.ArgumentParser(
        prog="ftfix",
        description="Check and repair fine-tuned LLM checkpoints against their base model.",
        epilog="exit codes: 0 no errors remain, 1 errors remain, 2 bad input or usage, "
        "3 a check failed internally (the others ran)",
    )
    parser.add_argument("--version", action="version", version=f"ftfix {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log what is done")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="report problems; write nothing")
    _add_common(check)
    check.add_argument(
        "--runtimes",
        action="store_true",
        help="also show, per runtime (transformers, vLLM, llama.cpp, Ollama, ...), whether it "
        "loads the folder, which template it renders and which ids stop it",
    )
    check.add_argument(
        "--revision", metavar="REV", help="for a fine-tune on the Hub: branch, tag or commit"
    )
    check.add_argument(
        "--trained-on", metavar="FILE.jsonl", help="training rows as the trainer fed them"
    )

    repair = sub.add_parser("repair", help="apply safe fixes (unsafe ones with --unsafe-fixes)")
    _add_common(repair)
    mode = repair.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="show what would change; write nothing"
    )
    mode.add_argument(
        "--diff", action="store_true", help="print the diff; write nothing; exit 1 if any"
    )
    repair.add_argument("--unsafe-fixes", action="store_true", help="also apply unsafe fixes")
    repair.add_argument(
        "--pr",
        action="store_true",
        help="FINETUNED on the Hub: open one pull request with the safe small-file fixes",
    )
    repair.add_argument(
        "--revision", metavar="REV", help="with --pr: the revision to check and fix"
    )
    repair.add_argument(
        "--no-backup", action="store_true", help="keep no backup (risky: undo becomes impossible)"
    )
    repair.add_argument(
        "-o", "--output", metavar="OUT", help="write a repaired copy to OUT instead"
    )
    repair.add_argument(
        "--init",
        choices=("mean", "subtokens"),
        default="mean",
        help="unsafe embedding repairs: mean of trained rows, or of the token's pieces' rows",
    )

    undo = sub.add_parser("undo", help="restore what the last repair changed")
    undo.add_argument("finetuned")

    explain = sub.add_parser("explain", help="print a rule's documentation")
    explain.add_argument("rule", metavar="CODE_OR_NAME")

    verify = sub.add_parser(
        "verify", help="load the model, generate, and measure whether answers stop (needs torch)"
    )
    verify.add_argument("base")
    verify.add_argument("finetuned")
    verify.add_argument("--prompts", metavar="FILE.jsonl", help="one conversation per line")
    verify.add_argument("--max-new-tokens", type=int, default=64)
    verify.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    verify.add_argument(
        "--compare-before", action="store_true", help="also measure a repaired temporary copy"
    )
    verify.add_argument("--min-stop-rate", type=float, default=0.9, help="exit 1 below this")
    verify.add_argument("--unsafe-fixes", action="store_true", help="for --compare-before")
    verify.add_argument("--trust-remote-code", action="store_true")
    verify.add_argument("--format", choices=("text", "json"), default="text")

    rules = sub.add_parser("rules", help="list all rules")
    rules.add_argument("--format", choices=("text", "json"), default="text")
    for choice in sub.choices.values():
        _add_global(choice)
    return parser


_COLOURS = {"error": "31", "warning": "33", "info": "36", "[fixed]": "32", "[*]": "32"}


def _colour(text: str) -> str:
    """Severity words and fix markers in colour, when stdout is a terminal and NO_COLOR is unset."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    import re

    def paint(match: re.Match[str]) -> str:
        word = match.group(2)
        return f"{match.group(1)}\033[{_COLOURS[word]}m{word}\033[0m"

    text = re.sub(r"(\bFTX\d{3} )(error|warning|info)\b", paint, text)
    return re.sub(r"( )(\[fixed\]|\[\*\])(?= )", paint, text)


def _print_report(report: Report, fmt: str, *, diff: bool = False, debug: bool = False) -> None:
    if fmt == "json":
        print(report.to_json())
    elif diff:
        sys.stdout.write(report.diff)
        print(report.summary(), file=sys.stderr)
    else:
        print(_colour(report.render_text(debug=debug)))


def _split(paths: Sequence[str], *, files: bool = False) -> tuple[str | None, list[str]]:
    """(base, targets) of the command line's paths.

    With `files`, a file stands for its folder (pre-commit passes the files it changed), and
    when the first path is a file there is no base among the paths.
    """
    if not files:
        return (None, list(paths)) if len(paths) == 1 else (paths[0], list(paths[1:]))
    has_base = len(paths) > 1 and not Path(paths[0]).is_file()
    targets: list[str] = []
    for path in paths[1:] if has_base else paths:
        if not Path(path).is_file():
            targets.append(path)
        elif (folder := os.path.dirname(path) or ".") not in targets:  # one run per folder
            targets.append(folder)
    return (paths[0] if has_base else None), targets


def _config(args: argparse.Namespace) -> config.Config:
    if args.isolated:
        return config.Config()
    return config.read(args.config) if args.config else config.load()


def _run_targets(args: argparse.Namespace, func: Callable[..., Report], **kwargs: Any) -> int:
    """Run check or repair on each target; print each report; return the worst exit code."""
    base, targets = _split(args.paths, files=args.files)
    targets = expand_targets(targets, all_checkpoints=args.all_checkpoints)
    diff = getattr(args, "diff", False)
    if len(targets) > 1 and getattr(args, "output", None):
        raise UsageError("--output", "takes one fine-tuned checkpoint, got several")
    settings = _config(args)

    def selection(target: str) -> config.Selection:
        return settings.selection(
            target,
            select=_codes(args.select),
            ignore=_codes(args.ignore, option="--ignore") or (),
            fail_on=args.fail_on,
        )

    results: list[BatchResult] = []
    for chosen, group in groupby(targets, key=selection):  # per-path ignores differ by folder
        options: dict[str, Any] = {
            "select": chosen.select,
            "ignore": chosen.ignore,
            "fail_on": chosen.fail_on,
        }
        if len(targets) == 1:  # bad input is an error of the run (exit 2), not of a target
            results.append(BatchResult(targets[0], func(base, targets[0], **options, **kwargs)))
        else:
            results += run_many(func, base, list(group), jobs=args.jobs, **options, **kwargs)
    codes = [_exit(args, r.report) if r.report else EXIT_ERROR for r in results]
    for result in results:
        if result.report is None:
            print(f"ftfix: error: {result.error}", file=sys.stderr)
    reports = [r.report for r in results if r.report is not None]
    if args.format in formats.FORMATS:
        print(formats.render(args.format, reports))
    elif args.format == "json" and len(targets) > 1:
        print(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False))
    else:
        for result in results:
            if result.report is not None:
                if len(targets) > 1:
                    print(f"== {result.target}")
                _print_report(result.report, args.format, diff=diff, debug=args.debug)
    return max(codes, default=EXIT_OK)


def _exit(args: argparse.Namespace, report: Report) -> int:
    if getattr(args, "diff", False):  # like ruff: --diff fails when there is something to change
        return EXIT_FINDINGS if report.diff else EXIT_OK
    if args.exit_zero and report.exit_code == EXIT_FINDINGS:
        return EXIT_OK
    return report.exit_code


def _cmd_check(args: argparse.Namespace) -> int:
    return _run_targets(
        args,
        api.check,
        template=args.template,
        gguf=args.gguf,
        runtimes=args.runtimes,
        revision=args.revision,
        trained_on=args.trained_on,
    )


def _cmd_repair(args: argparse.Namespace) -> int:
    return _run_targets(
        args,
        api.repair,
        unsafe_fixes=args.unsafe_fixes,
        pr=args.pr,
        revision=args.revision,
        dry_run=args.dry_run or args.diff,
        backup=not args.no_backup,
        output=args.output,
        template=args.template,
        init=args.init,
        gguf=args.gguf,
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    report = verify(
        args.base,
        args.finetuned,
        prompts=args.prompts,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        compare_before=args.compare_before,
        min_stop_rate=args.min_stop_rate,
        unsafe_fixes=args.unsafe_fixes,
        trust_remote_code=args.trust_remote_code,
    )
    print(report.to_json() if args.format == "json" else report.render_text())
    return report.exit_code


def _cmd_undo(args: argparse.Namespace) -> int:
    try:
        restored = api.undo(args.finetuned)
    except NothingToUndoError:
        print(f"Nothing to undo in {args.finetuned}.")
        return EXIT_OK
    for rel in restored:
        print(f"restored {rel}")
    print(f"Restored {len(restored)} file{'s' if len(restored) != 1 else ''}.")
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    print(api.explain(args.rule), end="")
    return EXIT_OK


def _cmd_rules(args: argparse.Namespace) -> int:
    fixers = registry.all_fixers()
    if args.format == "json":
        print(json.dumps([
            {"code": f.code, "name": f.name, "severity": f.severity_label(), "summary": f.summary()}
            for f in fixers
        ], indent=2))  # fmt: skip
        return EXIT_OK
    width = max(len(f.name) for f in fixers)
    for f in fixers:
        print(f"{f.code}  {f.name:<{width}}  {f.severity_label():<13} {f.summary()}")
    return EXIT_OK


_COMMANDS = {
    "check": _cmd_check,
    "repair": _cmd_repair,
    "verify": _cmd_verify,
    "undo": _cmd_undo,
    "explain": _cmd_explain,
    "rules": _cmd_rules,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (0, 1, 2 or 130)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 for --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="ftfix: %(levelname)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except FtfixError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"ftfix: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ftfix: error: {where}{exc.strerror or exc}", file=sys.stderr)
        if isinstance(exc, FileExistsError):
            print("hint: pass a new or empty folder to -o/--output", file=sys.stderr)
        else:
            print("hint: check the path, permissions and free disk space", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ftfix: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        traceback.print_exc()
        print("ftfix: internal error; please report it with the traceback above", file=sys.stderr)
        return EXIT_ERROR


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
