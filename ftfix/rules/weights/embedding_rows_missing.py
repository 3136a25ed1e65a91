"""FTX101 embedding-rows-missing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.embeddings import (
    Layout,
    RowSource,
    StoredRows,
    analyse,
    config_value,
    header_sha256,
    init_option,
    locate,
    tokenizer_for,
)
from ...findings import Applicability, Edit, Finding, Fix, Severity, TensorResizeEdit
from ...io.checkpoint import SAFETENSORS_INDEX
from ...io.safetensors import rows_from_float32
from ...registry import register
from ..base import Fixer, Need

_SAVE_HINT = (
    'save the rows when training: modules_to_save=["embed_tokens", "lm_head"] in the '
    "LoraConfig, save_embedding_layers=True in save_pretrained(), or trainable_token_indices "
    "for just the new tokens; then merge the adapter and serve the merged model (vLLM, SGLang "
    "and llama.cpp cannot load modules_to_save or trainable tokens)"
)


@register
class EmbeddingRowsMissing(Fixer):
    """The embedding or output head has fewer rows than the tokenizer has tokens.

    ## What it checks
    Row counts against each other: the input embedding and the output head (their rows), the
    tokenizer (`len(tokenizer)`, added tokens included), `vocab_size` in `config.json` (or its
    `text_config`), and the base. Padded vocabularies (more rows than tokens) are fine. Also a
    config that unties the head (`tie_word_embeddings: false`) when no head tensor is stored. For
    a PEFT adapter: a tokenizer longer than the rows the adapter and its base provide, which
    happens when the vocabulary was resized for training but the adapter saved no embedding rows.

    ## Why is this bad?
    A token id past the end of the embedding makes the model fail (`index out of range`) the
    first time the token appears; a `vocab_size` that disagrees with the stored rows makes
    `from_pretrained` fail with a size mismatch; a missing head is initialised randomly at load
    time. An adapter trained on a resized vocabulary that saved no rows cannot be loaded on its
    base, or (after resizing the base) silently uses rows that were never trained.

    ## Example
    `model.embed_tokens.weight has 128256 rows but the tokenizer has 128258 tokens: ids
    128256..128257 (<|im_start|>, <|im_end|>) have no row`.

    ## Fix
    Grow the embedding and the head of a merged checkpoint to the tokenizer's length and set
    `vocab_size` to match (`--unsafe-fixes`). New rows get the mean of trained rows, or with
    `init="subtokens"` the mean of the rows of the pieces the token's text splits into. A
    `vocab_size` that merely disagrees with the stored rows is set to the row count; a missing
    head is tied to the embedding. Growing rewrites the shard holding the tensor (streamed,
    never held in memory, replaced atomically); `ftfix undo` restores the original bytes. For an
    adapter there is no fix: save the rows when training (`modules_to_save=["embed_tokens",
    "lm_head"]`, `save_embedding_layers=True`, or `trainable_token_indices`), and serve the
    merged model: vLLM, SGLang and llama.cpp do not load those parts of an adapter.

    ## Fix safety
    Unsafe: it adds weights the model never trained (they only let the model read the new
    tokens; FTX103 keeps reporting them until they are trained) and changes `config.json`.
    Tying a missing head assumes the model was trained tied, which is what the stored weights
    say.
    """

    code = "FTX101"
    name = "embedding-rows-missing"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when rows, tokenizer length and vocab_size do not agree."""
        layout = locate(ctx.target, ctx.base_or_none)
        if layout is None or layout.input is None:
            return
        tok = tokenizer_for(ctx)
        length = tok.get_vocab_size(with_added_tokens=True) if tok is not None else None
        if layout.adapter:
            yield from self._adapter(layout, length)
            return
        if layout.head_missing:
            yield self._head_missing(ctx, layout)
        yield from self._sizes(ctx, layout, length)

    def _adapter(self, layout: Layout, length: int | None) -> Iterator[Finding]:
        source = layout.input
        assert source is not None
        if length is None or length <= source.rows:
            return
        if layout.adapter_rows:
            what = f"the adapter's copy of {source.name} has {source.rows} rows"
        else:
            what = (
                f"the adapter stores no embedding rows and the base's {source.name} has "
                f"{source.rows}"
            )
        yield self.finding(
            f"the tokenizer has {length} tokens but {what}: loading the adapter on a resized base "
            f"fails with a size mismatch, or the new tokens get rows that were never trained; "
            f"{_SAVE_HINT}",
            path="adapter_config.json",
            data={"tokenizer_length": length, "rows": source.rows},
        )

    def _head_missing(self, ctx: Context, layout: Layout) -> Finding:
        assert layout.input is not None
        updates: dict[str, Any] = {"tie_word_embeddings": True}
        nested = ctx.target.config.get("text_config")
        if isinstance(nested, dict) and "tie_word_embeddings" in nested:
            updates = {"text_config": {**nested, "tie_word_embeddings": True}}
        edit = edit_json(ctx.target, "config.json", updates)
        return self.finding(
            "config.json sets tie_word_embeddings to false but no output head tensor is stored "
            f"(only {layout.input.name}): transformers initialises the head randomly",
            path="config.json",
            fix=Fix(
                "Tie the output head to the embedding",
                Applicability.UNSAFE,
                (edit,) if edit is not None else (),
            ),
            data={"input": layout.input.name},
        )

    def _sizes(self, ctx: Context, layout: Layout, length: int | None) -> Iterator[Finding]:
        sources = list(layout.sides())
        want = max([length or 0, *(s.rows for s in sources)])
        vocab = layout.vocab_size
        short = [s for s in sources if s.rows < want]
        if not short and (vocab is None or vocab == want):
            return
        facts = []
        for source in short:
            if length is not None and source.rows < length:
                facts.append(
                    f"{source.name} has {source.rows} rows but the tokenizer has {length} tokens: "
                    f"{_ids(source.rows, length)} ({_names(ctx, source.rows, length)}) "
                    f"{'has' if length - source.rows == 1 else 'have'} no row"
                )
            else:
                other = max(sources, key=lambda s: s.rows)
                facts.append(f"{source.name} has {source.rows} rows but {other.name} has {want}")
        if vocab is not None and any(vocab != s.rows for s in sources):
            rows = ", ".join(f"{s.name} has {s.rows} rows" for s in sources)
            facts.append(
                f"config.json vocab_size is {vocab} but {rows}: loading fails with a size mismatch"
            )
        base = locate(ctx.base_or_none) if ctx.base_or_none is not None else None
        base_rows = base.input.rows if base is not None and base.input is not None else None
        if base_rows is not None and base_rows != sources[0].rows:
            facts.append(f"the base has {base_rows} rows")
        edits = self._grow_edits(ctx, short, want)
        config_edit = _vocab_edit(ctx, want) if vocab != want else None
        all_edits: list[Edit] = [*edits, *([config_edit] if config_edit else [])]
        title = f"Grow the embedding rows to {want}" if short else f"Set vocab_size to {want}"
        first = short[0] if short else sources[0]
        yield self.finding(
            "; ".join(facts),
            path=first.rel if isinstance(first, StoredRows) and short else "config.json",
            fix=Fix(title, Applicability.UNSAFE, tuple(all_edits)) if all_edits else None,
            data={
                "tokenizer_length": length,
                "rows": {s.side: s.rows for s in sources},
                "config_vocab_size": vocab,
                "target_rows": want,
            },
        )

    def _grow_edits(self, ctx: Context, short: Sequence[RowSource], want: int) -> list[Edit]:
        analysis = analyse(ctx)
        if analysis is None or not short:
            return []
        init = init_option(ctx)
        edits: list[Edit] = []
        added_bytes = added_params = 0
        for source in short:
            if not isinstance(source, StoredRows) or source.side not in analysis.stats:
                return []
            ids = list(range(source.rows, want))
            values = analysis.init_rows(source, ids, init)
            data = rows_from_float32(values, source.dtype)
            added_bytes += len(data)
            added_params += len(ids) * source.hidden
            edits.append(
                TensorResizeEdit(
                    source.rel,
                    source.tensor,
                    tuple(ids),
                    data,
                    header_sha256(source.file),
                    f"grown from {source.rows} to {want} rows, {_reason(init)}",
                )
            )
        index = ctx.target.json(SAFETENSORS_INDEX)
        metadata = index.get("metadata") if index else None
        if isinstance(metadata, dict) and isinstance(metadata.get("total_size"), int):
            updated = {**metadata, "total_size": metadata["total_size"] + added_bytes}
            if isinstance(metadata.get("total_parameters"), int):
                updated["total_parameters"] = metadata["total_parameters"] + added_params
            index_edit = edit_json(ctx.target, SAFETENSORS_INDEX, {"metadata": updated})
            if index_edit is not None:
                edits.append(index_edit)
        return edits


def _reason(init: str) -> str:
    return "mean of the token's pieces" if init == "subtokens" else "mean of trained rows"


def _vocab_edit(ctx: Context, want: int) -> Edit | None:
    config = ctx.target.config
    nested = config.get("text_config")
    if isinstance(nested, dict) and "vocab_size" in nested:
        updates: dict[str, Any] = {"text_config": {**nested, "vocab_size": want}}
        if "vocab_size" in config:
            updates["vocab_size"] = want
        return edit_json(ctx.target, "config.json", updates)
    if config_value(config, "vocab_size") is None:
        return None
    return edit_json(ctx.target, "config.json", {"vocab_size": want})


def _ids(start: int, stop: int) -> str:
    return f"id {start}" if stop - start == 1 else f"ids {start}..{stop - 1}"


def _names(ctx: Context, start: int, stop: int) -> str:
    tok = tokenizer_for(ctx)
    if tok is None:
        return "unknown"
    names = [tok.id_to_token(i) or f"id {i}" for i in range(start, min(stop, start + 3))]
    return ", ".join(names) + (f" and {stop - start - 3} more" if stop - start > 3 else "")
