"""A read-only, lazy view of one checkpoint folder, optionally seen through planned edits."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import (
    CheckpointNotFoundError,
    InvalidCheckpointError,
    UnsafePathError,
)
from . import jsonfmt
from .limits import limit_for, read_limited
from .problems import FileProblem, ProblemKind, is_lfs_pointer, lfs_pointer
from .safetensors import ByteSource, SafetensorsFile
from .tokenizer import TokenizerView, open_tokenizer

if TYPE_CHECKING:
    pass

__all__ = ["Checkpoint", "Kind", "TemplateLocation", "is_hub_id", "offline", "resolve_path"]

logger = logging.getLogger(__name__)

CHAT_TEMPLATE_FILE = "chat_template.jinja"
CHAT_TEMPLATE_DIR = "additional_chat_templates"
PROCESSOR_TEMPLATE_FILE = "chat_template.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
SPECIAL_TOKEN_KEYS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)  # fmt: skip
_WEIGHT_FILES = (
    "model.safetensors",
    SAFETENSORS_INDEX,
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")
PICKLED_INDEX = "pytorch_model.bin.index.json"
# The small files ftfix parses; a folder where none of these (nor any weights) can be read
# gives ftfix nothing to check.
_SMALL_JSON = (
    "config.json", "generation_config.json", TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP,
    "added_tokens.json", "adapter_config.json", SAFETENSORS_INDEX, PROCESSOR_TEMPLATE_FILE,
    "preprocessor_config.json", "processor_config.json",
)  # fmt: skip
_TOKENIZER_FILES = (TOKENIZER_CONFIG, "tokenizer.json", "tokenizer.model", "vocab.json")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class Kind(str, Enum):
    """What a checkpoint folder holds."""

    MERGED = "merged"
    ADAPTER = "adapter"
    TOKENIZER = "tokenizer"


@dataclass(frozen=True)
class TemplateLocation:
    """One place a chat template is stored.

    Args:
        path (`str`): file relative to the checkpoint.
        key (`str`, *optional*): the JSON key holding it, `None` for a `.jinja` file.
        name (`str`): template name; `default` is the one used when no name is asked for.
        source (`str`): the template text.
    """

    path: str
    key: str | None
    name: str
    source: str

    def describe(self) -> str:
        """`tokenizer_config.json["chat_template"]` or the plain file path."""
        return f'{self.path}["{self.key}"]' if self.key else self.path


def resolve_path(path: str | os.PathLike[str], *, role: str) -> Path:
    """Turn a user's path or Hub id into an existing folder.

    A path that exists is used as is. A base given as `org/name` that is not a local folder is
    looked up in the local Hugging Face cache (never downloaded here).

    Raises:
        `CheckpointNotFoundError`: nothing at that path and no cached snapshot.
        `InvalidCheckpointError`: the path is a file, not a folder.
    """
    text = os.fspath(path)
    candidate = Path(text).expanduser()
    if candidate.exists():
        if not candidate.is_dir():
            raise InvalidCheckpointError(
                candidate,
                "is a file, not a checkpoint folder",
                hint="pass the folder that holds config.json / adapter_config.json",
            )
        return candidate
    if role == "base" and _HUB_ID.match(text):
        snapshot = _cached_snapshot(text)
        if snapshot is not None:
            return snapshot
        raise CheckpointNotFoundError(
            text,
            "not a local folder and not in the local Hugging Face cache"
            + ("" if offline() else ", and it could not be downloaded"),
            hint=f"check the id, or download it first (`hf download {text}`), or pass the base's "
            "folder",
        )
    raise CheckpointNotFoundError(text, "no such file or directory", hint=f"check the {role} path")


# What a base fetched from the Hub may skip: ftfix reads configs, tokenizer and template files,
# and weights only through rules that can do without the base's.
_WEIGHT_PATTERNS = (
    "*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.h5", "*.msgpack", "*.onnx",
    "*.index.json",
)  # fmt: skip


def is_hub_id(text: str) -> bool:
    """Whether `text` has the shape of a Hub repository id (`org/name`)."""
    return bool(_HUB_ID.match(text))


def offline() -> bool:
    """Whether `HF_HUB_OFFLINE` forbids downloads."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of `repo_id`; when online and not cached, its small files only."""
    # Imported here: huggingface_hub is only needed when a base is given as a Hub id.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    # Read the cache location now, not at huggingface_hub's import: notebooks and tests set it late.
    cache_dir = os.environ.get("HF_HUB_CACHE")
    if cache_dir is None and os.environ.get("HF_HOME"):
        cache_dir = os.path.join(os.environ["HF_HOME"], "hub")
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except (LocalEntryNotFoundError, OSError, ValueError):
        if offline():
            return None
    logger.info("downloading the configs and tokenizer files of %s (no weights)", repo_id)
    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache_dir, ignore_patterns=list(_WEIGHT_PATTERNS)
        )
    except Exception as exc:  # network, auth, missing repo: the caller reports "not found"
        logger.info("could not download %s: %s", repo_id, exc)
        return None
    return Path(folder)


def _checkpoint_dirs(folder: Path) -> list[tuple[int, Path]]:
    found = []
    real = folder.resolve()
    for child in folder.iterdir():
        match = _CHECKPOINT_DIR.match(child.name)
        # A checkpoint-N symlinked out of the folder the user named is not followed: a repair
        # would write there (issue 19).
        if match and child.is_dir() and real in child.resolve().parents:
            found.append((int(match.group(1)), child))
    return sorted(found)


def _classify(folder: Path) -> Kind | None:
    names = {p.name for p in folder.iterdir()}
    if "adapter_config.json" in names:
        return Kind.ADAPTER
    if "config.json" in names and names.intersection(_WEIGHT_FILES):
        return Kind.MERGED
    if names.intersection(_TOKENIZER_FILES) or "config.json" in names:
        return Kind.TOKENIZER
    return None


class Checkpoint:
    """A lazy, read-only view of one checkpoint folder.

    Files are read when first asked for and cached. `staged(edits)` returns a view of the same
    folder with planned edits laid over it, so a rule sees what earlier fixes will write.

    Use `Checkpoint.open()` rather than the constructor.
    """

    def __init__(
        self,
        root: Path,
        kind: Kind,
        *,
        display: str | None = None,
        overlay: Mapping[str, bytes | None] | None = None,
        disk_cache: dict[str, bytes | None] | None = None,
        problems: dict[str, FileProblem] | None = None,
        remote: Mapping[str, ByteSource] | None = None,
    ):
        self.root = root
        self.kind = kind
        self.display = display if display is not None else str(root)
        self._overlay: dict[str, bytes | None] = dict(overlay or {})
        self._disk: dict[str, bytes | None] = disk_cache if disk_cache is not None else {}
        self._json: dict[str, dict[str, Any] | None] = {}
        # Files that cannot be read, found by `survey()` when the folder is opened.
        self.problems: dict[str, FileProblem] = problems if problems is not None else {}
        # Weight files whose bytes are elsewhere (a checkpoint on the Hub): the folder holds
        # empty placeholders, and these sources serve their headers and rows by range.
        self.remote: dict[str, ByteSource] = dict(remote or {})

    def __repr__(self) -> str:
        staged = f", {len(self._overlay)} staged edits" if self._overlay else ""
        return f"Checkpoint({str(self.root)!r}, kind={self.kind.value}{staged})"

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        role: str = "finetuned",
        display: str | None = None,
        remote: Mapping[str, ByteSource] | None = None,
    ) -> Checkpoint:
        """Open a checkpoint folder.

        A trainer output root (a folder of `checkpoint-N/` folders and no model of its own)
        opens its newest checkpoint.

        Args:
            path (`str` or `os.PathLike`): the folder (or, for `role="base"`, a Hub id).
            role (`str`, *optional*, defaults to `"finetuned"`): `"base"` or `"finetuned"`,
                for messages.
            display (`str`, *optional*): how to name the checkpoint in reports (defaults to
                `path` as given; a Hub id keeps its id).
            remote (`Mapping[str, ByteSource]`, *optional*): weight files of the folder whose
                bytes are elsewhere (a checkpoint on the Hub, see `ftfix.io.remote`).

        Raises:
            `CheckpointNotFoundError`: the path does not exist.
            `InvalidCheckpointError`: the folder holds no Hugging Face checkpoint files, or
                none of them can be read (a folder with some unreadable files opens; they are
                listed in `problems`).
        """
        folder = resolve_path(path, role=role)
        display = os.fspath(path) if display is None else display
        kind = _classify(folder)
        if kind is None:
            steps = _checkpoint_dirs(folder)
            if steps:
                folder = steps[-1][1]
                display = os.path.join(display, folder.name)
                logger.info("%s is a trainer output folder; using its newest %s", path, folder.name)
                kind = _classify(folder)
        if kind is None:
            raise InvalidCheckpointError(
                folder,
                "not a Hugging Face checkpoint "
                "(no config.json, adapter_config.json or tokenizer files)",
                hint="pass the folder written by save_pretrained(); for a PEFT adapter the folder "
                "with adapter_config.json",
            )
        checkpoint = cls(folder, kind, display=display, remote=remote)
        checkpoint.survey()
        return checkpoint

    def survey(self) -> None:
        """Try every file ftfix reads, once, and record those that cannot be read in `problems`.

        Git LFS pointers are named as such whatever the file; JSON that does not parse,
        a tokenizer.json that does not load, a template that is not UTF-8, a damaged
        safetensors header, a shard the index names but the folder lacks, and pickled
        weights (never unpickled) each become one `FileProblem`.

        Raises:
            `InvalidCheckpointError`: not one of the files ftfix reads can be read.
        """
        problems = self.problems
        for rel in self.files():
            if "/" in rel and not rel.startswith(CHAT_TEMPLATE_DIR + "/"):
                continue  # checkpoint-N/ and other subfolders are not this checkpoint's files
            pointer = lfs_pointer(self._safe_path(rel))
            if pointer is not None:
                problems[rel] = FileProblem(rel, pointer.kind, pointer.reason, pointer.hint)
        for name in _SMALL_JSON:
            self._try(name, lambda name=name: self.json(name))
        self._try("tokenizer.json", self.tokenizer)
        for rel in [CHAT_TEMPLATE_FILE] + [
            f"{CHAT_TEMPLATE_DIR}/{n}" for n in self.listdir(CHAT_TEMPLATE_DIR)
        ]:
            self._try(rel, lambda rel=rel: _text(self, rel, self.read_bytes(rel) or b""))
        self._survey_weights()
        readable = [
            rel
            for rel in self.files()
            if ("/" not in rel or rel.startswith(CHAT_TEMPLATE_DIR + "/"))
            and rel not in problems
            and _is_model_file(rel)
            and not rel.endswith(".bin")
        ]
        if problems and not readable:
            first = problems[sorted(problems)[0]]
            raise InvalidCheckpointError(
                self.root,
                f"nothing in the folder can be read ({len(problems)} unreadable files; "
                f"first: {first})",
                hint=first.hint,
            )

    def _try(self, rel: str, read: Any) -> None:
        if rel in self.problems:
            return
        try:
            read()
        except InvalidCheckpointError as exc:
            self.problems[rel] = FileProblem(
                rel, ProblemKind.UNREADABLE, exc.reason, exc.hint or "copy the file again"
            )

    def _survey_weights(self) -> None:
        problems = self.problems
        for index_name in (SAFETENSORS_INDEX, PICKLED_INDEX):
            if index_name in problems:
                continue
            try:
                index = self.json(index_name)
            except InvalidCheckpointError:
                continue
            weight_map = (index or {}).get("weight_map")
            if not isinstance(weight_map, dict):
                continue
            shards = sorted({v for v in weight_map.values() if isinstance(v, str)})
            for shard in shards:
                pure = PurePosixPath(shard)
                if pure.is_absolute() or len(pure.parts) != 1 or shard in (".", ".."):
                    continue  # reported by weight_files() below, as an unsafe index
                if not self._safe_path(shard).is_file():
                    problems[shard] = FileProblem(
                        shard,
                        ProblemKind.MISSING_SHARD,
                        f"is named by {index_name} but is not in the folder",
                        "copy the missing shard (all shards of the model belong together), "
                        "or re-save the model",
                    )
        # Pickled files actually present: the two single files, and the shards a .bin index
        # names (an index whose shards are all missing is reported as missing shards only).
        pickled = [n for n in ("pytorch_model.bin", "adapter_model.bin") if self.exists(n)]
        pickled += [
            shard
            for shard in self._index_shards(PICKLED_INDEX)
            if shard not in problems and self._safe_path(shard).is_file()
        ]
        pickled = [n for n in pickled if n not in problems]
        if pickled and self.kind in (Kind.MERGED, Kind.ADAPTER) and not self._has_safetensors():
            name = pickled[0]
            problems[name] = FileProblem(
                name,
                ProblemKind.PICKLED,
                "holds pickled PyTorch weights, which ftfix never unpickles: the checks that "
                "read weights are skipped",
                "re-save with save_pretrained(..., safe_serialization=True) to get safetensors",
            )
        if self.kind in (Kind.MERGED, Kind.ADAPTER) and not any(
            p.kind is ProblemKind.MISSING_SHARD for p in problems.values()
        ):
            try:
                self.weight_files()
            except (InvalidCheckpointError, UnsafePathError) as exc:
                rel = _relative(exc.path, self.root)
                if rel not in problems:
                    problems[rel] = FileProblem(
                        rel, ProblemKind.UNREADABLE, exc.reason, exc.hint or "copy it again"
                    )

    def _index_shards(self, index_name: str) -> list[str]:
        """The plain file names an index maps tensors to (unreadable index: none)."""
        try:
            index = self.json(index_name) or {}
        except InvalidCheckpointError:
            return []
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            return []
        return sorted(
            {v for v in weight_map.values() if isinstance(v, str) and "/" not in v and v}
            - {".", ".."}
        )

    def _has_safetensors(self) -> bool:
        return any(
            self.exists(n)
            for n in ("model.safetensors", SAFETENSORS_INDEX, "adapter_model.safetensors")
        )

    def weights_problem(self) -> FileProblem | None:
        """The first problem that keeps the weights from being read, or `None`."""
        weight_names = {
            "model.safetensors", SAFETENSORS_INDEX, "adapter_model.safetensors", *_PICKLED,
        }  # fmt: skip
        for rel, problem in sorted(self.problems.items()):
            if (
                problem.kind in (ProblemKind.MISSING_SHARD, ProblemKind.PICKLED)
                or rel in weight_names
                or rel.endswith(".safetensors")
            ):
                return problem
        return None

    def staged(self, edits: Mapping[str, bytes | None]) -> Checkpoint:
        """This checkpoint seen through `edits` (path -> new bytes, `None` = deleted)."""
        overlay = {**self._overlay, **edits}
        problems = {rel: p for rel, p in self.problems.items() if rel not in edits}
        return Checkpoint(
            self.root,
            self.kind,
            display=self.display,
            overlay=overlay,
            disk_cache=self._disk,
            problems=problems,
            remote=self.remote,
        )

    # ------------------------------------------------------------------- files
    def _safe_path(self, rel: str) -> Path:
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise UnsafePathError(self.root, f"refusing path {rel!r} outside the checkpoint")
        return self.root.joinpath(*pure.parts)

    def read_bytes(self, rel: str) -> bytes | None:
        """The bytes of `rel` (staged edits first), or `None` if it does not exist.

        Raises:
            `InvalidCheckpointError`: the file cannot be read, or is a Git LFS pointer (its
                bytes stand for another file).
        """
        if rel in self._overlay:
            return self._overlay[rel]
        if rel not in self._disk:
            path = self._safe_path(rel)
            try:
                # Bounded (io/limits.py): a "small" file in a downloaded folder may be huge.
                self._disk[rel] = read_limited(path, limit_for(rel))
            except OSError as exc:
                raise InvalidCheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc
        data = self._disk[rel]
        if data is not None and is_lfs_pointer(data):
            problem = lfs_pointer(self._safe_path(rel))
            raise InvalidCheckpointError(
                self._safe_path(rel),
                problem.reason if problem else "is a Git LFS pointer; run `git lfs pull`",
                hint=problem.hint if problem else None,
            )
        return data

    def exists(self, rel: str) -> bool:
        """Whether `rel` exists as a file (staged edits first), without reading it."""
        if rel in self._overlay:
            return self._overlay[rel] is not None
        if rel in self._disk:
            return self._disk[rel] is not None
        return self._safe_path(rel).is_file()

    def is_staged(self, rel: str) -> bool:
        """Whether `rel` is replaced (or deleted) by a planned edit in this view."""
        return rel in self._overlay

    def subfolders(self) -> list[str]:
        """Names of the folders directly inside the checkpoint (not `.ftfix`)."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name != ".ftfix")

    def listdir(self, rel: str) -> list[str]:
        """File names directly inside folder `rel`, staged files included."""
        prefix = rel.rstrip("/") + "/"
        names = set()
        folder = self._safe_path(rel)
        if folder.is_dir():
            names = {p.name for p in folder.iterdir() if p.is_file()}
        for path, data in self._overlay.items():
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                if data is None:
                    names.discard(path[len(prefix) :])
                else:
                    names.add(path[len(prefix) :])
        return sorted(names)

    def json(self, rel: str) -> dict[str, Any] | None:
        """Parse `rel` as a JSON object, or `None` when the file does not exist.

        Raises:
            `InvalidCheckpointError`: the file exists but is not UTF-8 JSON holding an object.
        """
        if rel not in self._json:
            data = self.read_bytes(rel)
            if data is None:
                self._json[rel] = None
            else:
                try:
                    self._json[rel] = jsonfmt.loads_object(data)
                except ValueError as exc:
                    raise InvalidCheckpointError(
                        self._safe_path(rel),
                        str(exc),
                        hint="fix or delete the file, or copy it again from the base model",
                    ) from exc
        return self._json[rel]

    @property
    def config(self) -> dict[str, Any]:
        """`config.json`, or `{}`."""
        return self.json("config.json") or {}

    @property
    def tokenizer_config(self) -> dict[str, Any]:
        """`tokenizer_config.json`, or `{}`."""
        return self.json(TOKENIZER_CONFIG) or {}

    @property
    def generation_config(self) -> dict[str, Any] | None:
        """`generation_config.json`, or `None` when absent."""
        return self.json("generation_config.json")

    @property
    def layout(self) -> str:
        """`"v4"` when the folder keeps templates and special tokens the transformers 4 way.

        A folder with `chat_template.jinja` is v5. Without one, a `chat_template` key in
        tokenizer_config.json or a `special_tokens_map.json` (which transformers 5 no longer
        writes) mark v4.
        """
        if self.exists(CHAT_TEMPLATE_FILE):
            return "v5"
        if "chat_template" in self.tokenizer_config or self.exists(SPECIAL_TOKENS_MAP):
            return "v4"
        return "v5"

    def declared_base(self) -> str | None:
        """`base_model_name_or_path` of a PEFT adapter (a folder or Hub id), else `None`."""
        value = (self.json("adapter_config.json") or {}).get("base_model_name_or_path")
        if not isinstance(value, str) or not value:
            return None
        # A relative folder is relative to where training ran; try it next to the adapter too.
        beside = self.root / value
        return str(beside) if not os.path.isabs(value) and beside.is_dir() else value

    # ----------------------------------------------------------- chat templates
    def template_locations(self) -> list[TemplateLocation]:
        """Every stored chat template, in the order transformers' tokenizer prefers them."""
        found: list[TemplateLocation] = []
        jinja = self.read_bytes(CHAT_TEMPLATE_FILE)
        if jinja is not None:
            found.append(
                TemplateLocation(
                    CHAT_TEMPLATE_FILE, None, "default", _text(self, CHAT_TEMPLATE_FILE, jinja)
                )
            )
        for name in self.listdir(CHAT_TEMPLATE_DIR):
            if name.endswith(".jinja"):
                rel = f"{CHAT_TEMPLATE_DIR}/{name}"
                found.append(
                    TemplateLocation(
                        rel,
                        None,
                        name[: -len(".jinja")],
                        _text(self, rel, self.read_bytes(rel) or b""),
                    )
                )
        value = self.tokenizer_config.get("chat_template")
        for name, source in _named_templates(value):
            found.append(TemplateLocation(TOKENIZER_CONFIG, "chat_template", name, source))
        processor = self.json(PROCESSOR_TEMPLATE_FILE) or {}
        if isinstance(processor.get("chat_template"), str):
            found.append(
                TemplateLocation(
                    PROCESSOR_TEMPLATE_FILE, "chat_template", "default", processor["chat_template"]
                )
            )
        return found

    def chat_templates(self) -> dict[str, str]:
        """Named templates as transformers 5 loads them: `.jinja` files win over the JSON key."""
        locations = self.template_locations()
        files = [loc for loc in locations if loc.key is None]
        chosen = files or [loc for loc in locations if loc.path == TOKENIZER_CONFIG]
        if not chosen:
            chosen = [loc for loc in locations if loc.path == PROCESSOR_TEMPLATE_FILE]
        return {loc.name: loc.source for loc in chosen}

    def chat_template(self) -> str | None:
        """The template `apply_chat_template()` uses when no name is given (`default`)."""
        templates = self.chat_templates()
        if "default" in templates:
            return templates["default"]
        return None

    def effective_template_location(self) -> TemplateLocation | None:
        """Where the default template transformers uses is stored."""
        templates = self.chat_templates()
        for loc in self.template_locations():
            if loc.name == "default" and templates.get("default") == loc.source:
                return loc
        return None

    # ----------------------------------------------------------- special tokens
    def special_tokens(self) -> dict[str, str]:
        """Named special tokens as strings, as transformers passes them to chat templates.

        tokenizer_config.json values; when it has no `added_tokens_decoder` (a legacy folder),
        special_tokens_map.json overrides them, as transformers 5 does.
        """
        config = self.tokenizer_config
        values: dict[str, Any] = {k: config.get(k) for k in SPECIAL_TOKEN_KEYS}
        if "added_tokens_decoder" not in config:
            legacy = self.json(SPECIAL_TOKENS_MAP) or {}
            values.update({k: legacy[k] for k in SPECIAL_TOKEN_KEYS if legacy.get(k) is not None})
        tokens = {}
        for key, value in values.items():
            text = token_text(value)
            if text is not None:
                tokens[key] = text
        return tokens

    @cached_property
    def _tokenizer(self) -> TokenizerView | None:
        problem = self.problems.get("tokenizer.json")
        if problem is not None and "tokenizer.json" not in self._overlay:  # do not parse again
            raise InvalidCheckpointError(self._safe_path("tokenizer.json"), problem.reason)
        data = self.read_bytes("tokenizer.json")
        if data is None:
            return None
        return open_tokenizer(data, self._safe_path("tokenizer.json"))

    def tokenizer(self) -> TokenizerView | None:
        """The fast tokenizer from `tokenizer.json`, or `None` when there is none.

        A `TokenizerView`: tables read from the JSON, with the `tokenizers` object built only
        when a text must really be split (see `ftfix.io.tokenizer`).
        """
        return self._tokenizer

    def token_id(self, token: str) -> int | None:
        """The id of `token` as one whole token, or `None`."""
        tok = self.tokenizer()
        return None if tok is None else tok.token_to_id(token)

    # ------------------------------------------------------------------ weights
    def weight_files(self) -> dict[str, SafetensorsFile]:
        """Safetensors files of a merged model, keyed by relative path (index validated)."""
        cached = self.__dict__.get("_weights")
        if cached is not None:
            return dict(cached)
        problem = self.weights_problem()
        if problem is not None:
            raise InvalidCheckpointError(self._safe_path(problem.path), problem.reason)
        files: dict[str, SafetensorsFile] = {}
        index = self.json(SAFETENSORS_INDEX)
        if index is not None:
            files = self._shards_from_index(index)
        elif self.exists("model.safetensors"):
            self._refuse_pointer("model.safetensors")
            files["model.safetensors"] = self._safetensors("model.safetensors")
        elif self.kind is Kind.ADAPTER and self.exists("adapter_model.safetensors"):
            self._refuse_pointer("adapter_model.safetensors")
            files["adapter_model.safetensors"] = self._safetensors("adapter_model.safetensors")
        self.__dict__["_weights"] = files
        return dict(files)

    def _safetensors(self, rel: str) -> SafetensorsFile:
        return SafetensorsFile.open(self._safe_path(rel), source=self.remote.get(rel))

    def _refuse_pointer(self, rel: str) -> None:
        pointer = lfs_pointer(self._safe_path(rel))
        if pointer is not None:
            raise InvalidCheckpointError(self._safe_path(rel), pointer.reason, hint=pointer.hint)

    def _shards_from_index(self, index: dict[str, Any]) -> dict[str, SafetensorsFile]:
        path = self._safe_path(SAFETENSORS_INDEX)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InvalidCheckpointError(
                path, "no weight_map in the index", hint="re-save the model with save_pretrained()"
            )
        files: dict[str, SafetensorsFile] = {}
        for tensor, shard in weight_map.items():
            if not isinstance(shard, str):
                raise InvalidCheckpointError(
                    path, f"tensor {tensor!r} maps to {shard!r}, not a file name"
                )
            pure = PurePosixPath(shard)
            if pure.is_absolute() or len(pure.parts) != 1 or shard in (".", ".."):
                raise UnsafePathError(
                    path,
                    f"shard {shard!r} of tensor {tensor!r} is not a file in the checkpoint folder",
                    hint="shard names in weight_map must be plain file names",
                )
            if shard not in files:
                pointer = lfs_pointer(self._safe_path(shard))
                if pointer is not None:
                    raise InvalidCheckpointError(self._safe_path(shard), pointer.reason)
                if not self._safe_path(shard).is_file():
                    raise InvalidCheckpointError(
                        path,
                        f"shard {shard!r} (tensor {tensor!r}) is missing",
                        hint="copy the missing shard, or re-save the model",
                    )
                files[shard] = self._safetensors(shard)
            if tensor not in files[shard].tensors:
                raise InvalidCheckpointError(
                    path,
                    f"tensor {tensor!r} is not in shard {shard!r}",
                    hint="the index does not match the shards; re-save the model",
                )
        return files

    def find_tensor(self, name: str) -> tuple[str, SafetensorsFile] | None:
        """The file holding tensor `name`, or `None`."""
        for rel, file in self.weight_files().items():
            if name in file.tensors:
                return rel, file
        return None

    def files(self) -> Iterator[str]:
        """Relative POSIX paths of every file in the folder (not following symlinked folders)."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != ".ftfix"]
            base = Path(dirpath).relative_to(self.root)
            for name in filenames:
                yield (base / name).as_posix()


def _text(ckpt: Checkpoint, rel: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidCheckpointError(
            ckpt.root / rel,
            f"not UTF-8 text (byte {exc.start})",
            hint="the template file is damaged",
        ) from exc


def _named_templates(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("default", value)]
    if isinstance(value, list):
        return [
            (str(item["name"]), item["template"])
            for item in value
            if isinstance(item, dict) and isinstance(item.get("template"), str) and "name" in item
        ]
    return []


def token_text(value: Any) -> str | None:
    """A special token's text from a string or an AddedToken-style dict, else `None`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _is_model_file(rel: str) -> bool:
    """Whether ftfix reads `rel` (configs, tokenizer files, templates, weights)."""
    name = rel.rsplit("/", 1)[-1]
    return (
        name in _SMALL_JSON
        or name in _TOKENIZER_FILES
        or name in ("merges.txt", CHAT_TEMPLATE_FILE)
        or rel.startswith(CHAT_TEMPLATE_DIR + "/")
        or name.endswith((".safetensors", ".bin"))
    )


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).name
