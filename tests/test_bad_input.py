"""Bad input: a damaged file is a finding on that file; bad paths and usage give exit 2.

Each case breaks one thing in a healthy pair (or passes bad paths), runs the CLI in-process, and
checks every file of both folders unchanged (sha256) and no traceback. A damaged file of the
fine-tune is a finding of a file rule (FTX900-FTX919) on that file, the other rules still run
(exit 1, or 0 for a warning); a damaged file of the base skips the checks that read it, with a
note. Bad paths, usage and a hostile state folder give exit 2 with exactly two stderr lines
(`ftfix: error: <path>: <reason>` and `hint: ...`). Hostile chat templates are not
bad input but findings; they are tested at the end against `chat-template-broken` (skipped
until that rule is registered).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ckpt_builders import CHATML_TEMPLATE, build_merged, copy_checkpoint, tree_digest

import ftfix
from ftfix import registry
from ftfix.cli import main
from ftfix.write import BACKUPS, MANIFEST, STATE_DIR

SHARDS_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class Case:
    """One bad input: how to break the pair, and the path and reason the error must name."""

    name: str
    breaks: Callable[[Path, Path, Path], Path | str]  # (base, ft, scratch) -> path in the error
    reason: str
    shards: int = 0
    repair_only: bool = False  # `check` reads but does not write: it may legitimately pass
    args: Callable[[Path, Path, Path], list[str]] | None = None  # CLI paths, default [base, ft]
    finding: str | None = None  # the file rule that reports it; None: exit 2 (or a base file)


def _raw_safetensors(path: Path, header: object, payload: bytes = b"", length: int | None = None):
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + payload)


def _st(header: object, payload: bytes = b"", length: int | None = None):
    def breaks(base: Path, ft: Path, scratch: Path) -> Path:
        _raw_safetensors(ft / "model.safetensors", header, payload, length)
        return ft / "model.safetensors"

    return breaks


def _write(rel: str, data: bytes, *, side: str = "ft"):
    def breaks(base: Path, ft: Path, scratch: Path) -> Path:
        path = (ft if side == "ft" else base) / rel
        path.write_bytes(data)
        return path

    return breaks


def _truncate_data(base: Path, ft: Path, scratch: Path) -> Path:
    path = ft / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 64])
    return path


def _index(mutate: Callable[[dict], None]):
    def breaks(base: Path, ft: Path, scratch: Path) -> Path:
        path = ft / SHARDS_INDEX
        index = json.loads(path.read_text())
        mutate(index)
        path.write_text(json.dumps(index, indent=2))
        return path

    return breaks


def _first_tensor_to(shard: str):
    def mutate(index: dict) -> None:
        first = next(iter(index["weight_map"]))
        index["weight_map"][first] = shard

    return mutate


def _missing_shard(base: Path, ft: Path, scratch: Path) -> Path:
    shard = sorted(ft.glob("model-*.safetensors"))[-1]
    shard.unlink()
    return shard


def _unknown_tensor(index: dict) -> None:
    shard = next(iter(index["weight_map"].values()))
    index["weight_map"]["model.not_there.weight"] = shard


def _same_folder(base: Path, ft: Path, scratch: Path) -> Path:
    return ft


def _pickled_only(base: Path, ft: Path, scratch: Path) -> Path:
    (ft / "model.safetensors").unlink()
    # Protocol-0 pickle that would create `scratch/pwned` if anything ever unpickled it.
    sentinel = scratch / "pwned"
    (ft / "pytorch_model.bin").write_bytes(b"cos\nmkdir\n(V" + str(sentinel).encode() + b"\ntR.")
    return ft / "pytorch_model.bin"


def _pickled_adapter(base: Path, ft: Path, scratch: Path) -> Path:
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        (ft / name).unlink()
    (ft / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 2}')
    (ft / "adapter_model.bin").write_bytes(b"cos\nsystem\n(Vtrue\ntR.")
    return ft / "adapter_model.bin"


def _symlinked_template_dir(base: Path, ft: Path, scratch: Path) -> Path:
    # The repair would write additional_chat_templates/tool_use.jinja: through this symlink
    # it would land outside the checkpoint.
    (ft / "chat_template.jinja").unlink()
    shutil.rmtree(ft / "additional_chat_templates")
    outside = scratch / "outside"
    outside.mkdir()
    (ft / "additional_chat_templates").symlink_to(outside, target_is_directory=True)
    return ft / "additional_chat_templates" / "tool_use.jinja"


def _state_dir_symlink(base: Path, ft: Path, scratch: Path) -> Path:
    outside = scratch / "elsewhere"
    (outside / BACKUPS).mkdir(parents=True)
    (ft / STATE_DIR).symlink_to(outside, target_is_directory=True)
    return ft / STATE_DIR


def _state_dir_file(base: Path, ft: Path, scratch: Path) -> Path:
    (ft / STATE_DIR).write_text("not a folder")
    return ft / STATE_DIR


def _journal(entry_path: str, *, damage: bool = False, sealed: bool = False):
    def breaks(base: Path, ft: Path, scratch: Path) -> Path:
        folder = ft / STATE_DIR / BACKUPS / "20250101T000000000000Z-abcdef"
        folder.mkdir(parents=True)
        journal = {
            "format": 2,
            "state": "pending",
            "keep": True,
            "files": [
                {
                    "path": entry_path,
                    "before_sha256": None,
                    "after_sha256": "0" * 64,
                    "backup": None,
                    "symlink": None,
                }
            ],
            "tensors": [],
        }
        if sealed:  # as this user's ftfix would have: only the path inside it is hostile
            from ftfix.write.trust import seal

            seal(journal, ft, folder)
        data = b'{"format": 2, "state": "pend' if damage else json.dumps(journal).encode()
        (folder / MANIFEST).write_bytes(data)
        return folder / MANIFEST if damage or not sealed else ft

    return breaks


def _not_utf8_template_option(base: Path, ft: Path, scratch: Path) -> Path:
    path = scratch / "template.jinja"
    path.write_bytes(b"\xff\xfe{{ messages }}")
    return path


CASES = [
    # --- safetensors headers and data
    Case(
        "st-truncated",
        _write("model.safetensors", b"\x01\x02"),
        "truncated safetensors",
        finding="FTX901",
    ),
    Case("st-header-len-past-eof", _st({}, length=10**6), "larger than the file", finding="FTX901"),
    Case(
        "st-header-huge",
        _st({}, length=200 * 1024 * 1024),
        "exceeds the 100 MiB limit",
        finding="FTX901",
    ),
    Case("st-header-not-json", _st(b"nope"), "not valid JSON", finding="FTX901"),
    Case("st-header-not-utf8", _st(b'{"\xff": 1}'), "not valid JSON", finding="FTX901"),
    Case("st-header-list", _st([1, 2]), "not a JSON object", finding="FTX901"),
    Case(
        "st-offsets-past-eof",
        _st({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"1234"),
        "past the end of the file",
        finding="FTX901",
    ),
    Case(
        "st-offsets-overlap",
        _st(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            },
            b"12345678",
        ),
        "overlap",
        finding="FTX901",
    ),
    Case(
        "st-offsets-vs-dtype-shape",
        _st({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"1234"),
        "needs 8",
        finding="FTX901",
    ),
    Case(
        "st-unknown-dtype",
        _st({"t": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"x"),
        "unsupported dtype",
        finding="FTX901",
    ),
    Case(
        "st-bad-shape",
        _st({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"1234"),
        "invalid shape",
        finding="FTX901",
    ),
    Case(
        "st-bad-offsets",
        _st({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"1234"),
        "invalid data_offsets",
        finding="FTX901",
    ),
    Case(
        "st-metadata-not-object",
        _st({"__metadata__": [1]}),
        "__metadata__ is not an object",
        finding="FTX901",
    ),
    Case("st-data-truncated", _truncate_data, "past the end of the file", finding="FTX901"),
    # --- sharded index
    Case("index-missing-shard", _missing_shard, "is not in the folder", shards=2, finding="FTX902"),
    Case(
        "index-parent-dir",
        _index(_first_tensor_to("../outside.safetensors")),
        "not a file in the checkpoint folder",
        shards=2,
        finding="FTX901",
    ),
    Case(
        "index-absolute-path",
        _index(_first_tensor_to("/etc/passwd")),
        "not a file in the checkpoint folder",
        shards=2,
        finding="FTX901",
    ),
    Case(
        "index-tensor-missing",
        _index(_unknown_tensor),
        "is not in shard",
        shards=2,
        finding="FTX901",
    ),
    Case(
        "index-no-weight-map",
        _index(lambda index: index.pop("weight_map")),
        "no weight_map",
        shards=2,
        finding="FTX901",
    ),
    Case(
        "index-shard-not-a-name",
        _index(_first_tensor_to(7)),  # type: ignore[arg-type]
        "not a file name",
        shards=2,
        finding="FTX901",
    ),
    Case(
        "index-invalid-json",
        _write(SHARDS_INDEX, b'{"weight_map": {'),
        "invalid JSON",
        shards=2,
        finding="FTX901",
    ),
    # --- JSON configs: invalid, not UTF-8, not an object
    Case(
        "config-invalid-json",
        _write("config.json", b'{"a": 1,,}'),
        "invalid JSON",
        finding="FTX901",
    ),
    Case("config-not-utf8", _write("config.json", b'{"a": "\xff"}'), "not UTF-8", finding="FTX901"),
    Case(
        "config-is-a-list",
        _write("config.json", b"[1, 2]"),
        "expected a JSON object",
        finding="FTX901",
    ),
    Case(
        "config-nan",
        _write("config.json", b'{"x": NaN}'),
        "invalid JSON constant",
        finding="FTX901",
    ),
    Case(
        "generation-config-invalid-json",
        _write("generation_config.json", b'{"eos_token_id": 1,,}'),
        "invalid JSON",
        finding="FTX901",
    ),
    Case(
        "generation-config-not-utf8",
        _write("generation_config.json", b"\xff\xfe{}"),
        "not UTF-8",
        finding="FTX901",
    ),
    Case(
        "tokenizer-config-invalid-json",
        _write("tokenizer_config.json", b'{"chat_template": "x"'),
        "invalid JSON",
        finding="FTX901",
    ),
    Case(
        "tokenizer-config-not-utf8",
        _write("tokenizer_config.json", b"\xfe{}"),
        "not UTF-8",
        finding="FTX901",
    ),
    Case(
        "tokenizer-config-is-a-string",
        _write("tokenizer_config.json", b'"tokenizer"'),
        "expected a JSON object",
        finding="FTX901",
    ),
    Case(
        "special-tokens-map-invalid-json",
        _write("special_tokens_map.json", b"{eos_token: 1}"),
        "invalid JSON",
        finding="FTX901",
    ),
    Case(
        "added-tokens-not-utf8",
        _write("added_tokens.json", b'{"\xc3": 98}'),
        "not UTF-8",
        finding="FTX901",
    ),
    Case(
        "processor-template-invalid-json",
        _write("chat_template.json", b"{]"),
        "invalid JSON",
        finding="FTX901",
    ),
    Case(
        "base-config-invalid-json",
        _write("config.json", b"{", side="base"),
        "invalid JSON",
    ),
    Case(
        "base-tokenizer-config-list",
        _write("tokenizer_config.json", b"[]", side="base"),
        "expected a JSON object",
    ),
    # --- tokenizer.json and the template file
    Case(
        "tokenizer-json-truncated",
        _write("tokenizer.json", b'{"version": "1.0", "trunc'),
        "tokenizer.json",
        finding="FTX901",
    ),
    Case(
        "tokenizer-json-not-a-tokenizer",
        _write("tokenizer.json", b"{}"),
        "tokenizer.json",
        finding="FTX901",
    ),
    Case(
        "tokenizer-json-not-utf8",
        _write("tokenizer.json", b"\xff\xff\xff"),
        "tokenizer.json",
        finding="FTX901",
    ),
    Case(
        "chat-template-not-utf8",
        _write("chat_template.jinja", b"{{ '\xff' }}"),
        "not UTF-8",
        finding="FTX901",
    ),
    Case(
        "template-option-not-utf8",
        _not_utf8_template_option,
        "cannot read template",
        args=lambda base, ft, scratch: [
            "--template",
            str(scratch / "template.jinja"),
            str(base),
            str(ft),
        ],
    ),
    # --- paths
    Case(
        "same-folder",
        _same_folder,
        "same folder",
        args=lambda base, ft, scratch: [str(ft), str(ft)],
    ),
    Case(
        "finetuned-missing",
        lambda base, ft, scratch: scratch / "nope",
        "no such file or directory",
        args=lambda base, ft, scratch: [str(base), str(scratch / "nope")],
    ),
    Case(
        "base-missing",
        lambda base, ft, scratch: scratch / "nobase",
        "no such file or directory",
        args=lambda base, ft, scratch: [str(scratch / "nobase"), str(ft)],
    ),
    Case(
        "finetuned-is-a-file",
        lambda base, ft, scratch: ft / "config.json",
        "is a file, not a checkpoint folder",
        args=lambda base, ft, scratch: [str(base), str(ft / "config.json")],
    ),
    Case(
        "base-is-a-file",
        lambda base, ft, scratch: base / "config.json",
        "is a file, not a checkpoint folder",
        args=lambda base, ft, scratch: [str(base / "config.json"), str(ft)],
    ),
    Case(
        "finetuned-not-a-checkpoint",
        lambda base, ft, scratch: (scratch / "empty").mkdir() or scratch / "empty",
        "not a Hugging Face checkpoint",
        args=lambda base, ft, scratch: [str(base), str(scratch / "empty")],
    ),
    # --- unsupported or hostile content
    Case(
        "pickled-weights-only",
        _pickled_only,
        "pickled PyTorch weights, which ftfix never unpickles",
        finding="FTX903",
    ),
    Case(
        "pickled-adapter-only",
        _pickled_adapter,
        "pickled PyTorch weights, which ftfix never unpickles",
        finding="FTX903",
    ),
    Case(
        "symlinked-folder-outside",
        _symlinked_template_dir,
        "outside the checkpoint",
        repair_only=True,
    ),
    # `check` never acts on .ftfix/ (FTX920 reports an unfinished journal): writers refuse these.
    Case("state-dir-symlink", _state_dir_symlink, "is a symlink", repair_only=True),
    Case(
        "state-dir-is-a-file",
        _state_dir_file,
        "is a file, not ftfix's state folder",
        repair_only=True,
    ),
    Case(
        "journal-damaged",
        _journal("config.json", damage=True),
        "journal of an earlier repair",
        repair_only=True,
    ),
    Case(
        "journal-not-sealed",
        _journal("config.json"),
        "ftfix did not write here",
        repair_only=True,
    ),
    Case(
        "journal-path-outside",
        _journal("../outside.json", sealed=True),
        "outside the checkpoint",
        repair_only=True,
    ),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Healthy base/fine-tune pairs (single file and sharded), built once and copied per case."""
    root = tmp_path_factory.mktemp("pristine")
    extra = {"tool_use": CHATML_TEMPLATE}
    pairs = {}
    for shards in (0, 2):
        base = build_merged(
            root / f"base{shards}", shards=max(shards, 1), extra_chat_templates=extra
        )
        ft = copy_checkpoint(base, root / f"ft{shards}")
        pairs[shards] = (base, ft)
    return pairs


def _digests(*folders: Path) -> list[dict[str, str]]:
    return [tree_digest(folder) for folder in folders]


def _assert_one_error(err: str, path: Path | str, reason: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"ftfix: error: {path}: "), err
    assert reason in lines[0], err
    assert lines[1].startswith("hint: ") and len(lines[1]) > len("hint: "), err
    assert "Traceback" not in err


def _prepare(case: Case, pristine, tmp_path: Path) -> tuple[Path, Path, Path, list[str]]:
    base_src, ft_src = pristine[case.shards]
    base = copy_checkpoint(base_src, tmp_path / "base")
    ft = copy_checkpoint(ft_src, tmp_path / "ft")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    where = case.breaks(base, ft, scratch)
    args = case.args(base, ft, scratch) if case.args else [str(base), str(ft)]
    return base, ft, scratch, [str(where), *args]


def test_matrix_has_at_least_30_cases():
    """The issue asks for at least 30 malformed or hostile inputs."""
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


def _is_base_file(case: Case) -> bool:
    return case.name.startswith("base-") and case.args is None


@pytest.mark.parametrize(
    ("case", "command"),
    [
        pytest.param(case, command, id=f"{case.name}-{command}")
        for case in CASES
        for command in ("repair", "check")
        if not (command == "check" and case.repair_only)  # check writes nothing: harmless to it
    ],
)
def test_bad_input(case, command, pristine, tmp_path, capsys):
    """A finding on the damaged file (or a note for a base file, or exit 2 for bad paths and
    usage), no traceback, and not one byte changed in either folder."""
    base, ft, scratch, (where, *args) = _prepare(case, pristine, tmp_path)
    before = _digests(base, ft, scratch)
    capsys.readouterr()
    code = main([command, *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if case.finding is not None:
        rule = registry.get(case.finding)
        assert code == (1 if rule.severity is ftfix.Severity.ERROR else 0), out + err
        lines = [line for line in out.splitlines() if line.startswith(f"{where}: {rule.code} ")]
        assert len(lines) == 1, out
        assert case.reason in lines[0], out
    elif _is_base_file(case):
        assert code == 0, out + err  # the fine-tune is a healthy copy; base checks are skipped
        rel = Path(where).relative_to(base).as_posix()
        assert f"the base's {rel}" in out, out
    else:
        assert code == 2
        _assert_one_error(err, where, case.reason)
    assert _digests(base, ft, scratch) == before
    assert not (scratch / "pwned").exists()


# The template case is left out: the test removes that very template.
_DAMAGED = [c for c in CASES if c.finding and c.name != "chat-template-not-utf8"]


@pytest.mark.parametrize("case", _DAMAGED, ids=[c.name for c in _DAMAGED])
def test_damaged_file_leaves_the_other_rules_running(case, pristine, tmp_path):
    """With one file damaged, a problem elsewhere is still found: the templates removed from the
    fine-tune are reported by FTX001 next to the file's finding. (Not when the damaged file is
    itself a template FTX001 reads: that check is then skipped, with a note.)"""
    _, ft, _, (_, *args) = _prepare(case, pristine, tmp_path)
    (ft / "chat_template.jinja").unlink(missing_ok=True)
    shutil.rmtree(ft / "additional_chat_templates", ignore_errors=True)
    report = ftfix.check(*args)
    codes = {f.code for f in report.findings}
    assert case.finding in codes, report.render_text()
    if case.name.startswith(("processor-template", "tokenizer-config")):  # templates live there
        assert "FTX001" in {s.code for s in report.skipped_rules}, report.render_text()
    else:
        assert "FTX001" in codes, report.render_text()


def test_undo_of_bad_input_changes_nothing(pristine, tmp_path, capsys):
    """`undo` on a damaged checkpoint with nothing to undo says so and changes nothing."""
    _, ft, _, _ = _prepare(CASES[0], pristine, tmp_path)
    before = _digests(ft)
    assert main(["undo", str(ft)]) == 0  # nothing to undo is not an error (issue 13 item 17)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Nothing to undo" in captured.out
    assert _digests(ft) == before


def test_debug_shows_the_traceback(pristine, tmp_path, capsys):
    """--debug prints the traceback before the same error and hint lines."""
    case = next(c for c in CASES if c.name == "journal-damaged")
    _, _, _, (where, *args) = _prepare(case, pristine, tmp_path)
    assert main(["--debug", "repair", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"ftfix: error: {where}: " in err
    assert err.rstrip().splitlines()[-1].startswith("hint: ")


def test_pickled_weights_are_never_imported_or_unpickled(pristine, tmp_path):
    """A .bin-only fine-tune is checked without importing torch or unpickling anything."""
    import subprocess
    import sys

    base, ft, scratch, _ = _prepare(
        next(c for c in CASES if c.name == "pickled-weights-only"), pristine, tmp_path
    )
    code = (
        "import sys; from ftfix.cli import main; code = main(['check', sys.argv[1], sys.argv[2]]);"
        "print(code, sorted(m for m in ('torch', 'pickle') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(base), str(ft)], capture_output=True, text=True
    )
    assert "FTX903" in out.stdout, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1].split()[0] == "0", out.stdout + out.stderr
    assert "torch" not in out.stdout.splitlines()[-1]
    assert not (scratch / "pwned").exists()


# ----------------------------------------------------------------------- hostile templates
HOSTILE_TEMPLATES = {
    "does-not-compile": "{% for message in messages %}{{ message['content'] }",
    "sandbox-escape": (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
        "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}"
    ),
    "context-escape": (
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.mkdir('PWNED') }}"
    ),
    "attribute-mutation": "{% set _ = messages.append({'role': 'user'}) %}{{ messages }}",
    "runaway-loop": (
        "{% for i in range(10**9) %}{% for j in range(10**9) %}x{% endfor %}{% endfor %}"
    ),
    "huge-output": "{{ 'x' * 10**10 }}",
    "endless-recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "raises-everywhere": "{{ raise_exception('no chat for you') }}",
}


def _broken_template_rule() -> str:
    """The code of `chat-template-broken`."""
    (code,) = [f.code for f in registry.all_fixers() if f.name == "chat-template-broken"]
    return code


@pytest.mark.parametrize("name", sorted(HOSTILE_TEMPLATES))
def test_hostile_template_is_a_finding_not_an_action(name, pristine, tmp_path, monkeypatch):
    """A hostile template is an error finding; plain repair changes nothing; no side effect."""
    code = _broken_template_rule()
    base_src, ft_src = pristine[0]
    base = copy_checkpoint(base_src, tmp_path / "base")
    ft = copy_checkpoint(ft_src, tmp_path / "ft")
    (ft / "chat_template.jinja").write_text(HOSTILE_TEMPLATES[name])
    monkeypatch.chdir(tmp_path)  # a template that managed to run `touch PWNED` would land here
    before = _digests(base, ft)
    report = ftfix.check(base, ft)
    assert code in [f.code for f in report.findings], report.render_text()
    assert report.exit_code == 1
    repaired = ftfix.repair(base, ft)
    assert code in [f.code for f in repaired.remaining]
    assert _digests(base, ft) == before
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*"))
    assert not Path(os.getcwd(), "PWNED").exists()


def test_hostile_template_repaired_only_with_unsafe_fixes(pristine, tmp_path):
    """Its fix (restore the base template) is unsafe: only --unsafe-fixes applies it."""
    code = _broken_template_rule()
    base_src, ft_src = pristine[0]
    base = copy_checkpoint(base_src, tmp_path / "base")
    ft = copy_checkpoint(ft_src, tmp_path / "ft")
    (ft / "chat_template.jinja").write_text(HOSTILE_TEMPLATES["does-not-compile"])
    report = ftfix.repair(base, ft, unsafe_fixes=True)
    assert code in [f.code for f in report.applied], report.render_text()
    assert (ft / "chat_template.jinja").read_bytes() == (base / "chat_template.jinja").read_bytes()
    shutil.rmtree(ft / STATE_DIR)
