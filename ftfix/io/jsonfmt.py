"""Read JSON config files strictly and write them back in the formatting they came with."""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["JSONFormat", "dumps", "loads_object"]

_INDENT = re.compile(rb"\n([ \t]+)\S")


def _reject_constant(name: str) -> float:
    # NaN/Infinity are not JSON; Python's json would accept them silently.
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text: str) -> float:
    # 1e400 parses to inf, which no config means and which breaks arithmetic downstream.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads_object(data: bytes) -> dict[str, Any]:
    """Parse `data` as a JSON object (UTF-8, optional BOM), keeping key order.

    Raises:
        `ValueError`: not UTF-8, not JSON, or not an object (the caller adds the path).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise ValueError("invalid JSON: nested too deeply") from exc
    except ValueError as exc:  # an integer of more than 4,300 digits, a float like 1e400
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    return value


class JSONFormat:
    """The indentation, escaping and final newline of an existing JSON file.

    transformers writes `indent=2`, `ensure_ascii=False`, `sort_keys=True` plus a final newline;
    other tools differ. Writing an edited file in its own format keeps the diff to the keys we
    changed, and a parse-and-dump with no change gives the same bytes.
    """

    def __init__(
        self, indent: int | str | None = 2, ensure_ascii: bool = False, newline: bool = True
    ):
        self.indent = indent
        self.ensure_ascii = ensure_ascii
        self.newline = newline

    @classmethod
    def sniff(cls, data: bytes | None) -> JSONFormat:
        """Guess the format of `data`; transformers' format when there is no file yet."""
        if not data:
            return cls()
        match = _INDENT.search(data)
        indent: int | str | None
        if match is None:
            indent = None
        else:
            unit = match.group(1).decode()
            indent = len(unit) if set(unit) == {" "} else unit
        ensure_ascii = b"\\u" in data and not any(b > 127 for b in data)
        return cls(indent=indent, ensure_ascii=ensure_ascii, newline=data.endswith(b"\n"))


def dumps(value: dict[str, Any], *, like: bytes | None = None) -> bytes:
    r"""Serialise `value` in the format of `like` (the file's current bytes, if any).

    Example:
        >>> dumps({"a": 1}, like=b'{\\n    "b": 2\\n}')
        b'{\\n    "a": 1\\n}'
    """
    fmt = JSONFormat.sniff(like)
    _check_finite(value)
    text = json.dumps(value, indent=fmt.indent, ensure_ascii=fmt.ensure_ascii)
    if fmt.newline:
        text += "\n"
    return text.encode("utf-8")


def _check_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("refusing to write a non-finite number to JSON")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list):
        for item in value:
            _check_finite(item)
