"""FTX102 untrained-token-rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ...analysis.context import Context
from ...analysis.embeddings import (
    MAX_LISTED,
    AdapterRows,
    EmbeddingAnalysis,
    StoredRows,
    TokenVerdict,
    analyse,
    init_option,
)
from ...findings import Applicability, Edit, Finding, Fix, Severity
from ...registry import register
from ..base import Fixer, Need

_PINNED = ("zero", "tiny-norm", "non-finite")


@register
class UntrainedTokenRows(Fixer):
    """Rows of tokens the fine-tune must read or emit were never trained.

    ## What it checks
    The tokens that have to work: tokens the fine-tune added relative to the base, every token
    the chat template emits (found by rendering it), the token that ends assistant turns, and
    bos/eos/pad (from the tokenizer and the configs). Their rows in the input embedding and in
    the output head are judged separately, against a bounded random sample of ordinary rows
    (at most 2048 rows; the model is never loaded, only those rows are read). A row is
    untrained when it is all zeros or not finite, when its norm is below the sample's 1%
    quantile (and a quarter of its median), when it is identical to another such token's row,
    or when it is unchanged from a base row that is itself untrained. Rows are read from merged
    checkpoints (one file or shards, tied or untied head, f32/f16/bf16, padded vocabularies) and
    from PEFT adapters over their base (`modules_to_save` copies, `save_embedding_layers`,
    `trainable_token_indices` rows, LoRA on the embedding or head).

    ## Why is this bad?
    The model cannot read a token whose input row was never trained, and cannot emit one whose
    output row was never trained. An all-zero output row of an end-of-turn or eos token pins
    its logit at 0: the model never ends its answer and no generation-config change makes it
    stop. Typical causes: tokens added for fine-tuning (`<|im_start|>`, `<|im_end|>`, tool
    tokens) while LoRA froze `embed_tokens`/`lm_head`; a Llama-3 *base* model's header and
    `<|eot_id|>` tokens, untrained in the base, used by a chat template. transformers' warning
    "Special tokens have been added in the vocabulary, make sure the associated word embeddings
    are fine-tuned or trained" fires on nearly every tokenizer and never looks at the weights.

    ## Example
    A LoRA fine-tune of a base model adds `<|im_start|>` and `<|im_end|>`, resizes the
    embeddings (new rows zero), and trains only `q_proj`/`v_proj`. The merged checkpoint has
    all-zero rows for both tokens: `<|im_end|> (id 128257, added by the fine-tune, ends assistant
    turns): input row is all zeros; output row is all zeros`.

    ## Fix
    Set each untrained row to the mean of trained rows, input embedding and output head
    separately (`--unsafe-fixes`; with `init="subtokens"` the mean of the rows of the pieces the
    token's text splits into). Only those rows' bytes are patched in place,
    with the original bytes backed up for `ftfix undo`. Rows an adapter takes from its base are
    not patched (the base is never modified): retrain with `trainable_token_indices`. A second
    check reports the repaired rows as FTX103 (initialized, never trained), not as errors.

    ## Fix safety
    Unsafe: it replaces weights. If the fine-tune trained with these rows frozen, the rest of
    the model adapted to them, so changing them changes the model. Initializing a row lets the
    model read the token but does not teach it the token, and in particular does not teach it
    to stop. The real cure is retraining with trainable rows (`modules_to_save=["embed_tokens",
    "lm_head"]`, or `trainable_token_indices` for just these tokens), or mapping eos onto a
    token the model was trained to emit; serve the merged model (vLLM, SGLang and llama.cpp do
    not load `modules_to_save` or trainable tokens of an adapter); `ftfix verify` shows whether
    generation stops.
    """

    code = "FTX102"
    name = "untrained-token-rows"
    severity = Severity.ERROR
    needs = frozenset({Need.WEIGHTS})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per token with untrained rows (the rest summarised)."""
        analysis = analyse(ctx)
        if analysis is None:
            return
        broken = [v for v in analysis.verdicts if v.token.must_work and v.with_state("untrained")]
        if not broken:
            return
        init = init_option(ctx)
        for verdict in broken[:MAX_LISTED]:
            yield self._finding(analysis, [verdict], init)
        if len(broken) > MAX_LISTED:
            yield self._finding(analysis, broken[MAX_LISTED:], init)

    def _finding(
        self, analysis: EmbeddingAnalysis, verdicts: Sequence[TokenVerdict], init: str
    ) -> Finding:
        edits: list[Edit] = []
        unpatchable = []
        for source in analysis.layout.sides():
            ids = [
                v.token.id
                for v in verdicts
                if any(s.source is source and s.state == "untrained" for s in v.sides)
            ]
            if not ids:
                continue
            reason = "mean of the token's pieces" if init == "subtokens" else "mean of trained rows"
            edits.extend(analysis.row_edits(source, ids, init, reason=reason))
            unpatchable += [i for i in ids if not source.homes(i)]
        if len(verdicts) == 1:
            message = _one(verdicts[0])
        else:
            names = ", ".join(v.token.label() for v in verdicts[:5])
            more = f" and {len(verdicts) - 5} more" if len(verdicts) > 5 else ""
            message = f"{len(verdicts)} more tokens in use have untrained rows: {names}{more}"
        if unpatchable:
            ids = sorted(set(unpatchable))
            message += (
                "; the adapter takes these rows from the base model, which ftfix never modifies: "
                f"retrain with trainable_token_indices={ids} or "
                'modules_to_save=["embed_tokens", "lm_head"], then serve the merged model'
            )
        title = (
            "Set untrained rows to the mean of the rows of the token's pieces"
            if init == "subtokens"
            else "Set untrained rows to the mean of trained rows"
        )
        return self.finding(
            message,
            path=_path(analysis, edits),
            fix=Fix(title, Applicability.UNSAFE, tuple(edits)) if edits else None,
            data={"tokens": [v.data() for v in verdicts], "init": init},
        )


def _one(verdict: TokenVerdict) -> str:
    message = f"{verdict.token.label()}: {verdict.describe('untrained')}"
    if not verdict.token.stops:
        return message
    out = [s for s in verdict.with_state("untrained") if s.side in ("output", "tied")]
    if not out:
        return message
    assert out[0].evidence is not None
    if out[0].evidence.kind in _PINNED:
        message += (
            "; its logit is pinned near 0, so the model cannot emit it and no config change "
            "makes it stop"
        )
    else:
        message += "; the model never learned to emit it, so it may never stop"
    return message + (
        ". Initializing the row does not teach the model to stop: train embed_tokens/lm_head "
        "(modules_to_save or trainable_token_indices) or map eos onto a trained token, and "
        "check with `ftfix verify`"
    )


def _path(analysis: EmbeddingAnalysis, edits: Sequence[Edit]) -> str | None:
    if edits:
        return edits[0].path
    source = analysis.layout.input
    if isinstance(source, StoredRows):
        return source.rel
    if isinstance(source, AdapterRows):
        return "adapter_config.json"
    return None
