"""A tokenizer.json read as data, with the `tokenizers` object built only when text must be split.

Building `tokenizers.Tokenizer` from a Llama-3 `tokenizer.json` costs about a second and 200 MB
(most of it the 280,000 BPE merges). The questions rules ask are mostly answered by tables:
which tokens are added and special, the id of a token, the vocabulary, how many ids there are,
what the post-processor puts before any text (BOS), and the encoding of a text that is exactly
one added token. `TokenizerView` answers those from the JSON, read once per content and without
the merges; anything else (splitting ordinary text, the normalizer, the model) builds the real
tokenizer on first use and delegates to it, so callers may treat the view as a
`tokenizers.Tokenizer`. `tests/test_tokenizer_view.py` holds both paths to the same answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import InvalidCheckpointError

if TYPE_CHECKING:
    import tokenizers

__all__ = ["AddedToken", "LightEncoding", "TokenizerView", "open_tokenizer"]

logger = logging.getLogger(__name__)

_HINT = "copy tokenizer.json again from the base model"
# The last unescaped `"merges":` key. tokenizers writes it as the last key of "model", and
# "model" as the last key of the document, so cutting there and closing both objects gives the
# same document without the merges; any other position gives invalid JSON (then: full parse).
_MERGES_KEY = re.compile(rb'(?<!\\)"merges"\s*:')
_TAIL = re.compile(rb"\]\s*\}\s*\}\s*$")


class AddedToken(NamedTuple):
    """An entry of `added_tokens`, with the attributes of `tokenizers.AddedToken` rules read.

    A named tuple, not a dataclass: a tokenizer may add a million tokens, and building them
    must stay cheap.
    """

    content: str
    special: bool
    normalized: bool
    lstrip: bool
    rstrip: bool
    single_word: bool

    def __str__(self) -> str:
        return self.content


@dataclass(frozen=True)
class LightEncoding:
    """The `ids`, `tokens` and `offsets` of an encoding computed from the tables."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]


def _without_merges(data: bytes) -> dict[str, Any] | None:
    """The document with `model.merges` emptied, or `None` when it cannot be cut safely."""
    last = None
    for last in _MERGES_KEY.finditer(data):  # noqa: B007  (only the last match matters)
        pass
    if last is None or not _TAIL.search(data[-64:]):
        return None
    try:
        parsed = json.loads(data[: last.start()] + b'"merges": []}}')
    except ValueError:
        return None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return parsed if isinstance(model, dict) and model.get("type") == "BPE" else None


def _parse(data: bytes, path: Path) -> dict[str, Any]:
    try:
        text_ok = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidCheckpointError(path, f"not UTF-8 (byte {exc.start})", hint=_HINT) from exc
    parsed = _without_merges(data)
    if parsed is None:
        try:
            parsed = json.loads(text_ok)
        except ValueError as exc:
            raise InvalidCheckpointError(
                path, f"cannot load tokenizer.json: {exc}", hint=_HINT
            ) from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("model"), dict):
        raise InvalidCheckpointError(
            path, "cannot load tokenizer.json: no model object", hint=_HINT
        )
    return parsed


class TokenizerView:
    """`tokenizer.json` as tables, with the real tokenizer built lazily (see the module doc).

    Args:
        data (`bytes`): the file's content.
        path (`Path`): where it was read from, for messages.
    """

    def __init__(self, data: bytes, path: Path):
        self._data = data
        self._path = path
        self._doc = _parse(data, path)
        self._lock = threading.Lock()
        self._validate()
        self._added  # noqa: B018  (reads and checks the added tokens now, at open)
        self._doc["added_tokens"] = None  # the table holds them; the raw records can go

    def _validate(self) -> None:
        """Have `tokenizers` load everything but the model's tables (milliseconds).

        Normalizer, pre-tokenizer, post-processor, decoder, added tokens and the model's settings
        are what a damaged or hostile file breaks (a bad `Precompiled` charsmap makes the Rust
        code panic); the vocabulary is read here and the merges are only ever read by the full
        load. A file that fails is an `InvalidCheckpointError`, as transformers would fail on it.
        """
        import tokenizers

        model = dict(self._doc["model"])
        if "vocab" in model:
            model["vocab"] = [] if isinstance(model["vocab"], list) else {}
        if "merges" in model:
            model["merges"] = []
        # Added tokens are checked by `_added` instead; a million of them would cost seconds.
        skeleton = json.dumps({**self._doc, "model": model, "added_tokens": []})
        try:
            tokenizers.Tokenizer.from_str(skeleton)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a Rust panic is a BaseException (pyo3 PanicException)
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise InvalidCheckpointError(
                self._path, f"cannot load tokenizer.json: {reason}", hint=_HINT
            ) from exc

    # ------------------------------------------------------------------ tables
    @cached_property
    def _added(self) -> dict[int, AddedToken]:
        """Added tokens by id, in id order; an entry tokenizers would refuse is refused here.

        (The skeleton `_validate` loads leaves the added tokens out: checking them here costs
        a fraction of what tokenizers takes for a million of them.)
        """
        entries = self._doc.get("added_tokens")
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise self._bad("added_tokens is not a list")
        found: dict[int, AddedToken] = {}
        previous, ordered = -1, True
        make = AddedToken
        for entry in entries:
            if type(entry) is not dict:
                raise self._bad("an added_tokens entry is not an object")
            content, token_id = entry.get("content"), entry.get("id")
            special = entry.get("special", False)
            normalized = entry.get("normalized", True)
            lstrip = entry.get("lstrip", False)
            rstrip = entry.get("rstrip", False)
            single_word = entry.get("single_word", False)
            if type(content) is not str or type(token_id) is not int or token_id < 0:
                raise self._bad(f"added token {str(content)[:40]!r} has no valid content or id")
            # Spelled out rather than any(...): this loop may run a million times.
            if not (
                type(special) is bool
                and type(normalized) is bool
                and type(lstrip) is bool
                and type(rstrip) is bool
                and type(single_word) is bool
            ):
                raise self._bad(f"added token {content[:40]!r} has a flag that is not a boolean")
            found[token_id] = make(content, special, normalized, lstrip, rstrip, single_word)
            ordered = ordered and token_id > previous
            previous = token_id
        return found if ordered else dict(sorted(found.items()))

    def _bad(self, reason: str) -> InvalidCheckpointError:
        return InvalidCheckpointError(
            self._path, f"cannot load tokenizer.json: {reason}", hint=_HINT
        )

    @cached_property
    def _added_ids(self) -> dict[str, int]:
        return {token.content: token_id for token_id, token in self._added.items()}

    @cached_property
    def _model_vocab(self) -> dict[str, int] | None:
        """The model's own vocabulary, or `None` for a model whose table is not read here."""
        model = self._doc["model"]
        vocab = model.get("vocab")
        if model.get("type") == "Unigram" and isinstance(vocab, list):
            return {
                str(entry[0]): index
                for index, entry in enumerate(vocab)
                if isinstance(entry, list) and entry
            }
        if isinstance(vocab, dict):
            return {str(k): v for k, v in vocab.items() if type(v) is int}
        return None

    @cached_property
    def _model_tokens(self) -> dict[int, str]:
        return {i: t for t, i in (self._model_vocab or {}).items()}

    # ----------------------------------------------------- tokenizers.Tokenizer API
    def get_added_tokens_decoder(self) -> Mapping[int, AddedToken]:
        """Added tokens by id (what `tokenizers.Tokenizer.get_added_tokens_decoder` gives).

        A read-only view of the table, not a copy (callers only read it).
        """
        return MappingProxyType(self._added)

    def get_vocab(self, with_added_tokens: bool = True) -> dict[str, int]:
        """Token -> id of the model's vocabulary, with the added tokens on top if asked."""
        if self._model_vocab is None:
            return dict(self.full.get_vocab(with_added_tokens=with_added_tokens))
        vocab = dict(self._model_vocab)
        if with_added_tokens:
            vocab.update(self._added_ids)
        return vocab

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        """Number of distinct tokens (as `tokenizers` counts them)."""
        if self._model_vocab is None:
            return int(self.full.get_vocab_size(with_added_tokens=with_added_tokens))
        if not with_added_tokens:
            return len(self._model_vocab)
        return len(self._model_vocab.keys() | self._added_ids.keys())

    def token_to_id(self, token: str) -> int | None:
        """The id of `token`: added tokens first, then the model's vocabulary."""
        found = self._added_ids.get(token)
        if found is not None:
            return found
        if self._model_vocab is None:
            result = self.full.token_to_id(token)
            return None if result is None else int(result)
        return self._model_vocab.get(token)

    def id_to_token(self, token_id: int) -> str | None:
        """The token of `token_id`: added tokens first, then the model's vocabulary."""
        added = self._added.get(token_id)
        if added is not None:
            return added.content
        if self._model_vocab is None:
            result = self.full.id_to_token(token_id)
            return None if result is None else str(result)
        return self._model_tokens.get(token_id)

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        """Encode `text`; a text that is exactly one added token is answered from the tables."""
        token_id = self._added_ids.get(text)
        if token_id is not None:
            frame = self.special_frame() if add_special_tokens else ((), ())
            if frame is not None:
                before, after = frame
                ids = [*before, token_id, *after]
                # Post-processor specials span no text, as tokenizers reports them.
                offsets = [(0, 0)] * len(before) + [(0, len(text))] + [(0, 0)] * len(after)
                return LightEncoding(ids, [self.id_to_token(i) or "" for i in ids], offsets)
        return self.full.encode(text, add_special_tokens=add_special_tokens)

    def leading_ids(self, text: str, *, add_special_tokens: bool) -> list[int] | None:
        """The first ids of `encode(text)` that the tables decide, or `None` if none are.

        tokenizers splits added tokens out of the text before the model sees it, longest match
        first; so a text that starts with added tokens starts with their ids, after the
        post-processor's prefix. The list stops where ordinary text (the model's part) begins,
        or at an added token whose match depends on normalisation or word boundaries.
        """
        frame = self.special_frame() if add_special_tokens else ((), ())
        if frame is None:
            return None
        ids = list(frame[0])
        rest = text
        while rest:
            matches = [c for c in self._added_ids if c and rest.startswith(c)]
            if not matches:
                break
            content = max(matches, key=len)
            token = self._added[self._added_ids[content]]
            if token.normalized or token.single_word:
                break
            ids.append(self._added_ids[content])
            rest = rest[len(content) :]
            if token.rstrip:
                rest = rest.lstrip()
        if not rest:
            ids.extend(frame[1])
        return ids or None

    # ----------------------------------------------------------------- specials
    def special_frame(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """Ids the post-processor puts before and after a single sequence; `None` if unknown."""
        return _frame(self._doc.get("post_processor"), self.token_to_id)

    # ------------------------------------------------------------ the real thing
    @cached_property
    def full(self) -> tokenizers.Tokenizer:
        """The `tokenizers.Tokenizer`, built on first use (about a second for Llama 3)."""
        import tokenizers

        with self._lock:
            try:
                built = tokenizers.Tokenizer.from_str(self._data.decode("utf-8"))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # bare Exception subclasses, or a Rust panic
                raise InvalidCheckpointError(
                    self._path, f"cannot load tokenizer.json: {exc}", hint=_HINT
                ) from exc
        logger.debug("built the tokenizers object for %s", self._path)
        return built

    @property
    def built(self) -> bool:
        """Whether the real tokenizer has been built (for tests and benchmarks)."""
        return "full" in self.__dict__

    def __getattr__(self, name: str) -> Any:
        # normalizer, pre_tokenizer, model, decode, ...: whatever the tables cannot answer.
        if name.startswith("_") or name in ("full", "built"):
            raise AttributeError(name)
        return getattr(self.full, name)


def _frame(processor: Any, token_to_id: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(prefix, suffix) ids a post-processor adds to one sequence, for the types known here."""
    if processor is None:
        return (), ()
    if not isinstance(processor, dict):
        return None
    kind = processor.get("type")
    if kind == "ByteLevel":
        return (), ()
    if kind == "Sequence":
        before: tuple[int, ...] = ()
        after: tuple[int, ...] = ()
        for step in processor.get("processors") or []:
            frame = _frame(step, token_to_id)
            if frame is None:
                return None
            before, after = frame[0] + before, after + frame[1]
        return before, after
    if kind in ("BertProcessing", "RobertaProcessing"):
        cls, sep = processor.get("cls"), processor.get("sep")
        if not (isinstance(cls, list) and isinstance(sep, list) and len(cls) == len(sep) == 2):
            return None
        return (int(cls[1]),), (int(sep[1]),)
    if kind == "TemplateProcessing":
        single, specials = processor.get("single"), processor.get("special_tokens") or {}
        if not isinstance(single, list) or not isinstance(specials, dict):
            return None
        prefix: list[int] = []
        suffix: list[int] = []
        seen_sequence = False
        for piece in single:
            if not isinstance(piece, dict):
                return None
            if "Sequence" in piece:
                seen_sequence = True
                continue
            special = piece.get("SpecialToken")
            if not isinstance(special, dict):
                return None
            entry = specials.get(special.get("id"))
            ids = entry.get("ids") if isinstance(entry, dict) else None
            if not isinstance(ids, list) or not all(type(i) is int for i in ids):
                return None
            (suffix if seen_sequence else prefix).extend(ids)
        return tuple(prefix), tuple(suffix)
    return None


# Views by content: a base and its fine-tune usually share tokenizer.json, and the staged views
# and the re-check after a repair see the same bytes again: read each content once per process.
_VIEWS: OrderedDict[str, TokenizerView] = OrderedDict()
_VIEWS_LOCK = threading.Lock()


def open_tokenizer(data: bytes, path: Path) -> TokenizerView:
    """The view of a `tokenizer.json` content, shared by every file with the same bytes.

    Raises:
        `InvalidCheckpointError`: the file is not UTF-8 JSON with a model object.
    """
    key = hashlib.sha256(data).hexdigest()
    with _VIEWS_LOCK:
        cached = _VIEWS.get(key)
        if cached is not None:
            _VIEWS.move_to_end(key)
            return cached
    view = TokenizerView(data, path)
    with _VIEWS_LOCK:
        _VIEWS[key] = view
        while len(_VIEWS) > 4:
            _VIEWS.popitem(last=False)
    return view
