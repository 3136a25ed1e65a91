"""FTX408 tokenizer-class-unloadable."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import GENERIC_FAST_TOKENIZER as GENERIC_FAST
from ...analysis.config import TRANSFORMERS5_ONLY_TOKENIZERS as TRANSFORMERS5_ONLY
from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.vocab import compatible
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import TOKENIZER_CONFIG
from ...registry import register
from ..base import Fixer


@register
class TokenizerClassUnloadable(Fixer):
    """`tokenizer_class` is one older loaders cannot import, or not the base's.

    ## What it checks
    `tokenizer_class` in the fine-tune's `tokenizer_config.json` against the base's: a
    transformers-5-only name (`TokenizersBackend`) where the base names a class every
    transformers version has, or a class the base does not use at all.

    ## Why is this bad?
    transformers 4.x (still pinned by many serving images), llama.cpp's `convert_hf_to_gguf.py`
    and mlx-lm load the tokenizer with `AutoTokenizer`, which imports the class by name:
    "Tokenizer class TokenizersBackend does not exist or is not currently imported". A foreign
    class wraps tokenizer.json in another class's BOS/EOS and normalisation logic.

    ## Example
    Base `tokenizer_config.json`: `"tokenizer_class": "PreTrainedTokenizerFast"`; the fine-tune,
    saved with transformers 5: `"TokenizersBackend"`.

    ## Fix
    Write the base's value; where the base itself names `TokenizersBackend`, write
    `PreTrainedTokenizerFast` (the folder has `tokenizer.json`), which transformers 5 loads as
    the same tokenizer and transformers 4 can import.

    ## Fix safety
    Safe: only when the vocabulary is the base's (or extends it). The base's class loads the
    fine-tune the way the base was loaded; `PreTrainedTokenizerFast` and `TokenizersBackend` both
    wrap `tokenizer.json` as it is, so transformers 5 encodes exactly as before (tested).
    """

    code = "FTX408"
    name = "tokenizer-class-unloadable"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when tokenizer_class changed from the base's to one that breaks."""
        target = ctx.target
        config = target.json(TOKENIZER_CONFIG)
        base_config = ctx.base.json(TOKENIZER_CONFIG)
        if config is None or base_config is None:
            return
        found, expected = config.get("tokenizer_class"), base_config.get("tokenizer_class")
        if not isinstance(found, str) or not isinstance(expected, str) or found == expected:
            return
        if expected in TRANSFORMERS5_ONLY:
            if not target.exists("tokenizer.json"):
                return
            expected = GENERIC_FAST
        severity = Severity.ERROR if found in TRANSFORMERS5_ONLY else Severity.WARNING
        why = (
            "transformers 4.x, llama.cpp's converter and mlx-lm cannot import it"
            if found in TRANSFORMERS5_ONLY
            else "another class's special-token and normalisation logic wraps tokenizer.json"
        )
        fix = None
        if compatible(ctx.base, target) in ("same", "extended"):
            edit = edit_json(target, TOKENIZER_CONFIG, {"tokenizer_class": expected})
            fix = Fix(
                f"Set tokenizer_class to {expected}", Applicability.SAFE, (edit,) if edit else ()
            )
        yield self.finding(
            f"tokenizer_class is {found} (base: {base_config.get('tokenizer_class')}); {why}",
            path=TOKENIZER_CONFIG,
            severity=severity,
            fix=fix,
            data={"tokenizer_class": found, "expected": expected},
        )
