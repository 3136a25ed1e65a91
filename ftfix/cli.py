"""The command line: argument parsing, printing and exit codes (the only module that prints)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from . import __version__, api, registry
from .errors import FtfixError
from .report import Report

__all__ = ["main", "run"]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _codes(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [code.strip() for value in values for code in value.split(",") if code.strip()]


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="base model folder (or Hub id in the local cache)")
    parser.add_argument(
        "finetuned", help="fine-tuned checkpoint, adapter, or trainer output folder"
    )
    parser.add_argument(
        "--select", action="append", metavar="CODES", help="rules to run, e.g. FTX0,FTX201"
    )
    parser.add_argument("--ignore", action="append", metavar="CODES", help="rules to skip")
    parser.add_argument(
        "--format", "--output-format", dest="format", choices=("text", "json"), default="text"
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        default="error",
        help="lowest severity that makes the exit code 1 (default: error)",
    )
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even if problems remain")
    parser.add_argument(
        "--template", metavar="FILE", help="chat template the model was trained with"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `ftfix`."""
    parser = argparse.ArgumentParser(
        prog="ftfix",
        description="Check and repair fine-tuned LLM checkpoints against their base model.",
        epilog="exit codes: 0 no errors remain, 1 errors remain, 2 bad input or usage",
    )
    parser.add_argument("--version", action="version", version=f"ftfix {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log what is done")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="report problems; write nothing")
    _add_common(check)

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
        "--no-backup", action="store_true", help="keep no backup (risky: undo becomes impossible)"
    )
    repair.add_argument(
        "-o", "--output", metavar="OUT", help="write a repaired copy to OUT instead"
    )

    undo = sub.add_parser("undo", help="restore what the last repair changed")
    undo.add_argument("finetuned")

    explain = sub.add_parser("explain", help="print a rule's documentation")
    explain.add_argument("rule", metavar="CODE_OR_NAME")

    rules = sub.add_parser("rules", help="list all rules")
    rules.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _print_report(report: Report, fmt: str, *, diff: bool = False) -> None:
    if fmt == "json":
        print(report.to_json())
    elif diff:
        sys.stdout.write(report.diff)
        print(report.summary(), file=sys.stderr)
    else:
        print(report.render_text())


def _cmd_check(args: argparse.Namespace) -> int:
    report = api.check(
        args.base,
        args.finetuned,
        select=_codes(args.select),
        ignore=_codes(args.ignore) or (),
        fail_on=args.fail_on,
        template=args.template,
    )
    _print_report(report, args.format)
    return EXIT_OK if args.exit_zero and report.exit_code == EXIT_FINDINGS else report.exit_code


def _cmd_repair(args: argparse.Namespace) -> int:
    report = api.repair(
        args.base,
        args.finetuned,
        select=_codes(args.select),
        ignore=_codes(args.ignore) or (),
        unsafe_fixes=args.unsafe_fixes,
        dry_run=args.dry_run or args.diff,
        backup=not args.no_backup,
        output=args.output,
        fail_on=args.fail_on,
        template=args.template,
    )
    _print_report(report, args.format, diff=args.diff)
    if args.diff:
        return EXIT_FINDINGS if report.diff else EXIT_OK
    return EXIT_OK if args.exit_zero and report.exit_code == EXIT_FINDINGS else report.exit_code


def _cmd_undo(args: argparse.Namespace) -> int:
    restored = api.undo(args.finetuned)
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
        import json

        print(json.dumps([
            {"code": f.code, "name": f.name, "severity": f.severity.value, "summary": f.summary()}
            for f in fixers
        ], indent=2))  # fmt: skip
        return EXIT_OK
    for f in fixers:
        print(f"{f.code}  {f.name:<28} {f.severity.value:<8} {f.summary()}")
    return EXIT_OK


_COMMANDS = {
    "check": _cmd_check,
    "repair": _cmd_repair,
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
        print(
            "hint: check permissions and free disk space; "
            "if a repair was interrupted, `ftfix undo` restores it",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ftfix: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        traceback.print_exc()
        print("ftfix: internal error; please report it with the traceback above", file=sys.stderr)
        return EXIT_ERROR


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
