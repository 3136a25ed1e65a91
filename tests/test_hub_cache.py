"""A base given as a Hub id resolves through a Hugging Face cache built in the test (offline)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, build_merged, tree_digest
from helpers import LLAMA3_ASSISTANT_HEADER, transformers_render

import ftfix


def make_hub_cache(cache: Path, repo_id: str, source: Path, revision: str = "a" * 40) -> Path:
    """Lay `source` out as huggingface_hub does: blobs by hash, snapshot symlinks, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def test_hub_id_base_from_offline_cache(tmp_path, monkeypatch):
    """`repair("org/name", ft)` reads the base from the cache; the cache is not modified."""
    cache = tmp_path / "hub"
    base_src = build_merged(tmp_path / "src")
    make_hub_cache(cache, "tiny-org/tiny-llama", base_src)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ft = build_merged(tmp_path / "ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    cache_before = tree_digest(cache)

    report = ftfix.repair("tiny-org/tiny-llama", ft)

    assert [f.code for f in report.applied] == ["FTX002"]
    assert report.base == "tiny-org/tiny-llama"
    assert transformers_render(ft).endswith(LLAMA3_ASSISTANT_HEADER)
    assert tree_digest(cache) == cache_before


def test_repair_of_a_cache_snapshot_replaces_symlinks(tmp_path, monkeypatch):
    """Repairing a snapshot folder replaces the symlink; the shared blob keeps its bytes."""
    cache = tmp_path / "hub"
    base = build_merged(tmp_path / "base")
    ft_src = build_merged(tmp_path / "src", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)
    snapshot = make_hub_cache(cache, "me/ft", ft_src)
    blobs_before = tree_digest(cache / "models--me--ft" / "blobs")
    ftfix.repair(base, snapshot)
    assert tree_digest(cache / "models--me--ft" / "blobs") == blobs_before
    assert not (snapshot / "chat_template.jinja").is_symlink()
    assert transformers_render(snapshot).endswith(LLAMA3_ASSISTANT_HEADER)


def test_online_base_fetches_small_files_only(tmp_path, monkeypatch):
    """Online and not cached: the base's configs and tokenizer are fetched, weights are skipped.

    The Hub is unreachable here, so huggingface_hub's snapshot_download is replaced by a stand-in
    that serves a real base folder the way the Hub would, honouring ignore_patterns.
    """
    import fnmatch
    import shutil

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    source = build_merged(tmp_path / "hub-side", shards=2)
    served = tmp_path / "downloaded"
    calls = []

    def fake_snapshot_download(
        repo_id, *, local_files_only=False, cache_dir=None, ignore_patterns=()
    ):
        calls.append(
            {"repo_id": repo_id, "local_files_only": local_files_only, "ignore": ignore_patterns}
        )
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        for file in source.iterdir():
            if not any(fnmatch.fnmatch(file.name, pattern) for pattern in ignore_patterns):
                served.mkdir(exist_ok=True)
                shutil.copy(file, served / file.name)
        return str(served)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    ft = build_merged(tmp_path / "ft", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT)

    report = ftfix.repair("org/online-base", ft)

    assert [c["local_files_only"] for c in calls] == [True, False]
    assert "FTX002" in [f.code for f in report.applied]
    assert sorted(p.name for p in served.iterdir() if p.suffix == ".safetensors") == []
    assert not (served / "model.safetensors.index.json").exists()
    assert (served / "tokenizer.json").exists()
