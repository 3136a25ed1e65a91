"""The stop chain: which token ends an assistant turn, and whether every consumer stops on it.

A chat model stops when it emits a token its runtime treats as end of sequence. The template says
which token that must be: whatever it prints right after an assistant answer (`<|im_end|>`,
`<|eot_id|>`, `<end_of_turn>`, `<|end|>`, `</s>`, `<eoa>`, ...). This module derives that token
by rendering (`ftfix.analysis.turns.assistant_frame`), maps it to an id with the tokenizer's own
added and special tokens, reads the places each consumer takes its eos from (transformers and vLLM:
`generation_config.json`, falling back to `config.json`; llama.cpp's converter: the eos string of
`tokenizer_config.json`, then integer ids of `config.json`), and tells whether the output row of
a token was ever trained. Rules FTX201-FTX207 are built on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from ..io import jsonfmt
from ..io.checkpoint import SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG, Checkpoint, Kind, token_text
from .embeddings import stored_row_evidence
from .render import TemplateRenderError, render
from .turns import SENTINELS, assistant_frame, leading_markers

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "GENERATION_CONFIG",
    "MARKER_SHAPE",
    "SAMPLING_KEYS",
    "EndOfTurn",
    "StopSetup",
    "UntrainedRow",
    "describe_ids",
    "eos_ids",
    "eos_value",
    "find_end_of_turn",
    "generation_config_for",
    "stop_setup",
    "token_name",
    "token_vocabulary",
    "trains_output_row",
    "untrained_output_row",
]

GENERATION_CONFIG = "generation_config.json"
# Generation defaults a model author ships in generation_config.json for sampling.
SAMPLING_KEYS = (
    "do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "repetition_penalty",
    "no_repeat_ngram_size",
)  # fmt: skip

# Text shaped like a special token: `<|im_end|>`, `<eoa>`, `</s>`, `<｜end▁of▁sentence｜>`,
# `[/INST]`, `[|endofturn|]`. Used to name a turn end the tokenizer does not know as a token.
MARKER_SHAPE = re.compile(r"<[^<>\s]{1,64}>|\[[^\[\]\s]{1,64}\]")

# A third answer for the conversation that continues after the assistant turn; like the
# sentinels it is plain lower-case letters no template prints by itself.
_NEXT_USER = "zqxcharlieanswer"
_USER = {"role": "user", "content": "hello"}

# Output-projection and embedding tensors by name suffix (InternLM2 calls its head plain
# `output.weight`). The embedding stands in for the head when the weights are tied and no head
# tensor is stored.
_HEAD_SUFFIXES = ("lm_head.weight", "embed_out.weight")
_HEAD_NAMES = ("output.weight",)
_EMBED_SUFFIXES = (
    "embed_tokens.weight", "tok_embeddings.weight", "wte.weight", "word_embeddings.weight",
)  # fmt: skip
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


# --------------------------------------------------------------------------- eos values
def eos_ids(value: Any) -> tuple[int, ...]:
    """Normalise an `eos_token_id` value (an int, a list of ints, or absent) to a tuple of ids.

    Example:
        >>> eos_ids(2), eos_ids([151645, 151643]), eos_ids(None)
        ((2,), (151645, 151643), ())
    """
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return ()


def eos_value(ids: Sequence[int], *, like: Any = None) -> int | list[int]:
    """The JSON value for `ids`: a plain int when there is one id and `like` was not a list.

    transformers accepts both shapes; keeping an int an int leaves converters that only read
    integers (llama.cpp's) working when nothing was added.
    """
    if len(ids) == 1 and not isinstance(like, list):
        return ids[0]
    return list(ids)


# ------------------------------------------------------------------------ vocabulary


def _named_extra_tokens(config: Mapping[str, Any]) -> list[str]:
    # v4 wrote `additional_special_tokens` (a list); v5 writes `extra_special_tokens`, a list or
    # a name -> token mapping.
    found: list[str] = []
    for key in ("additional_special_tokens", "extra_special_tokens"):
        value = config.get(key)
        items = value.values() if isinstance(value, dict) else value
        if isinstance(items, Iterable) and not isinstance(items, str | bytes):
            found.extend(text for text in map(token_text, items) if text is not None)
    return found


def token_vocabulary(ckpt: Checkpoint) -> dict[str, int | None]:
    """Added and named special tokens of `ckpt`'s tokenizer, with their ids where known.

    Sources, first id wins: `tokenizer.json`'s added tokens, `tokenizer_config.json`'s
    `added_tokens_decoder`, `added_tokens.json`, then the named special tokens (bos/eos/pad/...,
    `additional_special_tokens`, `extra_special_tokens`), looked up in the tokenizer. A name that
    no source gives an id for maps to `None`: it is not one token of this tokenizer.
    """
    tokenizer = ckpt.tokenizer()
    # Keyed by what it reads (the parsed tokenizer, and three files by content): staged views
    # of one folder share the result. A 1,000,000-token vocabulary takes seconds to walk, and
    # five rules ask.
    key = (
        id(tokenizer),
        *(
            ckpt.read_bytes(rel)
            for rel in (TOKENIZER_CONFIG, "added_tokens.json", SPECIAL_TOKENS_MAP)
        ),
    )
    cached = _VOCABULARIES.get(key)
    if cached is not None and cached[0] is tokenizer:
        return dict(cached[1])
    found = _token_vocabulary(ckpt, tokenizer)
    if len(_VOCABULARIES) >= 8:
        _VOCABULARIES.pop(next(iter(_VOCABULARIES)))
    _VOCABULARIES[key] = (tokenizer, found)
    return dict(found)


_VOCABULARIES: dict[tuple[Any, ...], tuple[Any, dict[str, int | None]]] = {}


def _token_vocabulary(ckpt: Checkpoint, tokenizer: Any) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    if tokenizer is not None:
        for token_id, added in sorted(tokenizer.get_added_tokens_decoder().items()):
            found.setdefault(added.content, token_id)
    decoder = ckpt.tokenizer_config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for key, value in decoder.items():
            text = token_text(value)
            if text is not None and str(key).isascii() and str(key).isdigit():
                found.setdefault(text, int(key))
    for text, token_id in (ckpt.json("added_tokens.json") or {}).items():
        if isinstance(token_id, int) and not isinstance(token_id, bool):
            found.setdefault(text, token_id)
    named = list(ckpt.special_tokens().values())
    named += _named_extra_tokens(ckpt.tokenizer_config)
    named += _named_extra_tokens(ckpt.json(SPECIAL_TOKENS_MAP) or {})
    for text in named:
        if text not in found:
            found[text] = ckpt.token_id(text)
    return found


def token_name(token: str | None, token_id: int | None) -> str:
    """`<|im_end|> (151645)`, for messages."""
    if token is None:
        return "none" if token_id is None else f"id {token_id}"
    return token if token_id is None else f"{token} ({token_id})"


def describe_ids(ckpt: Checkpoint, value: Any) -> str:
    """An eos value with token names: `151643 (<|endoftext|>)` or `[2 (</s>), 92542 (...)]`."""
    tokenizer = ckpt.tokenizer()
    by_id: dict[int, str] = {}
    if tokenizer is None:
        by_id = {i: t for t, i in token_vocabulary(ckpt).items() if i is not None}

    def one(token_id: int) -> str:
        text = tokenizer.id_to_token(token_id) if tokenizer is not None else by_id.get(token_id)
        return str(token_id) if text is None else f"{token_id} ({text})"

    ids = eos_ids(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(one, ids)) + "]"
    return one(ids[0]) if ids else "not set"


# ---------------------------------------------------------------------- end of turn
@dataclass(frozen=True)
class EndOfTurn:
    r"""What a template prints after an assistant answer, and the tokens that starts with.

    Args:
        trailer (`str`): the text right after the answer: to the end of the render when the
            answer is the last message, or (when the template prints nothing there) up to the
            next user message.
        position (`str`): `"last"` or `"between"` (the trailer was taken between two turns).
        markers (`tuple[str, ...]`): known tokens at the start of `trailer`, e.g.
            `("<|im_end|>",)`; the first is the one the model must emit to end its turn.
        unknown (`str`, *optional*): special-token-shaped text (`<|end|>`) at the start of a
            trailer that starts with no known token: the template's turn end is not one token.
    """

    trailer: str
    position: Literal["last", "between"]
    markers: tuple[str, ...]
    unknown: str | None = None

    @property
    def token(self) -> str | None:
        """The end-of-turn token: the first marker after the answer, or `None`."""
        return self.markers[0] if self.markers else None


def _between_turns(source: str, special_tokens: Mapping[str, str]) -> str | None:
    answer = SENTINELS[0]
    messages = [
        _USER,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": _NEXT_USER},
    ]
    try:
        text = render(source, messages, special_tokens=special_tokens)
    except TemplateRenderError:
        return None
    if text.count(answer) != 1 or text.count(_NEXT_USER) != 1:
        return None
    rest = text[text.index(answer) + len(answer) :]
    end = rest.find(_NEXT_USER)
    return None if end < 0 else rest[:end]  # a template may print turns out of order


@lru_cache(maxsize=128)
def _end_of_turn(
    source: str, special_tokens: tuple[tuple[str, str], ...], vocabulary: frozenset[str]
) -> EndOfTurn | None:
    tokens = dict(special_tokens)
    frame = assistant_frame(source, tokens)
    last = None if frame is None else _read_trailer(frame.trailer, "last", vocabulary)
    if last is not None and (last.markers or last.unknown or last.trailer.strip()):
        return last
    # Some templates close a turn only when another one follows (or print nothing after a
    # final answer so that it can be continued): what ends the turn is then what comes before
    # the next user message. Used only when it starts with a marker; otherwise the (blank)
    # text after a final answer stands.
    between = _between_turns(source, tokens)
    if between is not None:
        found = _read_trailer(between, "between", vocabulary)
        if found.markers or found.unknown or last is None:
            return found
    return last


def _read_trailer(
    trailer: str, position: Literal["last", "between"], vocabulary: frozenset[str]
) -> EndOfTurn:
    markers = tuple(leading_markers(trailer, vocabulary))
    unknown = None
    if not markers:
        shaped = MARKER_SHAPE.match(trailer.lstrip())
        unknown = shaped.group(0) if shaped else None
    return EndOfTurn(trailer, position, markers, unknown)


def find_end_of_turn(
    source: str, special_tokens: Mapping[str, str], vocabulary: Iterable[str]
) -> EndOfTurn | None:
    """Derive the end-of-turn token(s) of a chat template by rendering it.

    Args:
        source (`str`): the chat template.
        special_tokens (`Mapping[str, str]`): bos/eos/... strings passed to the template.
        vocabulary (`Iterable[str]`): the tokenizer's added and special tokens (see
            `token_vocabulary`); without a tokenizer, special-token-shaped strings.

    Returns:
        `EndOfTurn`, or `None` when the template cannot render a user + assistant conversation
        or frames two different answers differently.

    Example:
        >>> find_end_of_turn(chatml, {}, {"<|im_start|>", "<|im_end|>"}).token
        '<|im_end|>'
    """
    return _end_of_turn(source, tuple(sorted(special_tokens.items())), _frozen(vocabulary))


# The vocabulary handed to find_end_of_turn is usually the same dict (token_vocabulary caches
# it), and freezing a million added tokens costs a quarter of a second: freeze each dict once.
_FROZEN: dict[int, tuple[Iterable[str], frozenset[str]]] = {}


def _frozen(vocabulary: Iterable[str]) -> frozenset[str]:
    known = _FROZEN.get(id(vocabulary))
    if known is not None and known[0] is vocabulary:
        return known[1]
    frozen = frozenset(t for t in vocabulary if t)
    if isinstance(vocabulary, dict):
        if len(_FROZEN) >= 4:
            _FROZEN.pop(next(iter(_FROZEN)))
        _FROZEN[id(vocabulary)] = (vocabulary, frozen)  # the strong reference keeps the id valid
    return frozen


# ----------------------------------------------------------------- stop setup (rules)
@dataclass(frozen=True)
class StopSetup:
    """The end of turn of a fine-tune and where its tokenizer and template come from.

    Args:
        tokenizer (`Checkpoint`): the checkpoint whose tokenizer the fine-tune is used with (the
            target, or the base for an adapter saved without tokenizer files).
        template (`str`): the chat template the end of turn was derived from.
        template_origin (`str`): `"--template"`, `"fine-tune"` or `"base"`.
        end (`EndOfTurn`): what the template prints after an answer.
        vocabulary (`Mapping[str, int | None]`): the tokenizer's added and special tokens.
    """

    tokenizer: Checkpoint
    template: str
    template_origin: str
    end: EndOfTurn
    vocabulary: Mapping[str, int | None]

    @property
    def token(self) -> str | None:
        """The end-of-turn token, or `None` when the turn does not end with a known token."""
        return self.end.token

    @property
    def token_id(self) -> int | None:
        """Its id, or `None` when it is not one token of the tokenizer."""
        token = self.end.token
        return None if token is None else self.vocabulary.get(token)

    def describe(self) -> str:
        """`<|im_end|> (7)`, for messages."""
        return token_name(self.token, self.token_id)


def _has_tokenizer_files(ckpt: Checkpoint) -> bool:
    return any(ckpt.exists(name) for name in (TOKENIZER_CONFIG, "tokenizer.json"))


def stop_setup(ctx: Context) -> StopSetup | None:
    """Derive the fine-tune's end of turn for the rules, or `None` when there is no template.

    The template is the one the user says the model was trained with (`--template`), else the
    fine-tune's own, else the base's (an adapter without tokenizer files runs with the base's
    tokenizer). Special tokens and vocabulary come from the tokenizer the fine-tune is used with.
    """
    base = ctx.base_or_none
    if _has_tokenizer_files(ctx.target):
        tokenizer = ctx.target
    elif base is not None:
        tokenizer = base
    else:
        return None  # an adapter without tokenizer files, and no base: no tokens to judge by
    candidates = (
        (ctx.options.template, "--template"),
        (ctx.target.chat_template(), "fine-tune"),
        (base.chat_template() if base is not None else None, "base"),
    )
    template, origin = next(((t, o) for t, o in candidates if t is not None), (None, ""))
    if template is None:
        return None
    vocabulary = token_vocabulary(tokenizer)
    end = find_end_of_turn(template, tokenizer.special_tokens(), vocabulary)
    if end is None:
        return None
    if end.token is None and end.unknown is not None:
        # Not an added token, but maybe one of the model's own (a sentencepiece control token
        # kept in tokenizer.json's vocabulary): then it is a stop token like any other.
        token_id = tokenizer.token_id(end.unknown)
        if token_id is not None:
            vocabulary = {**vocabulary, end.unknown: token_id}
            end = EndOfTurn(end.trailer, end.position, (end.unknown,))
    return StopSetup(tokenizer, template, origin, end, vocabulary)


def generation_config_for(
    config: Mapping[str, Any], base: Checkpoint, add: int | None, *, sampling: bool = True
) -> tuple[bytes, tuple[int, ...]]:
    """The bytes of a generation_config.json for a fine-tune that has none, and its eos ids.

    The base's file, byte for byte, when it already stops on `add`; the base's file with `add`
    appended to its eos list otherwise (every other key and eos id kept); and when the base has
    none either, the ids transformers would derive from `config` (bos, eos plus `add`, pad), in
    the format transformers writes. `sampling=False` leaves out the base's sampling keys
    (`SAMPLING_KEYS`), for a fine-tune whose generation so far fell back to greedy decoding.
    """
    base_bytes = base.read_bytes(GENERATION_CONFIG)
    base_config = base.generation_config
    if base_bytes is not None and base_config is not None:
        value = dict(base_config)
        if not sampling:
            value = {k: v for k, v in value.items() if k not in SAMPLING_KEYS}
        original = value.get("eos_token_id")
        ids = eos_ids(original) or eos_ids(config.get("eos_token_id"))
        if add is None or add in ids:
            if eos_ids(original) == ids and value == base_config:
                return base_bytes, ids
        else:
            ids = (*ids, add)
        value["eos_token_id"] = eos_value(ids, like=original)
        return jsonfmt.dumps(value, like=base_bytes), ids
    ids = eos_ids(config.get("eos_token_id"))
    if add is not None and add not in ids:
        ids = (*ids, add)
    fresh: dict[str, Any] = {
        "bos_token_id": config.get("bos_token_id"),
        "eos_token_id": eos_value(ids, like=config.get("eos_token_id")) if ids else None,
        "pad_token_id": config.get("pad_token_id"),
        "transformers_version": config.get("transformers_version"),
    }
    return jsonfmt.dumps({k: v for k, v in fresh.items() if v is not None}), ids


# ---------------------------------------------------------------------- output rows
def _tensor_by_suffix(
    ckpt: Checkpoint, suffixes: Sequence[str], exact: Sequence[str] = ()
) -> tuple[str, str] | None:
    names = {name: rel for rel, file in ckpt.weight_files().items() for name in file.tensors}
    for name in exact:
        if name in names:
            return names[name], name
    for suffix in suffixes:
        for name in sorted(names):
            if name == suffix or name.endswith("." + suffix):
                return names[name], name
    return None


@dataclass(frozen=True)
class UntrainedRow:
    """Where an untrained output row was found.

    Args:
        path (`str`): the weights file, relative to its checkpoint.
        tensor (`str`): the tensor name.
        in_base (`bool`): the row was read from the base (an adapter that does not train it).
        reason (`str`): why it counts as untrained, e.g. `"all zero"`.
    """

    path: str
    tensor: str
    in_base: bool
    reason: str

    def describe(self) -> str:
        """`lm_head.weight in model.safetensors` (of the base, for an adapter)."""
        owner = " of the base" if self.in_base else ""
        return f"{self.tensor} in {self.path}{owner}"


def trains_output_row(adapter: Checkpoint, base: Checkpoint, token_id: int) -> bool:
    """Whether the adapter's `trainable_token_indices` train the output row of `token_id`."""
    return _trains_token(adapter, base, token_id)


def _trains_token(adapter: Checkpoint, base: Checkpoint, token_id: int) -> bool:
    # PEFT trainable tokens: a list trains rows of the input embedding, which is the output head
    # only when the weights are tied; a dict names the layers (`lm_head`, `embed_tokens`).
    indices = (adapter.json("adapter_config.json") or {}).get("trainable_token_indices")
    tied = _tensor_by_suffix(base, _HEAD_SUFFIXES, _HEAD_NAMES) is None
    if isinstance(indices, list):
        return tied and token_id in indices
    if isinstance(indices, dict):
        return any(
            isinstance(ids, list)
            and token_id in ids
            and ("lm_head" in layer or (tied and "embed" in layer))
            for layer, ids in indices.items()
        )
    return False


def untrained_output_row(
    ckpt: Checkpoint, token_id: int, *, base: Checkpoint | None = None
) -> UntrainedRow | None:
    """The output-head row of `token_id` when it was never trained, else `None`.

    Reads one row: `lm_head.weight` (or another output head), or the input embedding when the
    weights are tied. For an adapter its own trained head (`modules_to_save`) is read; a token in
    `trainable_token_indices` counts as trained; otherwise the base's row is read.

    This is the one place the stop rules judge "untrained", with the row statistics of
    `ftfix.analysis.embeddings` (`stored_row_evidence`): all zero (every context gives the token the
    same logit 0, so it is never preferred), not finite, or a norm far below a bounded sample of the
    tensor's ordinary rows. A row at their mean (initialized, never trained) is not reported.

    Returns:
        `UntrainedRow`, or `None` when the row is trained or cannot be read (no weights, an id
        past the end of the matrix, a quantised tensor).
    """
    if ckpt.kind is Kind.ADAPTER:
        if ckpt.exists("adapter_model.bin") and not ckpt.exists("adapter_model.safetensors"):
            return None  # pickled weights are never read: whether it trains the head is unknown
        tied = base is not None and _tensor_by_suffix(base, _HEAD_SUFFIXES, _HEAD_NAMES) is None
        found = _tensor_by_suffix(ckpt, _HEAD_SUFFIXES)
        if found is None and tied:
            found = _tensor_by_suffix(ckpt, _EMBED_SUFFIXES)  # modules_to_save=["embed_tokens"]
        if found is None:
            if base is None or _trains_token(ckpt, base, token_id):
                return None
            row = untrained_output_row(base, token_id)
            return None if row is None else UntrainedRow(row.path, row.tensor, True, row.reason)
    else:
        found = _tensor_by_suffix(ckpt, _HEAD_SUFFIXES, _HEAD_NAMES) or _tensor_by_suffix(
            ckpt, _EMBED_SUFFIXES
        )
    if found is None:
        return None
    rel, name = found
    file = ckpt.weight_files()[rel]
    info = file.info(name)
    if info.dtype not in _FLOAT_DTYPES or len(info.shape) != 2:
        return None
    if not 0 <= token_id < info.shape[0]:
        return None
    evidence = stored_row_evidence(ckpt, rel, name, token_id)
    if evidence is None or evidence.state != "untrained":
        return None
    reason = "all zero" if evidence.kind == "zero" else evidence.detail.removeprefix("is ")
    return UntrainedRow(rel, name, False, reason)
