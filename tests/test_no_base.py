"""Checking without a base: what runs, what is skipped (one notice), where the base is found,
and a rule that raises does not stop the others."""

from __future__ import annotations

import json

import pytest
from ckpt_builders import (
    BASE_VOCAB_SIZE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    TOKEN_IDS,
    build_tokenizer,
    build_trainer_root,
    copy_checkpoint,
)
from helpers import set_json_key

import ftfix
from ftfix import registry
from ftfix.cli import main

HUB_ID = "ftfix-test-org/never-published-base"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 with an empty Hugging Face cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _needs_base(report):
    return {s.code for s in report.skipped_rules if s.needs == "the base model"}


# ------------------------------------------------------------------------------ base absent
@pytest.mark.parametrize(
    "call",
    [
        lambda ft: ftfix.check(ft),
        lambda ft: ftfix.check(None, ft),
        lambda ft: ftfix.repair(ft),
        lambda ft: ftfix.repair(None, ft, dry_run=True),
    ],
    ids=["check(ft)", "check(None, ft)", "repair(ft)", "repair(None, ft, dry_run)"],
)
def test_api_runs_without_base(pair, call, offline):
    """Every entry point accepts a fine-tune alone; the base comparisons are skipped and listed."""
    _, ft = pair
    report = call(ft)
    assert report.base is None
    skipped = _needs_base(report)
    assert skipped and skipped <= {f.code for f in registry.all_fixers()}
    assert report.exit_code == 0, report.render_text()


def test_one_notice_names_codes_reason_and_remedy(pair, offline, capsys):
    """The CLI prints one note (not one line per rule) with the codes, why, and what to do."""
    _, ft = pair
    assert main(["check", str(ft)]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, out
    assert "need the base model" in notes[0] and "FTX001" in notes[0]
    assert "no base model was given and the folder names none" in notes[0]
    assert "pass it as BASE" in notes[0]


def test_json_lists_skipped_rules(pair, offline, capsys):
    """--format json: skipped_rules (code, name, needs, reason), base_source, internal_errors."""
    _, ft = pair
    assert main(["check", "--format", "json", str(ft)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["base"] is None and doc["base_source"] is None
    assert doc["internal_errors"] == []
    first = doc["skipped_rules"][0]
    assert set(first) == {"code", "name", "needs", "reason"}
    assert first["needs"] == "the base model"


def test_with_base_nothing_skipped(pair):
    """With a base at hand every rule runs: no notice."""
    base, ft = pair
    report = ftfix.check(base, ft)
    assert report.skipped_rules == [] and report.notice() is None
    assert report.base_source == "given"


# ------------------------------------------------------------------------- base discovery
def _adapter_naming(tmp_path, value):
    adapter = tmp_path / "adapter"
    build_tokenizer(adapter)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": value})
    )
    return adapter


def test_base_from_adapter_config(pair, tmp_path):
    """adapter_config.json base_model_name_or_path (a folder here) is used."""
    base, _ = pair
    report = ftfix.check(_adapter_naming(tmp_path, str(base)))
    assert report.base == str(base) and report.base_source == "adapter_config.json"
    assert report.skipped_rules == []


def test_base_from_config_name_or_path(pair):
    """A merged model's config.json _name_or_path (a folder here) is used."""
    base, ft = pair
    set_json_key(ft / "config.json", "_name_or_path", str(base))
    report = ftfix.check(ft)
    assert report.base_source == "config.json" and report.skipped_rules == []


def test_base_from_model_card(pair):
    """README.md front matter `base_model:` (as the Hub writes it, a list here)."""
    base, ft = pair
    (ft / "README.md").write_text(f"---\nlibrary_name: transformers\nbase_model:\n- {base}\n---\n")
    report = ftfix.check(ft)
    assert report.base_source == "README.md" and report.skipped_rules == []


def test_base_from_trainer_root(pair, tmp_path):
    """checkpoint-N names nothing; the trainer root's README does."""
    base, _ = pair
    root = build_trainer_root(tmp_path / "run", steps=(5, 10))
    (root / "README.md").write_text(f"---\nbase_model: {base}\n---\n# run\n")
    for target in (root, root / "checkpoint-5"):
        report = ftfix.check(target)
        assert report.base_source == "run/README.md", target
        assert report.skipped_rules == []


def test_order_adapter_config_first(pair, tmp_path, offline):
    """adapter_config.json wins over the model card."""
    base, _ = pair
    other = copy_checkpoint(base, tmp_path / "other")
    adapter = _adapter_naming(tmp_path, str(base))
    (adapter / "README.md").write_text(f"---\nbase_model: {other}\n---\n")
    assert ftfix.check(adapter).base == str(base)


def test_unreachable_hub_id_is_a_notice(tmp_path, offline, capsys):
    """Offline with an empty cache: the base is named, with the command that fetches its small
    files; exit is not 2."""
    adapter = _adapter_naming(tmp_path, HUB_ID)
    code = main(["check", str(adapter)])
    assert code in (0, 1)
    out = capsys.readouterr().out
    assert (
        f"the base {HUB_ID} named in adapter_config.json is not in the local Hugging Face cache"
        in out
    )
    assert f"hf download {HUB_ID} --include" in out


def test_missing_path_is_a_notice(tmp_path, offline):
    """A base path from someone else's machine is skipped with a notice, never bad input."""
    adapter = _adapter_naming(tmp_path, "/root/autodl-tmp/models/Qwen2.5-7B-Instruct")
    report = ftfix.check(adapter)
    reason = next(iter({s.reason for s in report.skipped_rules if s.needs == "the base model"}))
    assert "/root/autodl-tmp/models/Qwen2.5-7B-Instruct" in reason
    assert "does not exist here" in reason


def test_explicit_missing_base_is_usage_error(pair, tmp_path, capsys):
    """An explicit BASE that does not exist stays exit 2."""
    _, ft = pair
    assert main(["check", str(tmp_path / "nope"), str(ft)]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_explicit_missing_hub_id_is_usage_error(pair, offline, capsys):
    """An explicit BASE Hub id that cannot be had is bad input too (the user asked for it)."""
    _, ft = pair
    assert main(["check", HUB_ID, str(ft)]) == 2
    assert "not in the local Hugging Face cache" in capsys.readouterr().err


# ------------------------------------------------------------------------- rule isolation
def test_raising_rule_is_an_internal_error_of_that_rule(pair, monkeypatch, capsys):
    """A rule that raises: its code and one line, the other rules' findings, exit 3."""
    base, ft = pair
    (ft / "chat_template.jinja").unlink()  # FTX001 still reports this
    broken = type(registry.get("FTX207"))

    def boom(self, ctx):
        raise RuntimeError("boom\nsecond line")
        yield

    monkeypatch.setattr(broken, "check", boom)
    report = ftfix.check(base, ft)
    assert [(f.code, f.message) for f in report.internal_errors] == [
        ("FTX207", "RuntimeError: boom")
    ]
    assert "FTX001" in {f.code for f in report.findings}
    assert report.exit_code == 3
    assert main(["check", str(base), str(ft)]) == 3
    out = capsys.readouterr().out
    assert "internal error: FTX207 pad-token-is-eos failed: RuntimeError: boom" in out
    assert "Traceback" not in out
    assert main(["--debug", "check", str(base), str(ft)]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().out


def test_wordlevel_unk_missing_from_vocab(pair, capsys):
    """The real trigger: a WordLevel tokenizer whose unk token is not in its vocabulary loads but
    raises on encode. The template's unknown marker makes FTX007 encode it: that rule is an
    internal error (one line, exit 3); the other rules still report (FTX004, the template
    changed from the base's)."""
    base, ft = pair
    data = json.loads((ft / "tokenizer.json").read_text())
    data["model"]["unk_token"] = "<not-in-vocab>"
    (ft / "tokenizer.json").write_text(json.dumps(data))
    template = (ft / "chat_template.jinja").read_text()
    (ft / "chat_template.jinja").write_text("<|weird_marker|>" + template)
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(str(ft / "tokenizer.json"))
    with pytest.raises(Exception, match=r"Missing .* token from the vocabulary"):
        tok.encode("<|weird_marker|>")
    report = ftfix.check(base, ft)  # no exception escapes
    assert [(f.code, f.message) for f in report.internal_errors] == [
        ("FTX007", "Exception: WordLevel error: Missing [UNK] token from the vocabulary")
    ]
    assert "FTX004" in {f.code for f in report.findings}
    assert report.exit_code == 3
    assert main(["check", str(base), str(ft)]) == 3
    out = capsys.readouterr().out
    assert "internal error: FTX007 template-marker-not-single-token failed" in out


# ------------------------------------------------------------------------------ callback
def test_repair_callback_without_base(pair, tmp_path):
    """RepairCallback() with no base repairs what the folder alone allows, never raises."""
    pytest.importorskip("transformers")
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from ftfix.integrations.transformers import RepairCallback

    root = build_trainer_root(tmp_path / "out", steps=(3,))
    callback = RepairCallback()
    args = TrainingArguments(output_dir=str(root), report_to=[])
    state = TrainerState(global_step=3)
    callback.on_save(args, state, TrainerControl())
    assert callback.errors == {}
    (report,) = callback.reports.values()
    assert report.base is None and report.skipped_rules


# ----------------------------------------------------------------- what runs without a base
END_OF_TEXT = TOKEN_IDS["<|end_of_text|>"]
EOT = TOKEN_IDS["<|eot_id|>"]
ALONE_CASES = {
    # rule: (build_merged keywords, what the finding says) - each judged from the folder alone
    "FTX202": ({"generation_eos": END_OF_TEXT}, "assistant turns end with <|eot_id|>"),
    "FTX204": (
        {"eos_token": "<|end_of_text|>", "generation_eos": [END_OF_TEXT, EOT]},
        "tokenizer eos_token is <|end_of_text|> but assistant turns end with <|eot_id|>",
    ),
    "FTX207": ({"pad_token": "<|eot_id|>"}, ""),
    "FTX102": ({"zero_rows": [EOT]}, "<|eot_id|>"),
    "FTX206": ({"zero_rows": [EOT]}, "<|eot_id|>"),
    "FTX101": ({"embedding_rows": BASE_VOCAB_SIZE - 2}, "rows"),
    "FTX003": ({"chat_template": "{% for m in messages %}{{ m['content'] }"}, ""),
    "FTX005": ({"chat_template": LLAMA3_TEMPLATE_NO_GEN_PROMPT}, "add_generation_prompt"),
}


@pytest.mark.parametrize("code", sorted(ALONE_CASES))
def test_rule_judges_the_folder_alone(make_checkpoint, code, offline):
    """Rules that need no base find their problem with `check(ft)`, on the same files as with
    the base (FTX005 aside: with a base that prompts, FTX002 takes that case over)."""
    kw, text = ALONE_CASES[code]
    ft = make_checkpoint("ft", **kw)
    alone = [f for f in ftfix.check(ft).findings if f.code == code]
    assert alone, ftfix.check(ft).render_text()
    assert text in alone[0].message
    base = make_checkpoint("base")
    with_base = [f for f in ftfix.check(base, ft).findings if f.code == code]
    if code != "FTX005":
        assert {f.path for f in alone} <= {f.path for f in with_base}


def test_healthy_folder_alone_has_no_findings(pair, offline):
    """No base and nothing wrong: no finding from the rules that ran (no false alarm)."""
    _, ft = pair
    report = ftfix.check(ft)
    assert report.findings == [], report.render_text()
    ran = {f.code for f in registry.all_fixers()} - {s.code for s in report.skipped_rules}
    assert {"FTX003", "FTX101", "FTX102", "FTX202", "FTX207", "FTX305", "FTX920", "FTX922"} <= ran


def test_folder_rules_run_alone(pair, offline):
    """FTX922 finds a byte-order mark in config.json without a base."""
    _, ft = pair
    data = (ft / "config.json").read_bytes()
    (ft / "config.json").write_bytes(b"\xef\xbb\xbf" + data)
    report = ftfix.check(ft)
    assert "FTX922" in {f.code for f in report.findings}, report.render_text()


def test_adapter_weights_need_its_base(tmp_path, offline):
    """An adapter's rows are judged against its base's matrices: skipped without the base."""
    adapter = _adapter_naming(tmp_path, None)
    report = ftfix.check(adapter)
    skipped = {s.code: s for s in report.skipped_rules}
    assert skipped["FTX102"].needs == "the base model"


@pytest.mark.parametrize("value", [None, "/root/autodl-tmp/base", "../base"])
def test_adapter_base_unusable_never_bad_input(tmp_path, offline, value, capsys):
    """null, absolute elsewhere, relative: each is checked, never exit 2."""
    adapter = _adapter_naming(tmp_path, value)
    assert main(["check", str(adapter)]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err
