"""`ftfix check ORG/NAME`: a fine-tune on the Hub, read through a real HTTP server on 127.0.0.1
that implements the endpoints huggingface_hub calls, counting the bytes it serves.

The repo is an 8B-shaped Llama chat fine-tune (four sparse shards, 16 GB of weight files) whose
generation config stops only on `<|end_of_text|>` and whose `<|eot_id|>` output row is zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import huggingface_hub.constants
import pytest
from builders_hub import build_hub_base, build_hub_finetune, variant
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, tree_digest
from hub_server import FakeHub

import ftfix
from ftfix.cli import main
from ftfix.errors import CheckpointNotFoundError, UsageError

REPO = "acme/llama3-8b-chat"
BROKEN = "acme/llama3-8b-chat-v2"  # also lost the template's generation prompt
PRIVATE = "acme/private-chat"
TOKEN = "hf_test_token_21"
MB = 10**6


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The server, serving the 8B-shaped fine-tune publicly and privately (one folder)."""
    root = tmp_path_factory.mktemp("hub")
    folder = root / "repo"
    size = build_hub_finetune(folder)
    assert size > 16 * 10**9
    server = FakeHub(lifetime=600)
    server.add(REPO, folder)
    server.add(PRIVATE, folder, private=True, token=TOKEN)
    broken = variant(
        folder, root / "broken", {"chat_template.jinja": LLAMA3_TEMPLATE_NO_GEN_PROMPT.encode()}
    )
    server.add(BROKEN, broken)
    url = server.start()
    yield server, url, folder
    server.stop()


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    """Online, with the Hub at the loopback server, an empty cache and no token."""
    server, url, _ = hub
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    # huggingface_hub read these at import (conftest sets offline mode for every other test).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    server.served.clear()
    server.requests.clear()
    server.refused.clear()
    server.commits.clear()
    return server


@pytest.fixture
def base(tmp_path):
    return build_hub_base(tmp_path / "base")


def codes(report: ftfix.Report) -> list[str]:
    return sorted(f.code for f in report.findings)


def test_check_reads_headers_and_rows_not_weights(env, base, hub, tmp_path):
    """The untrained end-of-turn row and the stop gap are found reading < 10 MB of 16 GB."""
    report = ftfix.check(base, REPO)
    assert {"FTX202", "FTX206"} <= set(codes(report)), report.render_text()
    weights = env.weight_bytes(REPO)
    assert 0 < weights < 10 * MB, weights
    assert env.refused == []
    # What the report says was fetched is what the server sent.
    fetched = report.fetched
    assert fetched is not None and fetched["weight_bytes"] == weights
    assert fetched["small_file_bytes"] == env.small_file_bytes(REPO)
    assert fetched["weight_file_bytes"] == sum(
        p.stat().st_size for p in hub[2].glob("*.safetensors")
    )
    assert fetched["range_requests"] == sum(1 for r in env.requests if r[2])
    # Every weight request is a range; small files are fetched whole, each once.
    assert all(r[2] for r in env.requests if r[1].endswith(".safetensors"))
    small = [r for r in env.requests if r[0] == "GET" and "/resolve/" in r[1] and not r[2]]
    assert all(r[2] is None for r in small)
    for name in fetched["downloaded"]:
        assert env.served[f"{REPO}/{name}"] == (hub[2] / name).stat().st_size
    # Small files identical by hash to the local base's are not fetched at all.
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(
        fetched["from_base"]
    )
    assert not [r for r in env.requests if r[1].endswith("/tokenizer.json")]
    assert "generation_config.json" in fetched["downloaded"]
    # The mirror folder is gone once the check is done.
    assert list((tmp_path / "tmp").iterdir()) == []


def test_same_findings_as_the_folder_on_disk(env, base, hub):
    """Reading over HTTP changes nothing in what is found: same codes and messages."""
    remote = ftfix.check(base, REPO)
    local = ftfix.check(base, hub[2])
    assert [(f.code, f.path, f.message) for f in remote.findings] == [
        (f.code, f.path, f.message) for f in local.findings
    ]
    assert remote.findings and remote.exit_code == local.exit_code == 1


def test_small_files_come_from_the_cache_the_second_time(env, base):
    first = ftfix.check(base, REPO)
    served = env.small_file_bytes(REPO)
    second = ftfix.check(base, REPO)
    assert first.fetched and second.fetched
    assert second.fetched["downloaded"] == [] and second.fetched["small_file_bytes"] == 0
    assert set(second.fetched["cached"]) == set(first.fetched["downloaded"])
    assert env.small_file_bytes(REPO) == served


def test_without_a_base_the_small_files_are_all_fetched(env):
    """No base given and none named: every small file is downloaded; base rules are skipped."""
    report = ftfix.check(REPO)
    assert report.fetched and "tokenizer.json" in report.fetched["downloaded"]
    assert report.fetched["from_base"] == []
    assert report.skipped_rules
    assert env.weight_bytes(REPO) < 10 * MB


def test_revision(env, base):
    sha = env.repos[REPO].sha
    report = ftfix.check(base, REPO, revision=sha)
    assert report.fetched and report.fetched["revision"] == sha
    with pytest.raises(CheckpointNotFoundError, match="has no such revision"):
        ftfix.check(base, REPO, revision="v9")


def test_private_repo_without_token_is_a_clear_error(env, base, monkeypatch, capsys):
    with pytest.raises(CheckpointNotFoundError) as info:
        ftfix.check(base, PRIVATE)
    assert "private" in info.value.reason and "HF_TOKEN" in (info.value.hint or "")
    assert main(["check", str(base), PRIVATE]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ftfix: error: {PRIVATE}: not found on the Hub, or private")
    assert "hint: check the id; for a private repository run `hf auth login`" in err
    # With the user's token, as huggingface_hub reads it, the same repo is checked.
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert "FTX206" in codes(ftfix.check(base, PRIVATE))


def test_revision_needs_a_hub_id(env, base):
    with pytest.raises(UsageError, match="applies to a fine-tune given as a Hub id"):
        ftfix.check(base, base, revision="main")


def test_offline_uses_the_cache_only(env, base, monkeypatch):
    """Offline, the cached small files are checked as far as they go; nothing is requested."""
    ftfix.check(REPO)  # no base: every small file goes to the cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    before = len(env.requests)
    report = ftfix.check(base, REPO)
    assert len(env.requests) == before
    assert report.fetched is None and "FTX202" in codes(report)
    # The cache holds no weights: the shards the index names are reported missing.
    assert "FTX902" in codes(report)


def test_cli_with_hf_endpoint_in_the_environment(env, base, hub, tmp_path):
    """The real path a user takes: a new process, HF_ENDPOINT set, text and JSON reports."""
    environ = {
        **os.environ,
        "PYTHONPATH": str(Path(ftfix.__file__).parent.parent),
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "home"),
    }
    cmd = [sys.executable, "-m", "ftfix", "check", str(base), REPO]
    text = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=120)
    assert text.returncode == 1, text.stderr
    assert f"{REPO}/generation_config.json: FTX202 error" in text.stdout
    line = next(x for x in text.stdout.splitlines() if x.startswith(f"Read {REPO} at "))
    assert "of 16.1 GB in" in line and "identical to the base's" in line
    out = subprocess.run(
        [*cmd, "--format", "json"], env=environ, capture_output=True, text=True, timeout=120
    )
    doc = json.loads(out.stdout)
    assert doc["finetuned"] == REPO and doc["fetched"]["weight_bytes"] < 10 * MB
    assert env.refused == []


# ----------------------------------------------------------------------------- repair --pr
def test_pr_files_equal_what_a_local_repair_writes(env, base, hub, tmp_path, monkeypatch):
    """One pull request, on the checked commit, whose files are byte for byte what `ftfix
    repair` writes into a local copy; weights are never pushed."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    report = ftfix.repair(base, BROKEN, pr=True, unsafe_fixes=True)
    (commit,) = env.commits
    assert commit["repo"] == BROKEN and commit["query"] == "create_pr=1"
    assert commit["header"]["parentCommit"] == env.repos[BROKEN].sha
    local = variant(env.repos[BROKEN].folder, tmp_path / "local", {})
    written = ftfix.repair(base, local, backup=False).written
    assert sorted(commit["files"]) == sorted(written) == report.written
    assert {"chat_template.jinja", "generation_config.json"} <= set(written)
    for name, data in commit["files"].items():
        assert data == (local / name).read_bytes(), name
    assert not [n for n in commit["files"] if n.endswith(".safetensors")]
    pull = report.pull_request
    assert pull is not None and pull["url"].endswith(f"/{BROKEN}/discussions/1")
    # What the PR leaves: the untrained row, which no file change fixes.
    assert "FTX206" in codes_of(report.remaining) and "FTX202" not in codes_of(report.remaining)
    assert env.weight_bytes(BROKEN) < 10 * MB and env.refused == []


def codes_of(findings) -> set[str]:
    return {f.code for f in findings}


def test_pr_description_says_what_was_wrong_the_evidence_and_what_changed(env, base):
    report = ftfix.repair(base, BROKEN, pr=True, dry_run=True)
    assert env.commits == []  # a dry run opens nothing
    pull = report.pull_request
    assert pull is not None and pull["url"] is None
    text = pull["description"]
    fixed, _, rest = text.partition("## Not changed by this pull request")
    for finding in report.applied:
        assert finding.code in fixed and finding.message in fixed
    assert {"FTX002", "FTX202"} <= codes_of(report.applied)
    assert "FTX206" in rest and "no automatic fix" in rest
    assert "FTX102" in rest and "not pushed" in rest
    assert "```diff\n--- a/chat_template.jinja" in text and "+++ b/generation_config.json" in text
    assert pull["files"] == ["chat_template.jinja", "generation_config.json"]
    assert pull["parent_commit"] == env.repos[BROKEN].sha


def test_pr_dry_run_cli_shows_the_pr(env, base, capsys):
    assert main(["repair", str(base), BROKEN, "--pr", "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert f"Would open a pull request on {BROKEN} changing chat_template.jinja, " in out
    assert "  title: ftfix: " in out and "## What was wrong, and what this changes" in out
    assert env.commits == []


def test_pr_without_a_token(env, base, capsys):
    """Public repo, no token: the check works, the push is refused with a clear error; a
    private repo without a token stops before anything is read."""
    with pytest.raises(CheckpointNotFoundError, match="refused the pull request: no token"):
        ftfix.repair(base, BROKEN, pr=True)
    assert main(["repair", str(base), PRIVATE, "--pr"]) == 2
    err = capsys.readouterr().err
    assert "not found on the Hub, or private" in err and "hf auth login" in err
    assert env.commits == []


def test_pr_needs_a_hub_id_and_the_hub_needs_pr(env, base, tmp_path):
    before = tree_digest(base)
    with pytest.raises(UsageError, match="--pr: applies to a fine-tune given as a Hub id"):
        ftfix.repair(base, base, pr=True)
    with pytest.raises(UsageError, match="pass --pr"):
        ftfix.repair(base, BROKEN)
    assert tree_digest(base) == before and env.commits == []
