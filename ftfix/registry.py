"""The rule registry: codes, names, validation at import time, and select/ignore resolution."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from .errors import UnknownCodeError

if TYPE_CHECKING:
    from .rules.base import Fixer

__all__ = ["REQUIRED_SECTIONS", "all_fixers", "get", "register", "resolve"]

REQUIRED_SECTIONS = (
    "## What it checks",
    "## Why is this bad?",
    "## Example",
    "## Fix",
    "## Fix safety",
)
_CODE = re.compile(r"^FTX\d{3}$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_REGISTRY: dict[str, Fixer] = {}

F = TypeVar("F", bound="type[Fixer]")


def register(cls: F) -> F:
    """Class decorator: validate a rule and add one instance of it to the registry.

    Raises:
        `ValueError`: bad code or name format, a duplicate code or name, or a docstring that
            lacks one of `REQUIRED_SECTIONS`. This fails `import ftfix` in our CI, not a user's run.
    """
    code, name = cls.code, cls.name
    if not _CODE.match(code):
        raise ValueError(f"{cls.__name__}: code {code!r} does not match FTXnnn")
    if not _NAME.match(name):
        raise ValueError(f"{cls.__name__}: name {name!r} is not kebab-case")
    if code in _REGISTRY:
        raise ValueError(
            f"{cls.__name__}: code {code} is already used by {type(_REGISTRY[code]).__name__}"
        )
    if any(fixer.name == name for fixer in _REGISTRY.values()):
        raise ValueError(f"{cls.__name__}: name {name!r} is already registered")
    doc = cls.__doc__ or ""
    missing = [section for section in REQUIRED_SECTIONS if section not in doc]
    if missing:
        raise ValueError(f"{cls.__name__}: docstring lacks sections {missing}")
    expected_class = "".join(part.capitalize() for part in name.split("-"))
    if cls.__name__ != expected_class:
        raise ValueError(f"{cls.__name__}: class name should be {expected_class} (from {name!r})")
    _REGISTRY[code] = cls()
    return cls


def _load() -> None:
    # Importing the package registers the rules listed in it, in one greppable place.
    from . import rules  # noqa: F401


def all_fixers() -> list[Fixer]:
    """Every registered rule, ordered by code."""
    _load()
    return [_REGISTRY[code] for code in sorted(_REGISTRY)]


def get(code_or_name: str) -> Fixer:
    """The rule with this code (`FTX001`, case-insensitive) or name (`missing-chat-template`).

    Raises:
        `UnknownCodeError`: no rule has that code or name.
    """
    _load()
    key = code_or_name.strip()
    if key.upper() in _REGISTRY:
        return _REGISTRY[key.upper()]
    for fixer in _REGISTRY.values():
        if fixer.name == key.lower():
            return fixer
    raise UnknownCodeError(
        code_or_name, "no rule with this code or name", hint="`ftfix rules` lists them"
    )


def _matches(fixer: Fixer, selectors: Iterable[str]) -> bool:
    return any(
        fixer.code.startswith(sel.upper()) or fixer.name == sel.lower() or sel.upper() == "ALL"
        for sel in selectors
    )


def resolve(select: Sequence[str] | None = None, ignore: Sequence[str] = ()) -> list[Fixer]:
    """The rules to run: `select` (default all) minus `ignore`, by code prefix or name.

    Raises:
        `UnknownCodeError`: a selector matches no rule (a typo should not silently run nothing).
    """
    fixers = all_fixers()
    for sel in [*(select or ()), *ignore]:
        if not any(_matches(f, [sel]) for f in fixers):
            raise UnknownCodeError(
                sel, "matches no rule code or name", hint="`ftfix rules` lists them"
            )
    chosen = [f for f in fixers if select is None or _matches(f, select)]
    return [f for f in chosen if not _matches(f, ignore)]
