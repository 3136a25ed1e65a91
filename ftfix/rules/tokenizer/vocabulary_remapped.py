"""FTX020 vocabulary-remapped."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.vocab import compare, vocabulary
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer


@register
class VocabularyRemapped(Fixer):
    """The fine-tune's tokenizer gives tokens the base also has different ids.

    ## What it checks
    Both vocabularies are read by content, token -> id, from the files transformers loads:
    `tokenizer.json` (model vocabulary and `added_tokens`), else `vocab.json` / `vocab.txt` or
    `tokenizer.model` (sentencepiece or tiktoken) with `added_tokens_decoder` or
    `added_tokens.json`. The fine-tune is *same* (every token at the same id), *extended* (only
    new tokens, at new ids) or *remapped*: a token both share has another id, an id now holds
    another token, or a base token is gone. Remapped is reported here.

    ## Why is this bad?
    Every row of `embed_tokens` and `lm_head` was trained for the base's ids. A tokenizer that
    moved tokens feeds the model the wrong rows: the text it reads and writes is garbled, and
    stop or template tokens no longer mean what they meant. It is also the one case where
    copying tokenizer files from the base is wrong, so ftfix copies nothing then.

    ## Example
    A training script rebuilt the tokenizer and inserted `<|im_start|>` and `<|im_end|>` before
    the base's reserved tokens: `'<|reserved_special_token_0|>' 9 -> 11`.

    ## Fix
    None automatic. Save the tokenizer the model was actually trained with (the one the training
    script used, `tokenizer.save_pretrained(out)`), or retrain from the base's tokenizer, adding
    tokens only at the end (`tokenizer.add_special_tokens(...)` then
    `model.resize_token_embeddings(len(tokenizer))`).

    ## Fix safety
    None: no fix is offered, since which side is right cannot be known from the files.
    """

    code = "FTX020"
    name = "vocabulary-remapped"
    severity = Severity.ERROR

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding when a shared token or id disagrees between base and fine-tune."""
        result = compare(ctx.base, ctx.target)
        if result.status != "remapped":
            return
        parts = []
        if result.n_changed:
            parts.append(
                f"{result.n_changed} shared token(s) or id(s) differ "
                f"(e.g. {', '.join(result.changed)})"
            )
        if result.n_missing:
            parts.append(
                f"{result.n_missing} base token(s) missing (e.g. {', '.join(result.missing)})"
            )
        sources = vocabulary(ctx.target).sources
        yield self.finding(
            "vocabulary remapped against the base: "
            + "; ".join(parts)
            + "; no tokenizer file will be copied from the base",
            path=sources[0].split("[", 1)[0] if sources else None,
            data={
                "changed": list(result.changed),
                "n_changed": result.n_changed,
                "missing": list(result.missing),
                "n_missing": result.n_missing,
                "base_size": result.base_size,
                "finetuned_size": result.target_size,
            },
        )
