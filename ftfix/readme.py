"""Generate the README's rules table from the rules' docstrings.

Run `python -m ftfix.readme README.md` after changing a rule's docstring.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .registry import all_fixers

__all__ = ["rules_table", "section", "update_readme"]

_START, _END = "<!-- rules:start -->\n", "<!-- rules:end -->"


def section(doc: str, title: str) -> str:
    """The text of a `## title` section of a rule docstring, joined onto one line."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    return " ".join(match.group(1).split()) if match else ""


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.:])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(":.")


def rules_table() -> str:
    """The Markdown table: code | name | severity | what it finds | fix | safety."""
    lines = [
        "| code | name | severity | what it finds | fix | safety |",
        "|---|---|---|---|---|---|",
    ]
    for fixer in all_fixers():
        doc = fixer.documentation()
        safety = _first_sentence(section(doc, "Fix safety")).split()[0].lower()
        safety = "none" if safety in ("no", "none") else safety
        lines.append(
            f"| {fixer.code} | `{fixer.name}` | {fixer.severity_label()} | {fixer.summary()} "
            f"| {_first_sentence(section(doc, 'Fix'))} | {safety} |"
        )
    return "\n".join(lines) + "\n"


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers in `path`; return whether it changed."""
    text = path.read_text("utf-8")
    start = text.index(_START) + len(_START)
    end = text.index(_END)
    new = text[:start] + rules_table() + text[end:]
    if new != text:
        path.write_text(new, "utf-8")
    return new != text


if __name__ == "__main__":  # pragma: no cover - developer tool
    changed = update_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
    print("README.md updated" if changed else "README.md already in sync")
