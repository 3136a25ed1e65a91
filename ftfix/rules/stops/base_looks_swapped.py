"""FTX209 base-looks-swapped."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.stops import token_vocabulary
from ...analysis.templates import Verdict, compare
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer

_SHOWN = 4


@register
class BaseLooksSwapped(Fixer):
    """BASE looks like the fine-tune and FINETUNED like its base: the arguments may be swapped.

    ## What it checks
    Evidence that the folder given as BASE was derived from the one given as FINETUNED rather
    than the other way round: BASE's tokenizer has added tokens (past the end of FINETUNED's
    vocabulary) that FINETUNED's tokenizer lacks, or BASE's chat template ignores
    `add_generation_prompt` while FINETUNED's, rendering every conversation the same, honours
    it.

    ## Why is this bad?
    Every rule compares the fine-tune with its base. Reversed, "restore from the base" means
    copying the fine-tune's template into the base (a ChatML template into a tokenizer that
    lacks `<|im_start|>`), or a template without a generation prompt over one that has it.
    ftfix never applies a fix that creates a new error, but the findings themselves describe
    the wrong folder.

    ## Example
    `ftfix repair out/checkpoint-500 Qwen/Qwen2.5-0.5B`: BASE holds `<|im_start|>` and
    `<|im_end|>` added by the training run, FINETUNED (the real base) does not.

    ## Fix
    None: check the order of the arguments (`ftfix check BASE FINETUNED`). When BASE's template
    really lost its generation prompt and the fine-tune fixed it, nothing needs doing.

    ## Fix safety
    No fix is offered.
    """

    code = "FTX209"
    name = "base-looks-swapped"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when BASE has what a fine-tune adds and FINETUNED lacks."""
        missing = _tokens_only_in_base(ctx)
        if missing:
            shown = ", ".join(missing[:_SHOWN]) + (" ..." if len(missing) > _SHOWN else "")
            yield self.finding(
                f"BASE has {len(missing)} added token(s) FINETUNED's tokenizer lacks ({shown}): "
                "tokens are added by fine-tuning, so BASE looks like the fine-tune; are BASE and "
                "FINETUNED swapped?",
                data={"tokens_only_in_base": missing},
            )
            return
        if _prompt_only_in_finetune(ctx):
            yield self.finding(
                "BASE's chat template ignores add_generation_prompt while FINETUNED's honours "
                "it: are BASE and FINETUNED swapped? (if the fine-tune fixed its base's "
                "template, nothing needs doing)",
                severity=Severity.WARNING,
                data={"generation_prompt_only_in_finetuned": True},
            )


def _tokens_only_in_base(ctx: Context) -> list[str]:
    base_tok, target_tok = ctx.base.tokenizer(), ctx.target.tokenizer()
    if base_tok is None or target_tok is None:
        return []
    size = target_tok.get_vocab_size(with_added_tokens=True)
    if base_tok.get_vocab_size(with_added_tokens=True) <= size:
        return []
    ours = token_vocabulary(ctx.target)
    return sorted(
        (text for text, i in token_vocabulary(ctx.base).items()
         if i is not None and i >= size and text not in ours and ctx.target.token_id(text) is None),
        key=lambda t: token_vocabulary(ctx.base)[t] or 0,
    )  # fmt: skip


def _prompt_only_in_finetune(ctx: Context) -> bool:
    base_source, target_source = ctx.base.chat_template(), ctx.target.chat_template()
    if base_source is None or target_source is None or base_source == target_source:
        return False
    tokens = ctx.target.special_tokens()
    base, target = ctx.renders(base_source, tokens), ctx.renders(target_source, tokens)
    if not base.ignores_generation_prompt() or target.ignores_generation_prompt():
        return False
    # Same format, and only FINETUNED adds the prompt: `compare` calls that SAME (nothing was
    # lost; issue 19's convergence rule) or, against an older reading, GENERATION_PROMPT_LOST.
    return compare(target, base).verdict in (Verdict.SAME, Verdict.GENERATION_PROMPT_LOST)
