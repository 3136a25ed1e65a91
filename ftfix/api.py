"""The Python API: check, repair, undo and explain one fine-tuned checkpoint against its base."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import registry, write
from .analysis.context import Context, Options
from .errors import (
    CheckpointNotFoundError,
    FtfixError,
    IncompatibleCheckpointsError,
    InvalidCheckpointError,
    UsageError,
)
from .findings import Severity
from .io import jsonfmt
from .io.checkpoint import Checkpoint, Kind, _checkpoint_dirs, is_hub_id, offline, resolve_path
from .io.gguf import is_gguf_path
from .io.limits import JSON_LIMIT, TEMPLATE_LIMIT, read_limited
from .io.remote import HubCheckpoint, open_hub
from .io.samples import read_samples
from .plan import Plan, build
from .report import Mode, Report
from .rules.base import Fixer
from .runtimes import answers as answer_runtimes

__all__ = ["check", "explain", "repair", "undo"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _open(path: PathLike, *, role: str, writer: bool = False) -> Checkpoint:
    """Open a checkpoint; a `writer` first rolls back what an interrupted ftfix run left in it.

    Only the fine-tuned checkpoint of a `repair` or `undo` (`writer`) is ever recovered, and only
    from a journal this user's ftfix wrote in that folder; readers (`check`, `--dry-run`, the
    base) never act on a journal (FTX920 reports an unfinished one). A `writer` fails at once
    with `LockedError` when another process is writing to the folder. Files that cannot be read
    do not stop the run: the checkpoint lists them in `problems` (the file rules report them,
    the rules that need them are skipped).
    """
    folder = resolve_path(path, role=role)
    writer = writer and role == "finetuned"
    if writer:
        write.recover(folder, writer=True)
    display = os.fspath(path)
    ckpt = Checkpoint.open(folder, role=role, display=display)
    if writer and ckpt.root != folder and write.recover(ckpt.root, writer=True):  # a trainer
        ckpt = Checkpoint.open(folder, role=role, display=display)  # root's newest checkpoint
    return ckpt


@dataclass
class _Base:
    """The base a run compares with, where it came from, or why there is none."""

    checkpoint: Checkpoint | None
    name: str | None = None
    source: str | None = None
    why_not: str = ""


_SMALL_FILES = "--include '*.json' '*.jinja' '*.model' '*.txt'"
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.DOTALL)


def _front_matter_base(text: str) -> str | None:
    """`base_model:` of a model card's YAML front matter (a string or the first list item)."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return None
    lines = match.group(1).splitlines()
    for i, line in enumerate(lines):
        key, _, value = line.partition(":")
        if key.strip() != "base_model" or line[:1].isspace():
            continue
        value = value.strip()
        if not value and i + 1 < len(lines):  # a YAML list on the next lines
            value = lines[i + 1].strip().removeprefix("-").strip()
        value = value.strip("'\"")
        return value or None
    return None


def _declared_in(folder: Path, label: str) -> list[tuple[str, str]]:
    """(value, where) for each base a folder's own files name, in the order a person looks."""
    found: list[tuple[str, str]] = []
    keys = (("adapter_config.json", "base_model_name_or_path"), ("config.json", "_name_or_path"))
    for name, key in keys:
        try:
            data = jsonfmt.loads_object(read_limited(folder / name, JSON_LIMIT) or b"")
        except (OSError, ValueError):
            continue
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            found.append((value.strip(), f"{label}{name}"))
    try:
        card = (read_limited(folder / "README.md", JSON_LIMIT) or b"").decode("utf-8")
    except (OSError, UnicodeDecodeError):
        card = ""
    value = _front_matter_base(card)
    if value:
        found.append((value, f"{label}README.md"))
    return found


def _candidates(target: Checkpoint, given: Path) -> list[tuple[str, str]]:
    found = _declared_in(target.root, "")
    # A trainer root names its base in its own files (the final adapter or model card).
    for root in {given, target.root.parent}:
        if root.resolve() != target.root.resolve() and _checkpoint_dirs(root):
            found += _declared_in(root, f"{root.name}/")
    return found


def _reach(value: str, target: Checkpoint) -> tuple[Checkpoint | None, str]:
    """Open a declared base, or say why it cannot be had here."""
    beside = target.root / value
    local = beside if not os.path.isabs(value) and beside.is_dir() else Path(value).expanduser()
    if local.is_dir():
        if local.resolve() == target.root.resolve():
            return None, "is the fine-tune itself"
        try:
            return _open(local, role="base"), ""
        except FtfixError as exc:
            return None, f"cannot be opened ({exc.reason})"
    if not os.path.isabs(value) and is_hub_id(value):
        try:
            return _open(value, role="base"), ""
        except FtfixError:
            if offline():
                return None, (
                    "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; fetch its "
                    f"small files (no weights) with `hf download {value} {_SMALL_FILES}`"
                )
            return None, (
                "could not be downloaded (gated, private, misspelled, or no network); after "
                f"`hf auth login` if it is gated, run `hf download {value} {_SMALL_FILES}`"
            )
    return None, "is a path on the machine it was trained on and does not exist here"


def _find_base(base: PathLike | None, target: Checkpoint, given: Path) -> _Base:
    if base is not None:
        source = _open(base, role="base")
        if source.root.resolve() == target.root.resolve():
            raise IncompatibleCheckpointsError(
                target.root,
                "base and fine-tuned checkpoint are the same folder",
                hint="pass the base model the fine-tune started from as BASE",
            )
        _refuse_other_model(source, target)
        return _Base(source, os.fspath(base), "given")
    candidates = _candidates(target, given)
    failures = []
    for value, where in candidates:
        ckpt, why = _reach(value, target)
        if ckpt is not None:
            logger.info("using the base named in %s: %s", where, value)
            _refuse_other_model(ckpt, target)
            return _Base(ckpt, value, where)
        if why != "is the fine-tune itself":
            failures.append((value, where, why))
    if not failures:
        return _Base(
            None,
            why_not="no base model was given and the folder names none; pass it as BASE "
            "(`ftfix check BASE FT`, a folder or Hub id) to run them",
        )
    # The most useful to name: a Hub id (it can be fetched), else the first found.
    value, where, why = next((f for f in failures if is_hub_id(f[0])), failures[0])
    return _Base(None, value, where, why_not=f"the base {value} named in {where} {why}")


_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim")


def _hidden_size(ckpt: Checkpoint) -> int | None:
    """The model width: config.json's, else the width of a stored embedding (an adapter's).

    `None` when unknown; a file that cannot be read is left to the file rules.
    """
    try:
        config = ckpt.json("config.json") or {}
        files = ckpt.weight_files()
    except InvalidCheckpointError:
        return None
    text = config.get("text_config")
    for source in (config, text if isinstance(text, dict) else {}):
        for key in _HIDDEN_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    for file in files.values():
        for name in file.tensors:
            if name.endswith(("embed_tokens.weight", "lm_head.weight")) and "lora_" not in name:
                shape = file.info(name).shape
                if len(shape) == 2:
                    return int(shape[1])
    return None


def _refuse_other_model(base: Checkpoint, target: Checkpoint) -> None:
    """A base of another width cannot be this fine-tune's base: say so instead of comparing."""
    if target.kind is Kind.TOKENIZER or base.kind is Kind.TOKENIZER:
        return
    ours, theirs = _hidden_size(target), _hidden_size(base)
    if ours is not None and theirs is not None and ours != theirs:
        raise IncompatibleCheckpointsError(
            target.root,
            f"base and fine-tune differ in hidden size ({theirs} vs {ours}): is BASE the model "
            "the fine-tune started from?",
            hint="pass the base model the fine-tune was trained from as BASE",
        )


def _rules(value: Sequence[str] | str | None, option: str) -> list[str] | None:
    """Rule codes as a list: a string is split on commas, as the CLI does (`"FTX0,FTX201"`)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    codes = [c.strip() for item in items for c in item.split(",") if c.strip()]
    if isinstance(value, str) and not codes:
        raise UsageError(option, "names no rule", hint="pass codes, prefixes or names: FTX0,FTX201")
    return codes


def _options(
    template: PathLike | str | None, init: str = "mean", base_id: str | None = None
) -> Options:
    if init not in ("mean", "subtokens"):
        raise UsageError(
            "init", f"unknown row initialisation {init!r}", hint="use mean or subtokens"
        )
    if template is None:
        return Options(init=init, base_id=base_id)
    text = os.fspath(template)
    path = Path(text)
    if path.is_file():
        try:
            data = read_limited(path, TEMPLATE_LIMIT) or b""
            return Options(template=data.decode("utf-8"), init=init, base_id=base_id)
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidCheckpointError(path, f"cannot read template: {exc}") from exc
    if "{{" not in text and "{%" not in text:
        # Neither a file nor Jinja: almost certainly a mistyped path, not a template.
        raise CheckpointNotFoundError(text, "template file not found", hint="pass a .jinja file")
    return Options(template=text, init=init, base_id=base_id)


def _report(
    mode: Mode,
    base: _Base,
    target: Checkpoint,
    plan: Plan,
    fail_on: Severity | str,
    fixers: Sequence[Fixer] = (),
) -> Report:
    return Report(
        checked=[f.code for f in fixers],
        base=base.checkpoint.display if base.checkpoint is not None else None,
        base_source=base.source if base.checkpoint is not None else None,
        skipped_rules=list(plan.skipped_rules),
        internal_errors=list(plan.failures),
        finetuned=target.display,
        mode=mode,
        findings=list(plan.findings),
        applied=list(plan.applied) if mode != "check" else [],
        skipped=dict(plan.skipped),
        diff=plan.diff() if mode != "check" else "",
        fail_on=Severity(fail_on),
    )


def _given_base_id(base: PathLike | None) -> str | None:
    """The base as a Hub id when the user named it so (not a local folder)."""
    if base is None:
        return None
    text = os.fspath(base)
    return text if is_hub_id(text) and not Path(text).exists() else None


def _on_hub(path: PathLike) -> bool:
    """Whether a fine-tune given as `path` is a Hub id (`org/name` that is not a local path)."""
    text = os.fspath(path)
    return is_hub_id(text) and not Path(text).expanduser().exists()


def _prepare(
    base: PathLike | None,
    finetuned: PathLike | None,
    *,
    writer: bool,
    revision: str | None = None,
) -> tuple[_Base, Checkpoint, HubCheckpoint | None]:
    """The base and the fine-tune opened, and the Hub mirror to close when it is on the Hub."""
    if finetuned is None:  # check(ft): the only path is the fine-tune
        if base is None:
            raise UsageError("finetuned", "no checkpoint given", hint="pass the fine-tune folder")
        base, finetuned = None, base
    assert finetuned is not None
    if _on_hub(finetuned):
        return _prepare_hub(base, os.fspath(finetuned), revision)
    if revision is not None:
        raise UsageError("--revision", "applies to a fine-tune given as a Hub id (org/name)")
    target = _open(finetuned, role="finetuned", writer=writer)
    given = Path(os.fspath(finetuned)).expanduser()
    return _find_base(base, target, given), target, None


def _small_files(ckpt: Checkpoint) -> dict[str, Path]:
    """The base's files by path (top level and templates), to skip fetching identical ones."""
    found = {p.name: p for p in ckpt.root.iterdir() if p.is_file()}
    templates = ckpt.root / "additional_chat_templates"
    if templates.is_dir():
        found.update({f"{templates.name}/{p.name}": p for p in templates.iterdir() if p.is_file()})
    return found


def _prepare_hub(
    base: PathLike | None, repo_id: str, revision: str | None
) -> tuple[_Base, Checkpoint, HubCheckpoint | None]:
    """A fine-tune on the Hub: small files through the cache, weights by range requests.

    Offline, the cached snapshot is checked as far as the cache holds it.
    """
    if offline():
        folder = resolve_path(repo_id, role="base")  # the local cache; offline it never fetches
        target = Checkpoint.open(folder, role="finetuned", display=repo_id)
        return _find_base(base, target, folder), target, None
    given = _open(base, role="base") if base is not None else None
    hub = open_hub(
        repo_id,
        revision=revision,
        base_files=_small_files(given) if given is not None else None,
    )
    try:
        target = Checkpoint.open(hub.folder, role="finetuned", display=repo_id, remote=hub.sources)
        if given is not None:
            assert base is not None
            found = _Base(given, os.fspath(base), "given")
        else:
            found = _find_base(None, target, hub.folder)
    except BaseException:
        hub.close()
        raise
    return found, target, hub


def _build(
    found: _Base, target: Checkpoint, fixers: Sequence[Fixer], options: Options, **kwargs: bool
) -> Plan:
    return build(
        found.checkpoint, target, fixers, options=options, no_base_reason=found.why_not, **kwargs
    )


def check(
    base: PathLike | None,
    finetuned: PathLike | None = None,
    *,
    select: Sequence[str] | str | None = None,
    ignore: Sequence[str] | str = (),
    fail_on: Severity | str = Severity.ERROR,
    template: PathLike | str | None = None,
    gguf: PathLike | None = None,
    runtimes: bool = False,
    revision: str | None = None,
    trained_on: PathLike | None = None,
) -> Report:
    """Check a fine-tuned checkpoint, with its base when one is at hand. Writes nothing.

    `check(ft)` and `check(None, ft)` find the base the folder names (adapter_config.json,
    config.json `_name_or_path`, the model card's `base_model`, a trainer root's files); without
    one, the rules that compare with the base are skipped and listed in `report.skipped_rules`.

    Args:
        base (`str` or `os.PathLike`): the base model folder or Hub id (from the local cache,
            else its small files are downloaded unless `HF_HUB_OFFLINE`); `None` to look for
            the base the folder names. With `finetuned` omitted, this is the fine-tune.
        finetuned (`str` or `os.PathLike`): merged model, PEFT adapter, tokenizer folder, or a
            trainer output folder (its newest `checkpoint-N` is checked).
        select (`Sequence[str]` or `str`, *optional*): rule codes, code prefixes (`FTX0`) or
            names to run; a string is split on commas (`"FTX0,FTX201"`).
        ignore (`Sequence[str]`, *optional*): rule codes, prefixes or names to skip.
        fail_on (`Severity` or `str`, *optional*, defaults to `"error"`): lowest severity that
            makes `report.exit_code` 1.
        template (`str` or `os.PathLike`, *optional*): the chat template the model was trained
            with (file path or template text), for checkpoints whose base has none.
        gguf (`str` or `os.PathLike`, *optional*): a GGUF file converted from `finetuned`, to
            check against it. A `finetuned` that is a `.gguf` file is checked on its own, or
            against `base` when given.
        runtimes (`bool`, *optional*, defaults to `False`): also answer, per runtime (vLLM,
            llama.cpp, Ollama, ...), whether it loads the folder, renders its template and stops
            (`report.runtimes`).
        revision (`str`, *optional*): for a fine-tune given as a Hub id (`org/name`): the
            branch, tag or commit to check. A Hub fine-tune's small files are downloaded
            through the huggingface_hub cache, its weights read by range requests (headers and
            the rows the rules need); `report.fetched` counts the bytes.
        trained_on (`str` or `os.PathLike`, *optional*): a JSONL file of training rows as the
            trainer fed them (`{"messages": [...]}` with `"text"` or `"input_ids"`), compared
            with what the saved template renders (FTX600).

    Returns:
        `Report`: `report.ok` is `True` when no error remains.

    Raises:
        `CheckpointNotFoundError`: a path does not exist (a base given explicitly included).
        `InvalidCheckpointError`: a folder is not a checkpoint, or nothing in it can be read
            (a file that cannot be read is a finding, not an error).
        `IncompatibleCheckpointsError`: base and fine-tune are the same folder.
        `UnknownCodeError`: `select`/`ignore` names no rule.

    Example:
        >>> report = ftfix.check("meta-llama/Llama-3.2-1B-Instruct", "out/checkpoint-500")
        >>> print(report)
    """
    if gguf is not None or is_gguf_path(finetuned if finetuned is not None else base or ""):
        from .api_gguf import check_gguf

        given, path = (None, base) if finetuned is None else (base, finetuned)
        assert path is not None
        return check_gguf(
            given, path, gguf=gguf, select=select, ignore=ignore, fail_on=fail_on,
            options=_options(template),
        )  # fmt: skip
    fixers = registry.resolve(_rules(select, "select"), _rules(ignore, "ignore") or ())
    options = _options(template, base_id=_given_base_id(base if finetuned else None))
    if trained_on is not None:
        options = replace(options, trained_on=tuple(read_samples(trained_on)))
    found, target, hub = _prepare(base, finetuned, writer=False, revision=revision)
    try:  # everything that reads the fine-tune, before a Hub mirror is removed
        plan = _build(found, target, fixers, options, apply_fixes=False)
        report = _report("check", found, target, plan, fail_on, fixers)
        report.remaining = list(plan.findings)
        if runtimes:
            report.runtimes = answer_runtimes(Context(found.checkpoint, target, options))
    finally:
        if hub is not None:
            hub.close()
    if hub is not None:
        report.fetched = {"repo_id": hub.repo_id, "revision": hub.revision}
        report.fetched.update(hub.transfer.to_dict())
    return report


def repair(
    base: PathLike | None,
    finetuned: PathLike | None = None,
    *,
    select: Sequence[str] | str | None = None,
    ignore: Sequence[str] | str = (),
    unsafe_fixes: bool = False,
    dry_run: bool = False,
    backup: bool = True,
    output: PathLike | None = None,
    fail_on: Severity | str = Severity.ERROR,
    template: PathLike | str | None = None,
    init: str = "mean",
    gguf: PathLike | None = None,
    pr: bool = False,
    revision: str | None = None,
) -> Report:
    """Fix what can be fixed safely, then check again.

    Safe fixes are applied; unsafe ones only with `unsafe_fixes=True`. Every write is atomic and
    the originals are backed up under `<finetuned>/.ftfix/backups/` so `ftfix.undo()` restores
    them. A healthy checkpoint is left byte-identical.

    Args:
        base (`str` or `os.PathLike`): the base model folder or Hub id; `None` (or omitted,
            `repair(ft)`) to use the base the folder names, or none (see `check`).
        finetuned (`str` or `os.PathLike`): the checkpoint to repair.
        select (`Sequence[str]`, *optional*): rules to run (codes, prefixes or names).
        ignore (`Sequence[str]`, *optional*): rules to skip.
        unsafe_fixes (`bool`, *optional*, defaults to `False`): also apply fixes that replace
            content the fine-tune changed.
        dry_run (`bool`, *optional*, defaults to `False`): plan and diff only; write nothing.
        backup (`bool`, *optional*, defaults to `True`): keep originals for `undo` (turning it
            off saves disk for large shards but makes the repair irreversible).
        output (`str` or `os.PathLike`, *optional*): write a repaired copy here (hard links for
            untouched files) and leave `finetuned` unchanged.
        fail_on (`Severity` or `str`, *optional*, defaults to `"error"`): lowest severity that
            makes `report.exit_code` 1.
        template (`str` or `os.PathLike`, *optional*): the chat template the model was trained with.
        init (`str`, *optional*, defaults to `"mean"`): how unsafe embedding repairs set rows:
            `"mean"` of trained rows, or `"subtokens"` (mean of the rows of the token's pieces).
        gguf (`str` or `os.PathLike`, *optional*): repair this GGUF file (converted from
            `finetuned`) instead of the folder; a `.gguf` `finetuned` is repaired the same way.
            `output` is then a file path.
        pr (`bool`, *optional*, defaults to `False`): for a fine-tune given as a Hub id: open
            one pull request with the safe small-file fixes (row edits and unsafe fixes are
            never pushed, only reported); with `dry_run`, only describe it
            (`report.pull_request`).
        revision (`str`, *optional*): with `pr`, the revision to check (the PR's parent).

    Returns:
        `Report`: `report.remaining` holds what a re-check still finds.

    Raises:
        `CheckpointNotFoundError`, `InvalidCheckpointError`, `IncompatibleCheckpointsError`,
        `UnknownCodeError`: bad input, before anything is written.
        `LockedError`: another repair of the same folder is running.
        `StaleEditError`: a file changed while planning (nothing written).

    Example:
        >>> report = ftfix.repair("Qwen/Qwen2.5-7B-Instruct", "out/")
        >>> report.ok
        True
    """
    if gguf is not None or is_gguf_path(finetuned if finetuned is not None else base or ""):
        from .api_gguf import repair_gguf

        given, path = (None, base) if finetuned is None else (base, finetuned)
        assert path is not None
        return repair_gguf(
            given, path, gguf=gguf, select=select, ignore=ignore, unsafe_fixes=unsafe_fixes,
            dry_run=dry_run, backup=backup, output=output, fail_on=fail_on,
            options=_options(template, init),
        )  # fmt: skip
    remote = finetuned if finetuned is not None else base
    if remote is not None and _on_hub(remote):
        if not pr:
            raise UsageError(
                remote,
                "a repository on the Hub cannot be repaired in place",
                hint="pass --pr (`pr=True`) to open a pull request with the fixes, or download "
                f"it (`hf download {os.fspath(remote)} --local-dir DIR`) and repair DIR",
            )
        from .hub import repair_by_pull_request

        return repair_by_pull_request(
            base if finetuned is not None else None,
            os.fspath(remote),
            select=select,
            ignore=ignore,
            dry_run=dry_run,
            fail_on=fail_on,
            template=template,
            revision=revision,
        )
    if pr or revision is not None:
        flag = "--pr" if pr else "--revision"
        raise UsageError(flag, "applies to a fine-tune given as a Hub id (org/name)")
    found, target, _ = _prepare(base, finetuned, writer=not dry_run)
    fixers = registry.resolve(_rules(select, "select"), _rules(ignore, "ignore") or ())
    options = _options(template, init, base_id=_given_base_id(base if finetuned else None))
    plan = _build(found, target, fixers, options, apply_fixes=True, unsafe_fixes=unsafe_fixes)
    report = _report("dry-run" if dry_run else "repair", found, target, plan, fail_on, fixers)
    if dry_run:
        applied = {f.key() for f in plan.applied}
        report.remaining = [f for f in plan.findings if f.key() not in applied]
        return report

    root = target.root
    if output is not None:
        root = Path(os.fspath(output))
        _check_output(root, found.checkpoint, target)
        tensor_files = sorted({t.path for t in plan.tensor_edits})
        write.copy_tree_for_output(target.root, root, copy=tensor_files)
        report.output = os.fspath(output)
        backup = False
    result = write.commit(root, list(plan.file_edits.values()), plan.tensor_edits, backup=backup)
    report.written = result.written
    report.backup = str(result.backup) if result.backup else None

    after = Checkpoint.open(root, role="finetuned")
    recheck = _build(found, after, fixers, options, apply_fixes=False)
    report.remaining = list(recheck.findings)
    still = {f.key() for f in recheck.findings}
    for finding in plan.applied:
        if finding.key() in still:
            report.errors.append(
                f"{finding.code} fix did not hold: {finding.path or root} still has the problem"
            )
    return report


def _check_output(out: Path, source: Checkpoint | None, target: Checkpoint) -> None:
    """Refuse an output folder inside (or equal to) the fine-tune or the base."""
    real = out.resolve()
    for ckpt, what in ((target, "the fine-tuned checkpoint"), (source, "the base")):
        if ckpt is None:
            continue
        inside = ckpt.root.resolve()
        if real == inside or inside in real.parents:
            raise UsageError(
                out,
                f"the output folder is inside {what} ({ckpt.root}); the copy would copy itself "
                "or write where -o promises not to",
                hint="pick an output folder outside both checkpoints",
            )


def undo(finetuned: PathLike) -> list[str]:
    """Restore exactly what the last repair of `finetuned` changed.

    Returns:
        `list[str]`: relative paths restored.

    Raises:
        `NothingToUndoError`: no backup exists.
        `StaleEditError`: a repaired file changed since (nothing is restored).
    """
    if is_gguf_path(finetuned) and os.path.isfile(finetuned):
        from .api_gguf import undo_gguf

        return undo_gguf(finetuned)
    target = _open(finetuned, role="finetuned", writer=True)
    return write.undo(target.root)


def explain(code_or_name: str) -> str:
    """The documentation of a rule, as `ftfix explain` prints it.

    Raises:
        `UnknownCodeError`: no rule has that code or name.
    """
    fixer = registry.get(code_or_name)
    header = f"{fixer.code} {fixer.name} ({fixer.severity_label()})"
    return f"{header}\n\n{fixer.documentation()}\n"
