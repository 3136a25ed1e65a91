"""FTX504 gguf-eos-differs."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext
from ...findings import Applicability, Finding, Fix, Severity
from ...io.gguf import KEY_EOS
from ...registry import register
from ..base import GGUFFixer


@register
class GgufEosDiffers(GGUFFixer):
    """The GGUF's eos token is not the folder's.

    ## What it checks
    Compares `tokenizer.ggml.eos_token_id` with the id of the `eos_token` of the Hugging Face
    folder the GGUF was converted from (`--gguf`), when both have the same vocabulary. A base
    model's eos is no reference (a fine-tune may end turns differently) and is not compared.

    ## Why is this bad?
    llama.cpp's converter reads one eos, from `tokenizer_config.json`; a GGUF converted before
    the folder's eos was fixed (or from a folder whose files disagree) keeps the pre-training
    eos, so llama.cpp may not stop where transformers stops.

    ## Example
    The folder's eos is `<|im_end|>` (7), the GGUF's `<|end_of_text|>` (2).

    ## Fix
    Patches `tokenizer.ggml.eos_token_id` in place (4 bytes; any model size).

    ## Fix safety
    Safe: the folder the GGUF came from is the truth for its tokens.
    """

    code = "FTX504"
    name = "gguf-eos-differs"
    severity = Severity.ERROR

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding when the eos ids differ over the same vocabulary."""
        ref = ctx.reference
        if ref is None or ctx.reference_role != "finetuned" or not ctx.same_vocabulary():
            return  # a base's eos is no reference: a fine-tune may end turns differently
        eos = ref.special_tokens().get("eos_token")
        want = None if eos is None else ref.token_id(eos)
        have = ctx.meta.int_value(KEY_EOS)
        if want is None or have == want:
            return
        edit = ctx.edit(KEY_EOS, want, f"eos_token_id = {want} ({eos})")
        yield self.finding(
            f"{KEY_EOS} is {have} ({ctx.meta.token(have)}) but the folder it was converted from "
            f"has eos {eos} ({want}): it was converted before the eos was fixed",
            path=None,
            fix=Fix(f"Set {KEY_EOS} to {want} ({eos})", Applicability.SAFE, (edit,)),
        )
