"""FTX406 tied-head-differs."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, head_pair, sampled_rows_differ
from ...analysis.context import Context, Need
from ...analysis.edits import edit_json
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer


@register
class TiedHeadDiffers(Fixer):
    """config.json ties the head to the embedding, but a different head is stored.

    ## What it checks
    `tie_word_embeddings: true` in `config.json` while the safetensors store an output head
    (`lm_head.weight`) whose rows differ from the input embedding's (64 evenly spaced rows are
    compared byte for byte, so the cost does not grow with the vocabulary).

    ## Why is this bad?
    With tied weights, vLLM and SGLang build the head from the embedding and skip every stored
    `lm_head.` tensor (`AutoWeightsLoader(skip_prefixes=["lm_head."])` in the `load_weights` of
    vLLM's `models/llama.py`, `qwen2.py`, ...), and transformers 4 ties after loading: the head
    that was trained (untied during fine-tuning, or by a `modules_to_save` merge) is thrown
    away and the model is served with another output layer, which produces gibberish or never
    emits its new tokens. transformers 5 keeps the stored head and only warns, so the model
    "works in transformers" and breaks where it is served.

    ## Example
    A Qwen2.5-0.5B fine-tune (tied in the base) trained with `modules_to_save=["lm_head"]` and
    merged: `lm_head.weight` now differs from `embed_tokens.weight`, the config still says tied.

    ## Fix
    Set `tie_word_embeddings` to `false`, so loaders use the stored head.

    ## Fix safety
    Unsafe: it changes which weights produce the output; correct when the stored head is the
    trained one (the usual case), wrong if the stored head is stale and the tie was intended.
    """

    code = "FTX406"
    name = "tied-head-differs"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when a tied config sits next to a differing stored head."""
        target = ctx.target
        if target.kind is not Kind.MERGED or target.config.get("tie_word_embeddings") is not True:
            return
        pair = head_pair(target)
        if pair is None or pair.head is None:
            return
        row = sampled_rows_differ(target, pair)
        if row is None:
            return
        edit = edit_json(target, CONFIG, {"tie_word_embeddings": False})
        yield self.finding(
            f"tie_word_embeddings is true but the stored {pair.head} differs from {pair.embed} "
            f"(row {row}); vLLM, SGLang and transformers 4 tie the head to the embedding and drop "
            "the trained head (transformers 5 keeps it)",
            path=CONFIG,
            fix=Fix(
                "Set tie_word_embeddings to false", Applicability.UNSAFE, (edit,) if edit else ()
            ),
            data={"head": pair.head, "embedding": pair.embed, "first_differing_row": row},
        )
