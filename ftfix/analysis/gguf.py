"""What GGUF rules share: llama.cpp's end-of-generation set, the GGUF context, metadata edits.

llama.cpp stops on its end-of-generation (EOG) set, built when the vocabulary loads (from
`src/llama-vocab.cpp`): the ids in `tokenizer.ggml.eos_token_id`, `eot_token_id` and
`eom_token_id`, the FIM pad/repo/separator ids, and every token whose *text* is one of a fixed
list (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, ...). A template whose turns end with any
other token (`<eoa>`, `<|end_of_turn|>`, a fine-tune's own marker) never stops unless that id
is in the metadata. `generation_config.json` does not exist there.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ..findings import SpliceEdit
from ..io.checkpoint import Checkpoint
from ..io.gguf import (
    ARRAY,
    BOOL,
    KEY_BOS,
    KEY_EOM,
    KEY_EOS,
    KEY_EOT,
    STRING,
    GGUFMetadata,
    is_padding,
    parse_gguf,
)
from .context import Options
from .probes import TemplateRenders, render_all

__all__ = [
    "EOG_TEXTS",
    "GGUFContext",
    "apply_to_prefix",
    "eog_ids",
    "gguf_special_tokens",
    "metadata_edit",
    "splice_between",
    "staged_metadata",
]

# Token texts llama.cpp adds to the EOG set whatever the metadata says (llama-vocab.cpp).
EOG_TEXTS = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
})  # fmt: skip
_EOG_KEYS = (
    KEY_EOS,
    KEY_EOT,
    KEY_EOM,
    "tokenizer.ggml.fim_pad_token_id",
    "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id",
)
_UINT32 = 4


def eog_ids(meta: GGUFMetadata) -> dict[int, str]:
    """llama.cpp's end-of-generation ids for this file, each with why it is there.

    Mirrors llama.cpp's vocabulary loading: ids from the eos/eot/eom/FIM metadata keys, then
    tokens guessed by their text; the two workarounds that drop `<|end|>` (harmony tokenizers)
    and `</s>` (gemma4) are applied too.
    """
    tokens = meta.tokens
    found: dict[int, str] = {}
    for key in _EOG_KEYS:
        token_id = meta.int_value(key)
        if token_id is not None and 0 <= token_id < len(tokens):
            found.setdefault(token_id, key.rsplit(".", 1)[-1])
    for token_id, text in enumerate(tokens):
        if text in EOG_TEXTS:
            found.setdefault(token_id, "guessed from its text")
    texts = {tokens[i]: i for i in found}
    if "<|end|>" in texts and (
        ("<|return|>" in texts and ("<|call|>" in texts or "<|calls|>" in texts))
        or ("<|calls|>" in texts and "<|flush|>" in texts)
    ):
        found.pop(texts["<|end|>"])
    if "<|tool_response>" in texts and "</s>" in texts:
        found.pop(texts["</s>"])
    return found


def gguf_special_tokens(meta: GGUFMetadata) -> dict[str, str]:
    """`bos_token`/`eos_token` strings for rendering the GGUF's template."""
    out = {}
    for name, key in (("bos_token", KEY_BOS), ("eos_token", KEY_EOS)):
        text = meta.token(meta.int_value(key))
        if text is not None:
            out[name] = text
    return out


def staged_metadata(meta: GGUFMetadata, prefix: bytes) -> GGUFMetadata:
    """The metadata the file would have with `prefix` in place of its own."""
    return parse_gguf(prefix, meta.path, len(prefix) + meta.size - meta.data_offset)


# ------------------------------------------------------------------------ metadata edits
def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, kind: int, value: object) -> bytes:
    head = _string(key) + struct.pack("<I", kind)
    if kind == STRING:
        assert isinstance(value, str)
        return head + _string(value)
    if kind == BOOL:
        return head + struct.pack("<?", bool(value))
    if kind == _UINT32:
        assert isinstance(value, int)
        return head + struct.pack("<I", value)
    raise ValueError(f"cannot write GGUF value type {kind}")


def _rewrite(meta: GGUFMetadata, prefix: bytes, key: str, kind: int, value: object) -> bytes:
    """A new prefix with `key` set, replaced where it stands or appended to the metadata.

    Tensor infos are kept byte for byte and the data start is padded to the same alignment.
    """
    parts = [b""]  # header, filled in below
    count = 0
    replaced = False
    for name, item in meta.fields.items():
        count += 1
        if name == key:
            parts.append(_kv(key, kind, value))
            replaced = True
        else:
            parts.append(prefix[item.offset : item.offset + item.size])
    if not replaced:
        parts.append(_kv(key, kind, value))
        count += 1
    parts[0] = prefix[:8] + struct.pack("<QQ", meta.tensor_count, count)
    parts.append(prefix[meta.infos_offset : meta.infos_end])
    body = b"".join(parts)
    return body + b"\0" * (-len(body) % meta.alignment)


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, compared block by block (metadata is megabytes)."""
    limit, block, start = min(len(a), len(b)), 65536, 0
    while start < limit and a[start : start + block] == b[start : start + block]:
        start += block
    start = min(start, limit)
    end = min(start + block, limit)
    while start < end and a[start] == b[start]:
        start += 1
    return start


def splice_between(rel: str, old: bytes, new: bytes, reason: str) -> SpliceEdit:
    """The smallest range replacement that turns `old` into `new`."""
    start = _common_prefix(old, new)
    tail = _common_prefix(old[start:][::-1], new[start:][::-1])
    return SpliceEdit(
        rel, start, old[start : len(old) - tail], new[start : len(new) - tail], reason
    )


def metadata_edit(
    meta: GGUFMetadata, prefix: bytes, rel: str, key: str, value: int | bool | str, reason: str
) -> SpliceEdit:
    """The edit that sets one metadata key of a GGUF file.

    An existing integer or boolean of the same type is patched where it stands (a few bytes,
    whatever the model size); a string, or a key that is absent, rewrites the metadata section
    (the tensor data after it is streamed, never changed).
    """
    kind = STRING if isinstance(value, str) else BOOL if isinstance(value, bool) else _UINT32
    current = meta.fields.get(key)
    if current is not None and current.type == kind and kind != STRING:
        fmt = current.scalar_format
        assert fmt is not None
        new = bytearray(prefix)
        struct.pack_into(fmt, new, current.value_offset, value)
        return splice_between(rel, prefix, bytes(new), reason)
    if current is not None and current.type == ARRAY:
        raise ValueError(f"{key} is an array")
    return splice_between(rel, prefix, _rewrite(meta, prefix, key, kind, value), reason)


def apply_to_prefix(prefix: bytes, edit: SpliceEdit) -> bytes:
    """`prefix` with the edit applied."""
    end = edit.offset + len(edit.before)
    assert prefix[edit.offset : end] == edit.before
    return prefix[: edit.offset] + edit.after + prefix[end:]


# --------------------------------------------------------------------------- the context
@dataclass
class GGUFContext:
    """What a GGUF rule sees.

    Args:
        meta (`GGUFMetadata`): the file's metadata, as the fixes planned so far leave it.
        prefix (`bytes`): the bytes before the tensor data, likewise staged.
        rel (`str`): the file's name relative to the folder edits are written in.
        reference (`Checkpoint`, *optional*): the Hugging Face folder to compare with.
        reference_role (`str`, *optional*): `"finetuned"` (the folder the GGUF was converted
            from: its files are the truth) or `"base"` (the base model: differences may be
            deliberate).
        options (`Options`): user options.
        has_modelfile (`bool`): a `Modelfile` exists beside the GGUF.
    """

    meta: GGUFMetadata
    prefix: bytes
    rel: str
    reference: Checkpoint | None = None
    reference_role: str | None = None
    options: Options = field(default_factory=Options)
    has_modelfile: bool = False
    _renders: dict[tuple[str, tuple[tuple[str, str], ...]], TemplateRenders] = field(
        default_factory=dict, repr=False
    )

    def renders(self, source: str, special_tokens: Mapping[str, str]) -> TemplateRenders:
        """Render `source` over the probe conversations (cached per template and tokens)."""
        key = (source, tuple(sorted(special_tokens.items())))
        if key not in self._renders:
            self._renders[key] = render_all(source, special_tokens)
        return self._renders[key]

    def edit(self, key: str, value: int | bool | str, reason: str) -> SpliceEdit:
        """The edit setting `key` (see `metadata_edit`)."""
        return metadata_edit(self.meta, self.prefix, self.rel, key, value, reason)

    def template(self) -> str | None:
        """The template llama.cpp and Ollama read: `tokenizer.chat_template`."""
        return self.meta.chat_template

    def reference_template(self) -> str | None:
        """The reference folder's chat template, or `None`."""
        return None if self.reference is None else self.reference.chat_template()

    def same_vocabulary(self) -> bool:
        """The GGUF's tokens are the reference tokenizer's (same size, same special ids)."""
        ref = self.reference
        if ref is None:
            return False
        tokenizer = ref.tokenizer()
        if tokenizer is None:
            return False
        tokens = self.meta.tokens
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        if len(tokens) < size or not all(
            is_padding(i, tokens[i]) for i in range(size, len(tokens))
        ):
            return False  # fewer tokens, or more than the fillers up to the embedding size
        return all(ref.token_id(text) == i for text, i in self.meta.special_vocabulary().items())

    def mismatched_tokens(self, limit: int = 5) -> Iterator[tuple[int, str, str | None]]:
        """(id, GGUF text, reference text) of special tokens whose ids differ."""
        ref = self.reference
        if ref is None or ref.tokenizer() is None:
            return
        tokenizer = ref.tokenizer()
        assert tokenizer is not None
        shown = 0
        for text, i in self.meta.special_vocabulary().items():
            if ref.token_id(text) != i:
                yield i, text, tokenizer.id_to_token(i)
                shown += 1
                if shown >= limit:
                    return
