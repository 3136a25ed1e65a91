"""Vocabularies by content, their compatibility across checkpoints, and the BOS policy.

A vocabulary is read from whatever the folder ships, in the order transformers prefers it:
`tokenizer.json` (model vocabulary plus `added_tokens`), else `vocab.json` / `vocab.txt`, else
`tokenizer.model` (a sentencepiece model or tiktoken ranks), with the added tokens of
`tokenizer_config.json["added_tokens_decoder"]` or `added_tokens.json`. Two checkpoints are
compared by content (token -> id), never by file bytes, so a re-saved but identical tokenizer is
"same" and a tokenizer that moved one token is "remapped".

Nothing here imports transformers; `tokenizers` is only used through `Checkpoint.tokenizer()`.
Parsed tokenizers and vocabularies are cached by file content, so the staged views a repair
creates (and the re-check after it) do not parse a large `tokenizer.json` again.
"""

from __future__ import annotations

import base64
import binascii
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal, TypeVar

from ..io.checkpoint import TOKENIZER_CONFIG, Checkpoint, token_text
from ..io.tokenizer import TokenizerView

if TYPE_CHECKING:
    pass

__all__ = [
    "BosPolicy",
    "Compatibility",
    "VocabComparison",
    "Vocabulary",
    "bos_policy",
    "byte_level_alphabet",
    "compare",
    "compatible",
    "encode",
    "fast_tokenizer",
    "token_strings",
    "token_text",
    "vocabulary",
]

Compatibility = Literal["same", "extended", "remapped", "unknown"]

# Files that carry the tokenizer model's own vocabulary (not the added tokens).
MODEL_VOCAB_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model")
ADDED_TOKENS_FILE = "added_tokens.json"
# Text used to see what the tokenizer adds around a sequence; any vocabulary can encode it.
_PROBE_TEXT = "hello"
_EXAMPLES = 5


@dataclass(frozen=True)
class Vocabulary:
    """The tokens of one checkpoint's tokenizer, by content.

    Args:
        model (`Mapping[str, int]`, *optional*): the tokenizer model's vocabulary; `None` when no
            model file could be read (the vocabulary is then only partly known).
        added (`Mapping[str, int]`): added tokens (specials and tokens added by fine-tuning).
        sources (`tuple[str, ...]`): the files read, for messages.
    """

    model: Mapping[str, int] | None
    added: Mapping[str, int]
    sources: tuple[str, ...]

    @cached_property
    def tokens(self) -> dict[str, int]:
        """Every known token -> id (added tokens win over a model entry of the same text)."""
        return {**(self.model or {}), **self.added}

    @cached_property
    def by_id(self) -> dict[int, str]:
        """The token of each known id."""
        return {i: t for t, i in self.tokens.items()}

    @property
    def complete(self) -> bool:
        """Whether the model vocabulary was read (not only added tokens)."""
        return self.model is not None

    @property
    def empty(self) -> bool:
        """Nothing is known about this vocabulary."""
        return not self.tokens

    def id_of(self, token: str | None) -> int | None:
        """The id of `token` as a whole token, or `None`."""
        return None if token is None else self.tokens.get(token)

    def __len__(self) -> int:
        return len(self.tokens)


# Caches keyed by file bytes: a bytes object caches its hash, and the staged views of one
# checkpoint share the bytes they read, so a hit costs an identity check. Kept small because
# the keys hold whole files.
_CACHE_SIZE = 4
_VOCAB_FILES = (
    "tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", TOKENIZER_CONFIG,
    ADDED_TOKENS_FILE,
)  # fmt: skip
_VOCABULARIES: OrderedDict[tuple[bytes | None, ...], Vocabulary] = OrderedDict()
_MODEL_FILES: OrderedDict[bytes, dict[str, int] | None] = OrderedDict()
# Comparisons are cheap once vocabularies are cached; they live as long as the target view.
_COMPARISONS: weakref.WeakKeyDictionary[
    Checkpoint, dict[int, tuple[weakref.ref[Checkpoint], VocabComparison]]
] = weakref.WeakKeyDictionary()
# The API may be called from several threads; the caches are shared module state.
_LOCK = threading.Lock()

K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: OrderedDict[K, V], key: K, value: V) -> V:
    with _LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def _recall(cache: OrderedDict[K, V], key: K) -> V | None:
    with _LOCK:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def fast_tokenizer(ckpt: Checkpoint) -> TokenizerView | None:
    """`ckpt.tokenizer()`: one view per `tokenizer.json` content, shared by every checkpoint.

    Raises:
        `InvalidCheckpointError`: `tokenizer.json` cannot be loaded.
    """
    return ckpt.tokenizer()


def vocabulary(ckpt: Checkpoint) -> Vocabulary:
    """The vocabulary of `ckpt`, read from the files transformers would load.

    Raises:
        `InvalidCheckpointError`: `tokenizer.json` or a JSON vocabulary file cannot be parsed.
    """
    key = tuple(ckpt.read_bytes(rel) for rel in _VOCAB_FILES)
    cached = _recall(_VOCABULARIES, key)
    if cached is not None:
        return cached
    return _remember(_VOCABULARIES, key, _read_vocabulary(ckpt))


def _read_vocabulary(ckpt: Checkpoint) -> Vocabulary:
    tok = fast_tokenizer(ckpt)
    if tok is not None:
        added = {t.content: int(i) for i, t in tok.get_added_tokens_decoder().items()}
        return Vocabulary(tok.get_vocab(with_added_tokens=False), added, ("tokenizer.json",))
    sources: list[str] = []
    model: dict[str, int] | None = None
    if ckpt.exists("vocab.json"):
        raw = ckpt.json("vocab.json") or {}
        model = {str(t): i for t, i in raw.items() if isinstance(i, int)}
        sources.append("vocab.json")
    elif ckpt.exists("vocab.txt"):
        lines = (ckpt.read_bytes("vocab.txt") or b"").decode("utf-8", errors="replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last token, it is not an empty one
        model = {line: i for i, line in enumerate(lines)}
        sources.append("vocab.txt")
    elif ckpt.exists("tokenizer.model"):
        data = ckpt.read_bytes("tokenizer.model") or b""
        model = _recall(_MODEL_FILES, data)
        if model is None:
            model = _remember(_MODEL_FILES, data, parse_tokenizer_model(data))
        if model is not None:
            sources.append("tokenizer.model")
    added, where = _added_tokens(ckpt)
    if where:
        sources.append(where)
    return Vocabulary(model, added, tuple(sources))


def _added_tokens(ckpt: Checkpoint) -> tuple[dict[str, int], str | None]:
    # transformers reads added_tokens_decoder when tokenizer_config.json has it, and only
    # otherwise the legacy added_tokens.json.
    decoder = ckpt.tokenizer_config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        added = {}
        for key, value in decoder.items():
            content = value.get("content") if isinstance(value, dict) else None
            if isinstance(content, str) and str(key).isascii() and str(key).isdigit():
                added[content] = int(key)
        return added, f'{TOKENIZER_CONFIG}["added_tokens_decoder"]'
    legacy = ckpt.json(ADDED_TOKENS_FILE)
    if legacy is not None:
        return {str(t): i for t, i in legacy.items() if isinstance(i, int)}, ADDED_TOKENS_FILE
    return {}, None


# --------------------------------------------------------------------- tokenizer.model parsing
def parse_tokenizer_model(data: bytes) -> dict[str, int] | None:
    """Token -> id from a `tokenizer.model`: tiktoken ranks or a sentencepiece model.

    tiktoken tokens are raw bytes; they are written as GPT-2 byte-level strings, the spelling a
    converted `tokenizer.json` uses, so both compare by content. Returns `None` when the file is
    neither format (e.g. a Git LFS pointer).
    """
    if not data:
        return None
    ranks = _tiktoken_ranks(data)
    if ranks is not None:
        return ranks
    pieces = _sentencepiece_pieces(data)
    if pieces is None:
        return None
    # A duplicated piece keeps its first id, as sentencepiece's own piece-to-id lookup does.
    vocab: dict[str, int] = {}
    for i, piece in enumerate(pieces):
        vocab.setdefault(piece, i)
    return vocab


def _tiktoken_ranks(data: bytes) -> dict[str, int] | None:
    head = data[:200].split(b"\n", 1)[0].split(b" ")
    if len(head) != 2 or not head[1].strip().isdigit():
        return None
    alphabet = byte_level_alphabet()
    # Latin-1 decoding turns each byte into the code point of the same value; translate maps
    # those to the byte-level spelling in one C-level pass per token.
    table = {b: alphabet[b] for b in range(256)}
    ranks: dict[str, int] = {}
    try:
        for line in data.splitlines():
            if not line:
                continue
            token, rank = line.split(b" ")
            raw = base64.b64decode(token, validate=True)
            ranks[raw.decode("latin-1").translate(table)] = int(rank)
    except (ValueError, binascii.Error):
        return None
    return ranks


def byte_level_alphabet() -> list[str]:
    """GPT-2's byte -> character table (index = byte) that byte-level BPE vocabularies use."""
    # GPT-2's reversible byte -> printable character map, used by byte-level BPE vocabularies:
    # printable Latin-1 bytes stand for themselves, the others are shifted above U+0100.
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table: list[str] = [""] * 256
    shifted = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    # A minimal protobuf reader: (field number, wire type, payload) for each top-level field.
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            out.append((number, wire, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            out.append((number, wire, 0))
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _sentencepiece_pieces(data: bytes) -> list[str] | None:
    # ModelProto.pieces is field 1; each SentencePiece message keeps its text in field 1.
    try:
        pieces = []
        for number, wire, payload in _fields(data):
            if number == 1 and wire == 2 and isinstance(payload, bytes):
                text = next(
                    (p for n, w, p in _fields(payload) if n == 1 and w == 2),
                    None,
                )
                if not isinstance(text, bytes):
                    return None
                pieces.append(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return pieces or None


# ------------------------------------------------------------------------------ comparison
@dataclass(frozen=True)
class VocabComparison:
    """How a fine-tune's vocabulary relates to its base's.

    Args:
        status (`Compatibility`): `same`, `extended` (only new tokens, at new ids), `remapped`
            (a shared token changed id, an id now holds another token, or a base token is gone),
            or `unknown` (too little is known to tell).
        complete (`bool`): both vocabularies were read in full.
        base_size (`int`) / target_size (`int`): tokens known on each side.
        changed (`tuple[str, ...]`): examples of remapped tokens, formatted for messages.
        n_changed (`int`): how many shared tokens or ids disagree.
        missing (`tuple[str, ...]`): examples of base tokens the fine-tune lacks.
        n_missing (`int`): how many.
        added (`tuple[str, ...]`): examples of tokens only the fine-tune has.
        n_added (`int`): how many.
        model_same (`bool`, *optional*): the tokenizer models' own vocabularies are equal
            (`None` when one is unknown); files holding only the model vocabulary
            (`tokenizer.model`, `vocab.json`, `merges.txt`) can then be copied.
        reason (`str`): why the status is `unknown`, or `""`.
    """

    status: Compatibility
    complete: bool
    base_size: int
    target_size: int
    changed: tuple[str, ...] = ()
    n_changed: int = 0
    missing: tuple[str, ...] = ()
    n_missing: int = 0
    added: tuple[str, ...] = ()
    n_added: int = 0
    model_same: bool | None = None
    reason: str = ""

    @property
    def copy_allowed(self) -> bool:
        """Files may be copied from the base (the vocabulary is the base's, maybe extended)."""
        return self.status in ("same", "extended")


def compatible(base: Checkpoint, target: Checkpoint) -> Compatibility:
    """`same`, `extended`, `remapped` or `unknown`: may files be copied from base to target?

    Rules that copy tokenizer-dependent files or ids from the base must refuse when this is
    `remapped`: the base's ids would then mean other tokens in the fine-tune.
    """
    return compare(base, target).status


def compare(base: Checkpoint, target: Checkpoint) -> VocabComparison:
    """Compare the two vocabularies by content (cached per pair of checkpoint views)."""
    with _LOCK:
        per_target = _COMPARISONS.setdefault(target, {})
        known = per_target.get(id(base))
    # The id alone could be reused by a later object: check it is still the same base.
    if known is not None and known[0]() is base:
        return known[1]
    result = _compare(base, target)
    with _LOCK:
        per_target[id(base)] = (weakref.ref(base), result)
    return result


def _same_file(base: Checkpoint, target: Checkpoint, rel: str) -> bool:
    data = target.read_bytes(rel)
    return data is not None and data == base.read_bytes(rel)


def _quote(token: str) -> str:
    return repr(token)


def _compare(base: Checkpoint, target: Checkpoint) -> VocabComparison:
    # Identical tokenizer.json files hold identical vocabularies: skip parsing large files.
    tok = fast_tokenizer(target)
    if tok is not None and _same_file(base, target, "tokenizer.json"):
        size = tok.get_vocab_size(with_added_tokens=True)
        return VocabComparison("same", True, size, size, model_same=True)
    old, new = vocabulary(base), vocabulary(target)
    complete = old.complete and new.complete
    model_same = old.model == new.model if complete else None
    if complete and old.tokens == new.tokens:
        return VocabComparison("same", True, len(old), len(new), model_same=model_same)

    changed: list[str] = []
    missing: list[str] = []
    added: list[str] = []
    for token, old_id in old.tokens.items():
        new_id = new.tokens.get(token)
        if new_id is None:
            # Partly known vocabularies may simply not list the token.
            if new.complete:
                missing.append(f"{_quote(token)} ({old_id})")
        elif new_id != old_id:
            changed.append(f"{_quote(token)} {old_id} -> {new_id}")
    old_max = max(old.by_id, default=-1)
    for token, new_id in new.tokens.items():
        if token in old.tokens:
            continue
        holder = old.by_id.get(new_id)
        if holder is not None:
            # The base token at that id is already counted as missing when the target is
            # complete; with a partly known target it is an id clash.
            if holder not in new.tokens and not new.complete:
                changed.append(f"id {new_id} {_quote(holder)} -> {_quote(token)}")
        elif old.complete or (not new.complete and new_id > old_max):
            # A partly known base cannot tell a new token from one it simply does not list,
            # unless both sides are lists of added tokens and the id is past the base's last.
            added.append(f"{_quote(token)} ({new_id})")

    status: Compatibility
    reason = ""
    if changed or missing:
        status = "remapped"
    elif added:
        status = "extended"
    else:
        status = "same"
    if status != "remapped" and not new.complete:
        # Without the fine-tune's own vocabulary, a resized embedding matrix is the only hint
        # that its tokenizer was different: refuse to call that "same".
        old_size, new_size = base.config.get("vocab_size"), target.config.get("vocab_size")
        if new_size is not None and old_size is not None and new_size != old_size:
            status = "unknown"
            reason = f"config.json vocab_size is {new_size}, base {old_size}"
    return VocabComparison(
        status,
        complete,
        len(old),
        len(new),
        changed=tuple(changed[:_EXAMPLES]),
        n_changed=len(changed),
        missing=tuple(missing[:_EXAMPLES]),
        n_missing=len(missing),
        added=tuple(added[:_EXAMPLES]),
        n_added=len(added),
        model_same=model_same,
        reason=reason,
    )


# ------------------------------------------------------------------------------- encoding
def encode(ckpt: Checkpoint, text: str, *, add_special_tokens: bool = False) -> list[int] | None:
    """Token ids of `text` with the checkpoint's fast tokenizer, or `None` without one.

    A folder without `tokenizer.json` can still encode a text that is exactly one added token,
    or (with `add_special_tokens`) the BOS its `add_bos_token` adds before it.
    """
    tok = fast_tokenizer(ckpt)
    if tok is not None:
        return list(tok.encode(text, add_special_tokens=add_special_tokens).ids)
    token_id = vocabulary(ckpt).added.get(text)
    if token_id is None:
        return None
    if add_special_tokens:
        policy = bos_policy(ckpt)
        if policy.adds and policy.token_id is not None:
            return [policy.token_id, token_id]
    return [token_id]


def token_strings(ckpt: Checkpoint, text: str) -> list[str] | None:
    """The pieces `text` splits into (no special tokens added), for messages."""
    tok = fast_tokenizer(ckpt)
    if tok is None:
        return None
    return list(tok.encode(text, add_special_tokens=False).tokens)


# ------------------------------------------------------------------------------ BOS policy
@dataclass(frozen=True)
class BosPolicy:
    """Whether encoding text adds a BOS token, and which.

    Args:
        token (`str`, *optional*): the `bos_token` transformers loads.
        token_id (`int`, *optional*): its id, when known.
        adds (`bool`, *optional*): `tokenizer(text)` starts with it; `None` when unknown.
        prefix (`tuple[int, ...]`): the ids the tokenizer puts before any text.
        source (`str`): what decides it, for messages.
    """

    token: str | None
    token_id: int | None
    adds: bool | None
    prefix: tuple[int, ...]
    source: str

    def describe(self) -> str:
        """`'<s>' (1)` or `no bos_token`."""
        if self.token is None:
            return "no bos_token"
        if self.token_id is None:
            return repr(self.token)
        return f"{self.token!r} ({self.token_id})"


def bos_policy(ckpt: Checkpoint) -> BosPolicy:
    """Does `tokenizer(text)` add a BOS token, as transformers 5 loads this folder?

    With `tokenizer.json`, transformers 5 ignores `add_bos_token` in tokenizer_config.json and
    the tokenizer's post-processor decides: that is what is run here. Without it (sentencepiece
    or vocab.json folders), `add_bos_token` decides; when it is absent the answer is unknown.
    """
    token = ckpt.special_tokens().get("bos_token")
    token_id = vocabulary(ckpt).id_of(token)
    tok = fast_tokenizer(ckpt)
    frame = tok.special_frame() if tok is not None else None
    if frame is not None:  # read from the post-processor's JSON: no tokenizer to build
        before = frame[0]
        adds = bool(before) and token_id is not None and before[0] == token_id
        return BosPolicy(token, token_id, adds, before, "tokenizer.json post_processor")
    if tok is not None:
        with_specials = list(tok.encode(_PROBE_TEXT, add_special_tokens=True).ids)
        plain = list(tok.encode(_PROBE_TEXT, add_special_tokens=False).ids)
        prefix: tuple[int, ...] = ()
        for start in range(len(with_specials) - len(plain) + 1):
            if with_specials[start : start + len(plain)] == plain:
                prefix = tuple(with_specials[:start])
                break
        adds = bool(prefix) and token_id is not None and prefix[0] == token_id
        return BosPolicy(token, token_id, adds, prefix, "tokenizer.json post_processor")
    flag = ckpt.tokenizer_config.get("add_bos_token")
    if isinstance(flag, bool):
        adds_flag = flag and token is not None
        prefix = (token_id,) if adds_flag and token_id is not None else ()
        return BosPolicy(token, token_id, adds_flag, prefix, f"{TOKENIZER_CONFIG} add_bos_token")
    return BosPolicy(token, token_id, None, (), "unknown (no tokenizer.json, no add_bos_token)")
