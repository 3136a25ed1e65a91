"""Project configuration: `[tool.ftfix]` in pyproject.toml, or an `ftfix.toml`, found as ruff does.

The search starts in a directory (the working directory for the CLI) and walks up to the
filesystem root; in each directory `ftfix.toml` wins over `pyproject.toml`, and a
`pyproject.toml` without a `[tool.ftfix]` table is passed over (as ruff passes over one without
`[tool.ruff]`). The first file found is the configuration; nothing is merged across directories.

Keys (the same in both files; at the top level of `ftfix.toml`):

```toml
[tool.ftfix]
select = ["FTX0", "FTX2"]          # rules to run (codes, code prefixes, names); default all
ignore = ["FTX204"]                # rules to skip
fail-on = "warning"                # lowest severity that fails (error, warning, info)

[tool.ftfix.per-path-ignores]      # glob (relative to the file's folder) -> rules to skip
"models/legacy-*" = ["FTX203"]
```

Command-line flags layer over the file the way ruff's do: `--select` replaces the file's
selection (and its `ignore`), `--ignore` adds to the file's `ignore`, `--fail-on` replaces
`fail-on`. Per-path ignores always apply.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .errors import FtfixError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

__all__ = ["CONFIG_FILES", "Config", "Selection", "find", "load", "read"]

CONFIG_FILES = ("ftfix.toml", "pyproject.toml")
_SEVERITIES = ("error", "warning", "info")
_KEYS = ("select", "ignore", "fail-on", "per-path-ignores")


@dataclass(frozen=True)
class Selection:
    """The rules to run and what fails, after the file and the flags are layered.

    Args:
        select (`list[str]`, *optional*): rules to run; `None` runs all.
        ignore (`list[str]`): rules to skip.
        fail_on (`str`): the lowest severity that makes the exit code 1.
    """

    select: list[str] | None
    ignore: list[str]
    fail_on: str


@dataclass(frozen=True)
class Config:
    """One configuration file's settings (all empty when there is no file).

    Args:
        path (`Path`, *optional*): the file read, `None` when none was found.
        select (`list[str]`, *optional*): `select` of the file.
        ignore (`list[str]`): `ignore` of the file.
        fail_on (`str`, *optional*): `fail-on` of the file.
        per_path_ignores (`dict[str, list[str]]`): glob -> rules skipped for matching folders.
    """

    path: Path | None = None
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    fail_on: str | None = None
    per_path_ignores: dict[str, list[str]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The folder per-path globs are relative to: the file's, else the working directory."""
        return self.path.parent if self.path is not None else Path.cwd()

    def selection(
        self,
        target: str | os.PathLike[str] | None = None,
        *,
        select: Sequence[str] | None = None,
        ignore: Sequence[str] = (),
        fail_on: str | None = None,
    ) -> Selection:
        """The file's settings with the command line's over them, for one checkpoint folder.

        Args:
            target (`str` or `os.PathLike`, *optional*): the checkpoint folder, for per-path
                ignores.
            select (`Sequence[str]`, *optional*): `--select`: replaces the file's select and
                ignore.
            ignore (`Sequence[str]`): `--ignore`: added to the file's ignore.
            fail_on (`str`, *optional*): `--fail-on`: replaces the file's `fail-on`.
        """
        if select is not None:
            chosen: list[str] | None = list(select)
            skipped = list(ignore)
        else:
            chosen = None if self.select is None else list(self.select)
            skipped = [*self.ignore, *ignore]
        if target is not None:
            skipped += self.ignores_for(target)
        return Selection(chosen, skipped, fail_on or self.fail_on or "error")

    def ignores_for(self, target: str | os.PathLike[str]) -> list[str]:
        """The rules per-path ignores skip for this checkpoint folder.

        A glob matches the folder's path relative to the configuration's folder (POSIX
        separators; `*` also matches `/`, as in fnmatch), its absolute path, or its name.
        """
        folder = Path(os.fspath(target)).expanduser().absolute()
        names = {folder.as_posix(), folder.name}
        # Outside the project only the absolute path and the name can match.
        with contextlib.suppress(ValueError):
            names.add(folder.relative_to(self.root.absolute()).as_posix())
        found: list[str] = []
        for pattern, codes in self.per_path_ignores.items():
            glob = pattern.rstrip("/")
            if any(fnmatch.fnmatchcase(name, glob) for name in names):
                found += [c for c in codes if c not in found]
        return found


def find(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file for `start` (default: the working directory), or `None`."""
    here = Path(os.fspath(start) if start is not None else os.getcwd()).absolute()
    for folder in (here, *here.parents):
        own = folder / "ftfix.toml"
        if own.is_file():
            return own
        project = folder / "pyproject.toml"
        if project.is_file() and _has_tool_table(project):
            return project
    return None


def _has_tool_table(path: Path) -> bool:
    try:
        data = _parse(path)
    except FtfixError:
        return True  # a broken pyproject is reported, not silently passed over
    tool = data.get("tool")
    return isinstance(tool, dict) and "ftfix" in tool


def _parse(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(path, f"not valid TOML: {exc}", hint="fix the file's syntax") from exc
    except OSError as exc:
        raise UsageError(path, f"cannot be read: {exc.strerror or exc}") from exc


def _strings(path: Path, key: str, value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(path, f"{key} must be a list of rule codes or names, got {value!r}")
    return [v.strip() for v in value if v.strip()]


def read(path: str | os.PathLike[str]) -> Config:
    """Read one configuration file (`ftfix.toml`, or `pyproject.toml`'s `[tool.ftfix]`).

    Raises:
        `UsageError`: the file is not TOML, has an unknown key or a value of the wrong type.
        `UnknownCodeError`: a rule named in it does not exist.
    """
    file = Path(os.fspath(path))
    data = _parse(file)
    if file.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("ftfix", {}) if isinstance(tool, dict) else {}
        where = "[tool.ftfix]"
    else:
        table, where = data, "the file"
    if not isinstance(table, dict):
        raise UsageError(file, f"{where} must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise UsageError(
            file,
            f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: {', '.join(unknown)}",
            hint=f"ftfix reads {', '.join(_KEYS)}",
        )
    fail_on = table.get("fail-on")
    if fail_on is not None and fail_on not in _SEVERITIES:
        raise UsageError(file, f"fail-on must be one of {', '.join(_SEVERITIES)}, got {fail_on!r}")
    per_path = table.get("per-path-ignores", {})
    if not isinstance(per_path, Mapping):
        raise UsageError(file, "per-path-ignores must be a table of glob = [rules]")
    config = Config(
        path=file,
        select=_strings(file, "select", table["select"]) if "select" in table else None,
        ignore=_strings(file, "ignore", table.get("ignore", [])),
        fail_on=fail_on,
        per_path_ignores={
            str(glob): _strings(file, f"per-path-ignores.{glob!r}", codes)
            for glob, codes in per_path.items()
        },
    )
    # A typo in the file should fail the run, naming the file, not run a different rule set.
    by_path = [code for codes in config.per_path_ignores.values() for code in codes]
    named = [*(config.select or ()), *config.ignore, *by_path]
    for selector in named:
        try:
            registry.resolve([selector])
        except FtfixError as exc:
            raise UsageError(
                file, f"{selector!r} matches no rule code or name", hint=exc.hint
            ) from exc
    return config


def load(start: str | os.PathLike[str] | None = None) -> Config:
    """The configuration found from `start` (default: the working directory), or an empty one."""
    path = find(start)
    return read(path) if path is not None else Config()
