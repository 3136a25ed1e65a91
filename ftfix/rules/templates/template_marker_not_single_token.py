"""FTX007 template-marker-not-single-token."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ...analysis.context import Context
from ...analysis.templates import is_marker, marker_style, markers_in, template_markers
from ...analysis.turns import assistant_frame
from ...errors import InvalidCheckpointError
from ...findings import Finding, Severity
from ...io.checkpoint import Checkpoint
from ...io.tokenizer import TokenizerView
from ...registry import register
from ..base import Fixer, Need

if TYPE_CHECKING:
    pass


def _encode(tok: TokenizerView, text: str) -> tuple[list[int], list[str]]:
    """Token ids of `text` and the piece of `text` each covers (clearer than byte-level tokens)."""
    encoding = tok.encode(text, add_special_tokens=False)
    return list(encoding.ids), [text[start:end] for start, end in encoding.offsets]


def _one_token(tok: TokenizerView, text: str) -> int | None:
    """The id of `text` when it encodes to one real token (the unknown token does not count)."""
    ids, _ = _encode(tok, text)
    if len(ids) != 1:
        return None
    # A word-level vocabulary maps any unknown word to one `<unk>` id: that is not the marker.
    if tok.id_to_token(ids[0]) != text and ids[0] in _unknown_ids(tok):
        return None
    return ids[0]


def _unknown_ids(tok: TokenizerView) -> set[int]:
    unk = getattr(tok.model, "unk_token", None)
    found = tok.token_to_id(unk) if isinstance(unk, str) else None
    return set() if found is None else {found}


def _base_tokenizer(base: Checkpoint) -> TokenizerView | None:
    try:
        return base.tokenizer()
    except InvalidCheckpointError:
        return None  # the base's tokenizer.json is damaged: judge without it


_STYLES = 4  # pipe, fullwidth, tag, bracket: what marker_style can return


@register
class TemplateMarkerNotSingleToken(Fixer):
    """A special marker the chat template emits is not one token for the fine-tune's tokenizer.

    ## What it checks
    Every template the fine-tune stores is rendered over the probe conversations, with and
    without `add_generation_prompt`, and the special-looking markers in the output are
    collected: `<|im_start|>`-style, DeepSeek's `<｜Assistant｜>`, tags such as
    `<start_of_turn>` or `</s>`, and bracketed ones such as `[INST]`. Each is encoded with the
    fine-tune's `tokenizer.json` (the `tokenizers` library, no special tokens added). A marker
    must be one token id when the base's tokenizer has it as one token, when it is one of the
    fine-tune's own special tokens (bos, eos, ...), or when it is written like the tokenizer's
    other added tokens (`<|...|>` among `<|...|>` tokens). Markers that are plain text by
    design (Llama 2's `[INST]`, Zephyr's `<|user|>` on a tokenizer without `<|...|>` tokens)
    are left alone, and the marker that ends assistant turns is left to FTX205
    (end-of-turn-not-single-token), which also says how to make generation stop.

    ## Why is this bad?
    The model was meant to see one marker token but reads a handful of ordinary pieces
    (`<`, `|`, `im`, `_start`, `|>`). It has never learned them as a turn boundary, and it
    cannot emit the end-of-turn marker as one token, so stop tokens never match. This happens
    when a template is switched (e.g. to ChatML) without adding its tokens to the tokenizer,
    or when the fine-tune's tokenizer lost added tokens of the base.

    ## Example
    A Llama 3 base fine-tuned with a ChatML template; `<|im_start|>` and `<|im_end|>` were never
    added to the tokenizer, whose other specials look like `<|eot_id|>`.

    ## Fix
    None automatic: adding a token changes the vocabulary and needs trained embedding rows. Add
    the marker as a special token and train its rows (or retrain with the base's template), or
    copy the base's tokenizer files when the fine-tune lost them.

    ## Fix safety
    None: no fix is offered.
    """

    code = "FTX007"
    name = "template-marker-not-single-token"
    severity = Severity.ERROR
    needs = frozenset({Need.TOKENIZER})

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per marker that the tokenizer splits although it must not."""
        tok = ctx.target.tokenizer()
        templates = ctx.target.chat_templates()
        if tok is None or not templates:
            return
        tokens = ctx.target.special_tokens()
        specials = {value: key for key, value in tokens.items()}
        added_styles: set[str] = set()
        for added in tok.get_added_tokens_decoder().values():
            if is_marker(added.content):
                added_styles.add(marker_style(added.content))
                if len(added_styles) == _STYLES:
                    break  # every style seen: the rest cannot add one (a million tokens)
        locations = {loc.name: loc for loc in reversed(ctx.target.template_locations())}
        base_tok: TokenizerView | None = None
        base_loaded = False
        reported: set[str] = set()
        for name, source in templates.items():
            turn_end: str | None = None
            for marker in template_markers(ctx.renders(source, tokens)):
                if marker in reported:
                    continue
                if _one_token(tok, marker) is not None:
                    continue
                ids, pieces = _encode(tok, marker)
                if turn_end is None:
                    turn_end = _turn_end(source, tokens)
                if marker == turn_end:
                    continue  # the end-of-turn marker is FTX205's, with its stop-token advice
                if not base_loaded:
                    base = ctx.base_or_none
                    base_tok, base_loaded = (_base_tokenizer(base) if base else None), True
                reason = _why_required(marker, specials, added_styles, base_tok)
                if reason is None:
                    continue
                reported.add(marker)
                loc = locations.get(name)
                yield self.finding(
                    f"{marker} is not one token: the tokenizer splits it into {len(pieces)} "
                    f"pieces {pieces} (ids {ids}); {reason}",
                    path=loc.path if loc else None,
                    data={"marker": marker, "pieces": pieces, "ids": ids, "template": name},
                )


def _turn_end(source: str, tokens: Mapping[str, str]) -> str:
    """The marker the template ends assistant turns with, or `""`."""
    frame = assistant_frame(source, tokens)
    if frame is None:
        return ""
    trailer = frame.trailer.lstrip()
    found = markers_in(trailer)
    return found[0] if found and trailer.startswith(found[0]) else ""


def _why_required(
    marker: str,
    specials: dict[str, str],
    added_styles: set[str],
    base_tok: TokenizerView | None,
) -> str | None:
    if base_tok is not None:
        base_id = _one_token(base_tok, marker)
        if base_id is not None:
            return f"the base tokenizer has it as one token (id {base_id})"
    if marker in specials:
        return f"it is the {specials[marker]}"
    style = marker_style(marker)
    if style in ("pipe", "fullwidth") and style in added_styles:
        return "the tokenizer's other special tokens are written the same way"
    return None
