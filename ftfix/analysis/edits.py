"""Build edits (data, never disk writes) in the layout the fine-tuned checkpoint already uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..findings import FileEdit
from ..io import jsonfmt
from ..io.checkpoint import (
    CHAT_TEMPLATE_DIR,
    CHAT_TEMPLATE_FILE,
    PROCESSOR_TEMPLATE_FILE,
    TOKENIZER_CONFIG,
    Checkpoint,
)

__all__ = ["edit_chat_templates", "edit_json", "edit_text"]


def edit_text(target: Checkpoint, rel: str, text: str) -> FileEdit | None:
    """Write `text` (UTF-8) to `rel`; `None` when the file already holds exactly that."""
    after = text.encode("utf-8")
    before = target.read_bytes(rel)
    return None if before == after else FileEdit(rel, before, after)


def edit_json(
    target: Checkpoint,
    rel: str,
    updates: Mapping[str, Any],
    *,
    remove: tuple[str, ...] = (),
) -> FileEdit | None:
    """Set top-level keys of a JSON file, keeping key order and the file's formatting.

    A key already present keeps its position; a new key goes last, or into its sorted place
    when the file's keys are sorted (transformers 4 saved with `sort_keys=True`). Returns `None`
    when nothing changes, so a healthy file is never rewritten.
    """
    before = target.read_bytes(rel)
    current = dict(target.json(rel) or {})
    value = {k: v for k, v in current.items() if k not in remove}
    value.update(updates)
    keys = list(current)
    if len(keys) > 1 and keys == sorted(keys):
        value = dict(sorted(value.items()))
    if value == current and before is not None:
        return None
    return FileEdit(rel, before, jsonfmt.dumps(value, like=before))


def edit_chat_templates(target: Checkpoint, templates: Mapping[str, str]) -> list[FileEdit]:
    """Store `templates` (name -> source, `default` first) wherever `target` keeps templates.

    Every location that already holds a template is updated, so transformers (which prefers
    `chat_template.jinja`) and converters that read `tokenizer_config.json` agree. With no
    template anywhere, the folder's layout decides: v5 writes `chat_template.jinja` and
    `additional_chat_templates/NAME.jinja`; v4 writes the `chat_template` key (a string, or a
    list of `{"name", "template"}` for several).
    """
    edits: list[FileEdit | None] = []
    locations = target.template_locations()
    default = templates.get("default")
    named = {k: v for k, v in templates.items() if k != "default"}
    if not locations:
        if target.layout == "v4":
            edits.append(
                edit_json(target, TOKENIZER_CONFIG, {"chat_template": _key_value(templates)})
            )
        else:
            if default is not None:
                edits.append(edit_text(target, CHAT_TEMPLATE_FILE, default))
            edits.extend(
                edit_text(target, f"{CHAT_TEMPLATE_DIR}/{name}.jinja", source)
                for name, source in named.items()
            )
        return [e for e in edits if e is not None]

    paths = {loc.path for loc in locations}
    if default is not None and CHAT_TEMPLATE_FILE in paths:
        edits.append(edit_text(target, CHAT_TEMPLATE_FILE, default))
    if CHAT_TEMPLATE_FILE in paths or any(p.startswith(CHAT_TEMPLATE_DIR + "/") for p in paths):
        edits.extend(
            edit_text(target, f"{CHAT_TEMPLATE_DIR}/{name}.jinja", source)
            for name, source in named.items()
        )
    if TOKENIZER_CONFIG in paths:
        edits.append(edit_json(target, TOKENIZER_CONFIG, {"chat_template": _key_value(templates)}))
    if PROCESSOR_TEMPLATE_FILE in paths and default is not None:
        edits.append(edit_json(target, PROCESSOR_TEMPLATE_FILE, {"chat_template": default}))
    return [e for e in edits if e is not None]


def _key_value(templates: Mapping[str, str]) -> str | list[dict[str, str]]:
    if set(templates) == {"default"}:
        return templates["default"]
    return [{"name": name, "template": source} for name, source in templates.items()]
