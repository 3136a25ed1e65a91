"""Issue 19's fuzz harness: a case table of hostile and careless inputs, one per class.

Each case damages a copy of a healthy fine-tune (or its base) in one way. Whatever the case,
`check` and `repair` must end cleanly: exit 0, 1 or 2, never a traceback; an exit 2 is exactly
one `path: reason` line and one `hint:` line; a failed command changes no byte of either folder.
A property test (hypothesis) then throws random JSON values at the config files the same way.
The whole module runs in well under a minute.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ckpt_builders import build_merged, build_trainer_root, copy_checkpoint, tree_digest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftfix.cli import main

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "9" * 5000


def _set(rel: str, key: str, raw: str) -> Callable[[Path], None]:
    """Set `key` of JSON file `rel` to the raw JSON text `raw` (not re-encoded)."""

    def apply(folder: Path) -> None:
        path = folder / rel
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = "@@RAW@@"
        path.write_text(json.dumps(data, indent=2).replace('"@@RAW@@"', raw))

    return apply


def _write(rel: str, text: str | bytes) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return apply


def _tokenizer_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "tokenizer.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


def _garbage_charsmap(data: dict) -> None:
    data["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": "AAAAAAAAAAAAAAAA"}


def _safetensors_header(raw: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        body = raw.encode()
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(body)) + body)

    return apply


def _added_key(key: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "tokenizer_config.json"
        data = json.loads(path.read_text())
        decoder = data.setdefault("added_tokens_decoder", {})
        decoder[key] = {"content": "<x>", "special": True, "lstrip": False, "rstrip": False,
                        "normalized": False, "single_word": False}  # fmt: skip
        path.write_text(json.dumps(data, indent=2))

    return apply


def _journal(raw: str) -> Callable[[Path], None]:
    return _write(".ftfix/backups/20260101T000000000000Z-abcdef/manifest.json", raw)


def _directory(rel: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / rel
        if path.exists():
            path.unlink()
        (path / "sub").mkdir(parents=True)

    return apply


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path], None]
    where: str = "ft"  # which folder is damaged: "ft" or "base"


CASES = [
    # JSON nested 100,000 deep, and integers of 5,000 digits, wherever JSON is read.
    Case("config-deep", _write("config.json", DEEP)),
    Case("config-deep-object", _set("config.json", "x", DEEP)),
    Case("tokenizer-config-deep", _set("tokenizer_config.json", "x", DEEP)),
    Case("generation-config-deep", _set("generation_config.json", "x", DEEP)),
    Case("index-deep", _write("model.safetensors.index.json", '{"weight_map": ' + DEEP + "}")),
    Case("adapter-config-deep", _write("adapter_config.json", DEEP)),
    Case("safetensors-header-deep", _safetensors_header('{"a": ' + DEEP + "}")),
    Case("config-huge-int", _set("config.json", "vocab_size", HUGE_INT)),
    Case(
        "safetensors-huge-int",
        _safetensors_header(
            '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + HUGE_INT + "]}}"
        ),
    ),
    Case("journal-deep", _journal(DEEP)),
    Case("journal-huge-int", _journal('{"format": ' + HUGE_INT + "}")),
    Case("base-journal-deep", _journal(DEEP), where="base"),
    # Values a library chokes on.
    Case("eos-id-negative", _set("generation_config.json", "eos_token_id", "-1")),
    Case("eos-id-2-64", _set("generation_config.json", "eos_token_id", str(2**64))),
    Case("config-eos-id-2-64", _set("config.json", "eos_token_id", str(2**64))),
    Case("pad-id-negative", _set("config.json", "pad_token_id", "-1")),
    Case("eos-lone-surrogate", _set("tokenizer_config.json", "eos_token", '"\\ud800"')),
    Case("added-key-superscript", _added_key("²")),
    Case("added-key-negative", _added_key("-5")),
    Case("max-length-inf", _set("tokenizer_config.json", "model_max_length", "1e400")),
    Case("vocab-size-string", _set("config.json", "vocab_size", '"98"')),
    Case("layers-null", _set("config.json", "num_hidden_layers", "null")),
    Case("eos-token-list", _set("tokenizer_config.json", "eos_token", '["a", "b"]')),
    Case(
        "chat-template-list-no-name",
        _set("tokenizer_config.json", "chat_template", '[{"template": "{{ 1 }}"}]'),
    ),
    Case("chat-template-number", _set("tokenizer_config.json", "chat_template", "7")),
    Case("tokenizer-panics", _tokenizer_json(_garbage_charsmap)),
    Case("base-tokenizer-panics", _tokenizer_json(_garbage_charsmap), where="base"),
    # Hostile templates: findings, never tracebacks.
    Case(
        "template-nested-ifs",
        _write("chat_template.jinja", "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000),
    ),
    Case("template-parens", _write("chat_template.jinja", "{{ " + "(" * 100_000 + " }}")),
    Case("template-break", _write("chat_template.jinja", "{% break %}")),
    Case("template-center", _write("chat_template.jinja", "{{ 'x'|center(10**9) }}")),
    Case("template-not-utf8", _write("chat_template.jinja", b"\xff\xfe{{ x }}")),
    # Things where files should be, and files where folders should be.
    Case("weights-directory", _directory("model.safetensors")),
    Case("tokenizer-directory", _directory("tokenizer.json")),
    Case("config-directory", _directory("generation_config.json")),
    Case("state-dir-file", _write(".ftfix", "not a folder")),
]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    base = build_merged(root / "base")
    return base, copy_checkpoint(base, root / "ft")


def _assert_clean(code: int, err: str) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        lines = [line for line in err.strip().splitlines() if line.startswith(("ftfix:", "hint:"))]
        assert len(lines) == 2 and lines[0].startswith("ftfix: error: "), err
        assert lines[1].startswith("hint: "), err
        assert "\n" not in lines[0].removeprefix("ftfix: error: "), err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_ends_cleanly(case, healthy, tmp_path, capfd):
    base = copy_checkpoint(healthy[0], tmp_path / "base")
    ft = copy_checkpoint(healthy[1], tmp_path / "ft")
    case.damage(ft if case.where == "ft" else base)
    before = (tree_digest(base), tree_digest(ft))
    for argv in (
        ["check", str(base), str(ft)],
        ["check", "--exit-zero", "--format", "json", str(base), str(ft)],
        ["repair", "--unsafe-fixes", str(base), str(ft)],
    ):
        capfd.readouterr()
        code = main(argv)
        out, err = capfd.readouterr()
        _assert_clean(code, err)
        if argv[0] == "check":
            assert (tree_digest(base), tree_digest(ft)) == before, argv
            if "--exit-zero" in argv and code == 0:
                json.loads(out)
        elif code == 2:
            assert (tree_digest(base), tree_digest(ft)) == before, argv
        assert tree_digest(base) == before[0]  # the base is never written


def test_one_bad_checkpoint_never_stops_a_batch(tmp_path, capfd):
    """--all-checkpoints and -j 2: a panicking tokenizer in one checkpoint; the others report."""
    base = build_merged(tmp_path / "base")
    runs = build_trainer_root(tmp_path / "runs", steps=(10, 20, 30))
    _tokenizer_json(_garbage_charsmap)(runs / "checkpoint-20")
    for jobs in ("1", "2"):
        capfd.readouterr()
        code = main(["check", "--all-checkpoints", "-j", jobs, "--format", "json",
                     str(base), str(runs)])  # fmt: skip
        out, err = capfd.readouterr()
        # 2: bad input in one of them; 3: a rule could not check one (a panic while encoding)
        assert code in (2, 3) and "Traceback" not in err and "PicklingError" not in err, err
        reports = json.loads(out)
        names = {Path(r["finetuned"]).name for r in reports}
        assert names >= {"checkpoint-10", "checkpoint-30"}
        assert "checkpoint-20" in names or "checkpoint-20" in err


# ------------------------------------------------------------------------ property test
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = {
    "config.json": ["eos_token_id", "pad_token_id", "vocab_size", "tie_word_embeddings",
                    "model_type", "torch_dtype", "bos_token_id"],
    "tokenizer_config.json": ["eos_token", "pad_token", "bos_token", "chat_template",
                              "added_tokens_decoder", "model_max_length", "add_bos_token"],
    "generation_config.json": ["eos_token_id", "pad_token_id", "do_sample", "temperature"],
}  # fmt: skip


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rel=st.sampled_from(sorted(KEYS)),
    index=st.integers(min_value=0, max_value=6),
    value=JSON_VALUES,
)
def test_random_json_values_end_cleanly(healthy, tmp_path_factory, rel, index, value):
    keys = KEYS[rel]
    key = keys[index % len(keys)]
    folder = tmp_path_factory.mktemp("prop")
    ft = copy_checkpoint(healthy[1], folder / "ft")
    data = json.loads((ft / rel).read_text())
    data[key] = value
    (ft / rel).write_text(json.dumps(data))
    before = tree_digest(ft)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", str(healthy[0]), str(ft)])
    _assert_clean(code, err.getvalue())
    assert tree_digest(ft) == before


@pytest.mark.parametrize("gap", ["before", "after"])
def test_safetensors_gap_is_refused_like_safetensors_does(healthy, tmp_path, capfd, gap):
    """A buffer the tensors do not cover exactly: safetensors refuses it, so must ftfix."""
    from safetensors import safe_open

    ft = copy_checkpoint(healthy[1], tmp_path / "ft")
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16] if gap == "before"
                    else [0, 8]}}  # fmt: skip
    raw = json.dumps(header).encode()
    (ft / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(Exception, match=r"(?i)incomplete|invalid offset"):
        safe_open(str(ft / "model.safetensors"), "np")
    capfd.readouterr()
    # 2 (bad input) or 1 (an unreadable-file finding): never "All checks passed"
    assert main(["check", str(healthy[0]), str(ft)]) in (1, 2)
    out, err = capfd.readouterr()
    assert "safetensors refuses the file" in out + err
