"""FTX021 missing-tokenizer-file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...analysis.context import Context
from ...analysis.vocab import VocabComparison, compare, token_text
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import (
    CHAT_TEMPLATE_FILE,
    PROCESSOR_TEMPLATE_FILE,
    SPECIAL_TOKEN_KEYS,
    SPECIAL_TOKENS_MAP,
    TOKENIZER_CONFIG,
    Checkpoint,
    Kind,
)
from ...registry import register
from ..base import Fixer
from ..templates.missing_chat_template import has_tokenizer_files

MODEL_FILES = ("tokenizer.model", "vocab.json", "merges.txt", "vocab.txt")
PROCESSOR_CONFIGS = (
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
)
# Keys under which transformers 5 nests a sub-processor's config inside processor_config.json
# instead of writing preprocessor_config.json / video_preprocessor_config.json.
_NESTED = {
    "preprocessor_config.json": ("image_processor", "feature_extractor"),
    "video_preprocessor_config.json": ("video_processor",),
}


@dataclass(frozen=True)
class _Spec:
    rel: str
    needs: str  # "vocab": same vocabulary; "model": same model vocabulary; "any": same/extended
    severity: Severity
    why: str


_SPECS = (
    _Spec(TOKENIZER_CONFIG, "vocab", Severity.ERROR,
          "transformers loads the tokenizer without its special tokens and settings"),
    _Spec("tokenizer.json", "vocab", Severity.WARNING,
          "fast tokenizers and servers (vLLM, TGI) read it"),
    _Spec("tokenizer.model", "model", Severity.WARNING,
          "sentencepiece/tiktoken loaders and llama.cpp's converter read it"),
    _Spec("vocab.json", "model", Severity.WARNING, "BPE loaders read it"),
    _Spec("merges.txt", "model", Severity.WARNING, "BPE loaders read it with vocab.json"),
    _Spec("vocab.txt", "model", Severity.WARNING, "WordPiece loaders read it"),
    _Spec("added_tokens.json", "vocab", Severity.WARNING,
          "slow tokenizers and older loaders read the added tokens from it"),
    _Spec(SPECIAL_TOKENS_MAP, "vocab", Severity.WARNING,
          "transformers 4 tools and converters read the special tokens from it"),
    _Spec("preprocessor_config.json", "any", Severity.ERROR,
          "AutoProcessor / AutoImageProcessor cannot load the model's processor"),
    _Spec("processor_config.json", "any", Severity.ERROR,
          "AutoProcessor cannot load the model's processor"),
    _Spec("video_preprocessor_config.json", "any", Severity.WARNING,
          "the processor cannot prepare videos"),
    _Spec(PROCESSOR_TEMPLATE_FILE, "any", Severity.WARNING,
          "the processor has no chat template"),
)  # fmt: skip


def is_v4_tokenizer(ckpt: Checkpoint) -> bool:
    """Whether the tokenizer was saved the transformers 4 way (which wrote special_tokens_map)."""
    return "added_tokens_decoder" in ckpt.tokenizer_config or ckpt.layout == "v4"


def has_processor(ckpt: Checkpoint) -> bool:
    """Whether the folder ships a processor (multimodal models)."""
    return any(ckpt.exists(rel) for rel in PROCESSOR_CONFIGS)


def _nested_in_processor_config(ckpt: Checkpoint, rel: str) -> bool:
    config = ckpt.json("processor_config.json") or {}
    return any(isinstance(config.get(key), dict) for key in _NESTED.get(rel, ()))


def _special_map_disagreement(base: Checkpoint, target: Checkpoint) -> str | None:
    """What in the base's special_tokens_map.json contradicts the fine-tune's tokenizer_config."""
    smap = base.json(SPECIAL_TOKENS_MAP) or {}
    config = target.tokenizer_config
    for key in SPECIAL_TOKEN_KEYS:
        if key in smap and token_text(smap[key]) != token_text(config.get(key)):
            return (
                f"its {key} {token_text(smap[key])!r} is not the fine-tune's "
                f"{token_text(config.get(key))!r}"
            )
    extra = config.get("additional_special_tokens", config.get("extra_special_tokens"))
    listed = smap.get("additional_special_tokens")
    if isinstance(listed, list) and isinstance(extra, list):
        ours = [token_text(t) for t in extra]
        if [token_text(t) for t in listed] != ours:
            return "its additional_special_tokens differ from the fine-tune's"
    return None


def _blocked(spec: _Spec, vocab: VocabComparison, ctx: Context) -> str | None:
    """Why copying this file from the base would be wrong, or `None`."""
    if vocab.status == "remapped":
        return "the vocabulary is remapped (FTX020)"
    if spec.needs == "model" and vocab.model_same is False:
        return "the fine-tune's tokenizer model differs from the base's"
    if spec.needs == "vocab" and vocab.status == "extended":
        return (
            f"the fine-tune extended the vocabulary ({vocab.n_added} new token(s)); the base's "
            "file would drop them"
        )
    if spec.rel == SPECIAL_TOKENS_MAP:
        clash = _special_map_disagreement(ctx.base, ctx.target)
        if clash:
            return f"the base's file disagrees with the fine-tune: {clash}"
    return None


@register
class MissingTokenizerFile(Fixer):
    """A tokenizer or processor file the base ships is missing from the fine-tune.

    ## What it checks
    For a fine-tune that ships its own tokenizer, the files the base has and the fine-tune
    lacks, in the layout the fine-tune uses: `tokenizer_config.json` and `tokenizer.json`;
    `added_tokens.json` and `special_tokens_map.json` for transformers 4 folders only
    (transformers 5 writes neither; `added_tokens.json` not when `tokenizer.json` and
    `added_tokens_decoder` hold the added tokens, as every loader since 4.34 reads); the slow
    vocabulary files `tokenizer.model`, `vocab.json`,
    `merges.txt`, `vocab.txt` for transformers 4 folders or when there is no `tokenizer.json`;
    and, for folders that are not adapters, the processor files `preprocessor_config.json`,
    `processor_config.json`, `video_preprocessor_config.json` and `chat_template.json` (when
    no `chat_template.jinja` serves the processor). Sub-processor configs that transformers 5
    nests inside `processor_config.json` are not asked for as separate files.

    ## Why is this bad?
    A partial save loads differently from the model that was trained: without
    `tokenizer_config.json` transformers knows no eos, so generation never stops; without the
    processor configs of a multimodal model `AutoProcessor.from_pretrained()` fails; converters
    such as llama.cpp's need `tokenizer.model`; older tools read the special tokens from
    `special_tokens_map.json`. The "special tokens have been added" confusion is often cured by
    nothing more than the base's tokenizer files.

    ## Example
    A MiniCPM-V fine-tune saved with `model.save_pretrained()` and `tokenizer.save_pretrained()`
    lacks `preprocessor_config.json`; `AutoProcessor.from_pretrained(out)` raises.

    ## Fix
    Copy the file from the base, byte for byte. Nothing the fine-tune has is ever overwritten.

    ## Fix safety
    Safe when the vocabularies are the same by content (files holding only the tokenizer model,
    like `tokenizer.model`, need only the same model vocabulary; processor configs need the
    base's vocabulary or an extension of it). With an extended vocabulary the base's
    `tokenizer.json`, `added_tokens.json` and `special_tokens_map.json` would drop the new
    tokens, so they are not copied; with a remapped vocabulary nothing is. When the fine-tune's
    vocabulary cannot be read and its embedding size differs from the base's, the copy is
    unsafe.
    """

    code = "FTX021"
    name = "missing-tokenizer-file"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per file the base has and the fine-tune lacks."""
        if not has_tokenizer_files(ctx):
            return
        target = ctx.target
        vocab = compare(ctx.base, target)
        planned: set[str] = set()  # files copied by this check, for the ones that depend on them
        for spec in _SPECS:
            data = ctx.base.read_bytes(spec.rel)
            if data is None or target.exists(spec.rel) or not self._wanted(ctx, spec, planned):
                continue
            severity, why = spec.severity, spec.why
            if spec.rel == "tokenizer.json" and not _other_vocabulary(target):
                severity = Severity.ERROR
                why = "the fine-tune has no other vocabulary file, so its tokenizer cannot load"
            elif spec.rel in MODEL_FILES and not target.exists("tokenizer.json"):
                severity = Severity.ERROR
                why = "the fine-tune has no tokenizer.json, so its tokenizer cannot load without it"
            blocked = _blocked(spec, vocab, ctx)
            fix = None
            if blocked is None:
                unsafe = vocab.status == "unknown"
                planned.add(spec.rel)
                fix = Fix(
                    f"Copy {spec.rel} from base",
                    Applicability.UNSAFE if unsafe else Applicability.SAFE,
                    (FileEdit(spec.rel, None, data),),
                )
                note = f" (unsafe: {vocab.reason})" if unsafe else ""
            else:
                note = f"; not copied: {blocked}"
            yield self.finding(
                f"{spec.rel} is missing but the base has it: {why}{note}",
                path=spec.rel,
                fix=fix,
                severity=severity,
                data={"vocabulary": vocab.status, "not_copied": blocked},
            )

    @staticmethod
    def _wanted(ctx: Context, spec: _Spec, planned: set[str]) -> bool:
        target = ctx.target
        if (
            spec.rel == "added_tokens.json"
            and target.exists("tokenizer.json")
            and "added_tokens_decoder" in target.tokenizer_config
        ):
            # Every loader since transformers 4.34 reads the added tokens from tokenizer.json
            # and tokenizer_config.json's added_tokens_decoder; the old file adds nothing.
            return False
        if spec.rel in (SPECIAL_TOKENS_MAP, "added_tokens.json"):
            # transformers 5 writes neither; don't turn a v5 folder into a v4 one.
            return is_v4_tokenizer(target)
        if spec.rel in MODEL_FILES:
            # transformers 5 saves only tokenizer.json; the slow files matter when the folder
            # has no tokenizer.json or was saved by transformers 4, which kept them.
            return not target.exists("tokenizer.json") or is_v4_tokenizer(target)
        if spec.rel in PROCESSOR_CONFIGS:
            return target.kind is not Kind.ADAPTER and not _nested_in_processor_config(
                target, spec.rel
            )
        if spec.rel == PROCESSOR_TEMPLATE_FILE:
            if target.kind is Kind.ADAPTER or target.exists(CHAT_TEMPLATE_FILE):
                return False
            if not has_processor(target) and not planned.intersection(PROCESSOR_CONFIGS):
                return False
            # Never hand the processor a template other than the tokenizer's.
            processor = (ctx.base.json(PROCESSOR_TEMPLATE_FILE) or {}).get("chat_template")
            current = target.chat_template()
            return current is None or current == processor
        return True


def _other_vocabulary(ckpt: Checkpoint) -> bool:
    return any(ckpt.exists(rel) for rel in ("tokenizer.model", "vocab.json", "vocab.txt"))
