"""A checkpoint on the Hugging Face Hub, read without downloading its weights.

The small files (configs, tokenizer, templates, the shard index, the model card) are downloaded
through the huggingface_hub cache. Weight files are read by HTTP range requests: their headers
and the rows the rules ask for, never the whole file. The checkpoint is laid out as a local
folder (a mirror) whose small files link to the cache and whose weight files are empty
placeholders; `RangeSource`s stand in for the placeholders' bytes. Every byte fetched is counted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointNotFoundError, InvalidCheckpointError

__all__ = ["HubCheckpoint", "RangeSource", "Transfer", "git_blob_sha1", "open_hub"]

logger = logging.getLogger(__name__)

# What ftfix reads besides weights; everything else in a repo (images, GGUF files, logs) is left.
SMALL_PATTERNS = (
    "*.json", "*.jinja", "*.model", "*.txt", "*.tiktoken", "README.md",
    "additional_chat_templates/*.jinja",
)  # fmt: skip
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
# A small file larger than this is not small: refuse rather than download gigabytes.
MAX_SMALL_FILE = 64 * 1024 * 1024


@dataclass
class Transfer:
    """What was fetched from the Hub for one checkpoint.

    Args:
        small_files (`int`): bytes of small files downloaded (cache hits cost nothing).
        weights (`int`): bytes of weight files fetched by range requests.
        requests (`int`): range requests made.
        downloaded (`list[str]`): small files downloaded.
        cached (`list[str]`): small files found in the cache.
        from_base (`list[str]`): small files identical (by git hash) to the local base's, not
            fetched.
        weight_files (`dict[str, int]`): size of each weight file on the Hub.
    """

    small_files: int = 0
    weights: int = 0
    requests: int = 0
    downloaded: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    from_base: list[str] = field(default_factory=list)
    weight_files: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total(self) -> int:
        """All bytes fetched."""
        return self.small_files + self.weights

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable counts."""
        return {
            "bytes": self.total,
            "small_file_bytes": self.small_files,
            "weight_bytes": self.weights,
            "range_requests": self.requests,
            "weight_file_bytes": sum(self.weight_files.values()),
            "downloaded": list(self.downloaded),
            "cached": list(self.cached),
            "from_base": list(self.from_base),
        }


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's content (what the Hub lists as a file's blob id)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class RangeSource:
    """The bytes of one weight file on the Hub, fetched by HTTP range requests and cached.

    Args:
        url (`str`): the file's resolve URL (at a fixed commit).
        size (`int`): the file's size.
        name (`str`): its path in the repo, for messages.
        transfer (`Transfer`): where fetched bytes are counted.
        token (`str` or `bool`, *optional*): as huggingface_hub takes it.
    """

    def __init__(
        self, url: str, size: int, name: str, transfer: Transfer, token: str | bool | None = None
    ):
        self.url = url
        self.size = size
        self.name = name
        self._transfer = transfer
        self._token = token
        self._cache: dict[tuple[int, int], bytes] = {}

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer at the end of the file), one request at most.

        Raises:
            `InvalidCheckpointError`: the request failed or the server ignored the range.
        """
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        key = (offset, length)
        if key in self._cache:
            return self._cache[key]
        from huggingface_hub import get_session
        from huggingface_hub.utils._headers import build_hf_headers

        headers = build_hf_headers(token=self._token)
        headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        headers["Accept-Encoding"] = "identity"
        try:
            response = get_session().get(self.url, headers=headers, follow_redirects=True)
        except Exception as exc:  # network errors of any client library
            raise InvalidCheckpointError(
                self.name, f"range request failed: {exc}", hint="check the network and try again"
            ) from exc
        if response.status_code != 206:
            raise InvalidCheckpointError(
                self.name,
                f"range request answered {response.status_code}, not 206 Partial Content",
                hint="the server does not serve byte ranges; download the model instead",
            )
        data = response.content[:length]
        with self._transfer._lock:
            self._transfer.weights += len(response.content)
            self._transfer.requests += 1
        if len(data) != length:
            raise InvalidCheckpointError(self.name, f"short range read at byte {offset}")
        self._cache[key] = data
        return data


@dataclass
class HubCheckpoint:
    """A Hub repository laid out as a local mirror folder.

    Args:
        repo_id (`str`): `org/name`.
        revision (`str`): the commit the files were read at.
        folder (`Path`): the mirror: small files link to the cache, weight files are empty.
        sources (`dict[str, RangeSource]`): weight file -> its bytes on the Hub.
        transfer (`Transfer`): what was fetched.
        private (`bool`): whether the repository is private or gated.
    """

    repo_id: str
    revision: str
    folder: Path
    sources: dict[str, RangeSource]
    transfer: Transfer
    private: bool = False

    def close(self) -> None:
        """Remove the mirror folder (the cache keeps the small files)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def hub_cache_dir() -> str | None:
    """The huggingface_hub cache as the environment names it now (`HF_HUB_CACHE`, `HF_HOME`)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns) and (
        "/" not in name or name.startswith("additional_chat_templates/")
    )


def _hub_error(repo_id: str, exc: Exception) -> CheckpointNotFoundError:
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return CheckpointNotFoundError(
            repo_id,
            "is a gated repository and this token has no access",
            hint="accept the model's conditions on its Hub page, then `hf auth login` or set "
            "HF_TOKEN",
        )
    if isinstance(exc, RevisionNotFoundError):
        return CheckpointNotFoundError(
            repo_id, "has no such revision", hint="check --revision (a branch, tag or commit)"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return CheckpointNotFoundError(
            repo_id,
            "not found on the Hub, or private and no token with access was given",
            hint="check the id; for a private repository run `hf auth login` or set HF_TOKEN",
        )
    return CheckpointNotFoundError(
        repo_id, f"could not be read from the Hub: {exc}", hint="check the network and try again"
    )


def open_hub(
    repo_id: str,
    *,
    revision: str | None = None,
    base_files: Mapping[str, Path] | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
) -> HubCheckpoint:
    """Lay out a Hub model repository as a mirror folder, fetching only small files.

    Args:
        repo_id (`str`): `org/name`.
        revision (`str`, *optional*): branch, tag or commit (default: the main branch).
        base_files (`Mapping[str, Path]`, *optional*): small files of the local base, by path;
            a file of the repo with the same git hash is linked from there, not fetched.
        token (`str` or `bool`, *optional*): as huggingface_hub takes it (default: the login).
        cache_dir (`str` or `os.PathLike`, *optional*): the huggingface_hub cache.

    Raises:
        `CheckpointNotFoundError`: no such repo or revision, or private/gated without access.
        `InvalidCheckpointError`: a "small" file is too large to be one.
    """
    from huggingface_hub import HfApi, hf_hub_download, hf_hub_url, try_to_load_from_cache

    # Read now, not at huggingface_hub's import: notebooks and tests set them late.
    endpoint = os.environ.get("HF_ENDPOINT") or None
    if cache_dir is None:
        cache_dir = hub_cache_dir()
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(
            repo_id, revision=revision, files_metadata=True
        )
    except Exception as exc:
        raise _hub_error(repo_id, exc) from exc
    commit = info.sha or revision or "main"
    transfer = Transfer()
    folder = Path(tempfile.mkdtemp(prefix="ftfix-hub-"))
    sources: dict[str, RangeSource] = {}
    try:
        for sibling in info.siblings or []:
            name = sibling.rfilename
            size = sibling.lfs.size if sibling.lfs is not None else (sibling.size or 0)
            local = folder.joinpath(*name.split("/"))
            if _matches(name, WEIGHT_PATTERNS):
                local.parent.mkdir(parents=True, exist_ok=True)
                local.touch()  # a placeholder: its bytes come from the RangeSource
                transfer.weight_files[name] = size
                url = hf_hub_url(repo_id, name, revision=commit, endpoint=endpoint)
                sources[name] = RangeSource(url, size, name, transfer, token)
                continue
            if not _matches(name, SMALL_PATTERNS):
                continue
            if size > MAX_SMALL_FILE:
                raise InvalidCheckpointError(
                    f"{repo_id}/{name}",
                    f"is {size} bytes, too large for a configuration or tokenizer file",
                    hint="download the repository and check the folder",
                )
            local.parent.mkdir(parents=True, exist_ok=True)
            same = _from_base(base_files, name, sibling.blob_id)
            if same is not None:
                os.symlink(same, local)
                transfer.from_base.append(name)
                continue
            cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=commit)
            if isinstance(cached, str):
                transfer.cached.append(name)
                path = cached
            else:
                # By the name the user gave (default "main"), so the cache records the ref
                # and an offline run finds the snapshot again.
                path = hf_hub_download(
                    repo_id,
                    name,
                    revision=revision or "main",
                    cache_dir=cache_dir,
                    token=token,
                    endpoint=endpoint,
                )
                transfer.downloaded.append(name)
                transfer.small_files += Path(path).stat().st_size
            os.symlink(os.path.realpath(path), local)
    except (CheckpointNotFoundError, InvalidCheckpointError):
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _hub_error(repo_id, exc) from exc
    private = bool(getattr(info, "private", False) or getattr(info, "gated", False))
    return HubCheckpoint(repo_id, commit, folder, sources, transfer, private)


def _from_base(
    base_files: Mapping[str, Path] | None, name: str, blob_id: str | None
) -> Path | None:
    if not base_files or not blob_id or name not in base_files:
        return None
    try:
        data = base_files[name].read_bytes()
    except OSError:
        return None
    return base_files[name].resolve() if git_blob_sha1(data) == blob_id else None
