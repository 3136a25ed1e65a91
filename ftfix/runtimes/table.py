"""The runtime table as text (for a terminal) and HTML (for notebooks)."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

from .base import Answer, Verdict

__all__ = ["render_html", "render_text"]

_HEAD = ("runtime", "verdict", "loads", "stops on", "BOS x2", "template")


def _yes(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _short(template: str) -> str:
    # The table must fit a terminal; the JSON keeps the full location.
    return template.replace("tokenizer_config.json[chat_template]", "tokenizer_config key")


def _stops(answer: Answer, *, limit: int = 4) -> str:
    ids = answer.stop_ids
    if not ids:
        return "-"
    if len(ids) == 1 and answer.stop_tokens and answer.stop_tokens[0] != "?":
        return f"{ids[0]} {answer.stop_tokens[0]}"
    more = len(ids) - limit
    return ", ".join(map(str, ids[:limit])) + (f" +{more}" if more > 0 else "")


def _row(answer: Answer) -> tuple[str, ...]:
    return (
        f"{answer.runtime} {answer.version}",
        answer.verdict.value,
        _yes(answer.loads),
        _stops(answer),
        _yes(answer.bos_doubled),
        _short(answer.template),
    )


def render_text(answers: Sequence[Answer]) -> str:
    """An aligned table, one row per runtime, each problem on an indented line below its row."""
    rows = [_HEAD, *(_row(a) for a in answers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    lines = ["Where it will be served (ftfix's model of each runtime's loading rules):"]
    for index, row in enumerate(rows):
        lines.append(
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        )
        if index:
            for reason in answers[index - 1].reasons:
                lines.extend(
                    textwrap.wrap(
                        reason, width=100, initial_indent="    - ", subsequent_indent="      "
                    )
                )
    bad = sum(1 for a in answers if a.verdict is not Verdict.OK)
    lines.append(f"  {len(answers) - bad} of {len(answers)} runtimes ok.")
    return "\n".join(lines)


def render_html(answers: Sequence[Answer]) -> str:
    """The same table as HTML, reasons in the last column."""
    head = "".join(f"<th>{h}</th>" for h in (*_HEAD, "why"))
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in _row(a))
        + f"<td>{'<br>'.join(html.escape(r) for r in a.reasons)}</td></tr>"
        for a in answers
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<p><b>Where it will be served</b></p>{table}"
