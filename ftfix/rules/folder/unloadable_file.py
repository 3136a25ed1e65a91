"""FTX922 unloadable-file."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ...analysis.context import Context
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import SAFETENSORS_INDEX, SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG
from ...registry import register
from ..base import Fixer

_BOM = b"\xef\xbb\xbf"
_JSON_FILES = (
    "config.json", "generation_config.json", TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP,
    "added_tokens.json", "adapter_config.json", SAFETENSORS_INDEX, "tokenizer.json",
    "preprocessor_config.json", "processor_config.json",
)  # fmt: skip
# Files that must be files: a folder of that name hides them from every loader.
_FILES = (*_JSON_FILES, "model.safetensors", "adapter_model.safetensors", "chat_template.jinja")
_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
_SPECIALS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token",
             "mask_token")  # fmt: skip


@register
class UnloadableFile(Fixer):
    """A file of the fine-tune is one that transformers cannot load, though ftfix can read it.

    ## What it checks
    JSON files starting with a UTF-8 byte-order mark; `config.json` sizes (`vocab_size`,
    `hidden_size`, `num_hidden_layers`, `num_attention_heads`) that are not positive integers
    (`"98"`, `null`); special tokens in `tokenizer_config.json` that are neither a string nor
    an added-token object (a list, a number); a `chat_template` list entry without a string
    `name` and `template`; and a folder where a checkpoint file belongs (`model.safetensors/`).

    ## Why is this bad?
    ftfix reads leniently, transformers does not: `json.loads` refuses a BOM ("Unexpected UTF-8
    BOM"), model classes build `range(num_hidden_layers)` and `nn.Embedding(vocab_size, ...)`,
    tokenizers reject a list as `eos_token`, and a folder named `model.safetensors` is no
    weights at all. The checkpoint passes every other check and then fails to load.

    ## Example
    A config edited on Windows was saved with a BOM; `AutoConfig.from_pretrained(out)` raises
    `JSONDecodeError: Unexpected UTF-8 BOM`.

    ## Fix
    A BOM is removed (the rest of the file is kept byte for byte). The other problems need the
    right value, which only the person who trained the model knows: copy the file from the
    base if it was not meant to change.

    ## Fix safety
    Removing a BOM is safe: it changes no value. Nothing else is fixed.
    """

    code = "FTX922"
    name = "unloadable-file"
    severity = Severity.ERROR
    needs = frozenset()  # judged from the folder alone

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per file transformers would refuse."""
        target = ctx.target
        for rel in _FILES:
            if os.path.isdir(target.root / rel):
                yield self.finding(
                    f"{rel} is a folder, not a file: no loader can read it", path=rel
                )
        for rel in _JSON_FILES:
            data = target.read_bytes(rel)
            if data is not None and data.startswith(_BOM):
                fix = Fix(
                    f"Remove the byte-order mark from {rel}",
                    Applicability.SAFE,
                    (FileEdit(rel, data, data[len(_BOM) :]),),
                )
                yield self.finding(
                    f"{rel} starts with a UTF-8 byte-order mark: transformers' json.loads "
                    "refuses it (Unexpected UTF-8 BOM)",
                    path=rel,
                    fix=fix,
                )
        config = target.json("config.json") or {}
        for key in _SIZES:
            if key in config and not (type(config[key]) is int and config[key] > 0):
                yield self.finding(
                    f"config.json {key} is {config[key]!r}, not a positive integer: the model "
                    "cannot be built",
                    path="config.json",
                    data={"key": key},
                )
        tok_config = target.json(TOKENIZER_CONFIG) or {}
        for key in _SPECIALS:
            value = tok_config.get(key)
            if value is not None and not isinstance(value, str | dict):
                yield self.finding(
                    f"{TOKENIZER_CONFIG} {key} is a {type(value).__name__} ({value!r:.60}), "
                    "not a token: the tokenizer does not load",
                    path=TOKENIZER_CONFIG,
                    data={"key": key},
                )
        templates = tok_config.get("chat_template")
        if isinstance(templates, list):
            for index, entry in enumerate(templates):
                if not (
                    isinstance(entry, dict)
                    and isinstance(entry.get("name"), str)
                    and isinstance(entry.get("template"), str)
                ):
                    yield self.finding(
                        f"{TOKENIZER_CONFIG} chat_template entry {index} has no string "
                        "'name' and 'template': the tokenizer does not load",
                        path=TOKENIZER_CONFIG,
                        data={"entry": index},
                    )
