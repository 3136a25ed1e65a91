"""FTX500 gguf-end-of-turn-not-eog."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext, eog_ids, gguf_special_tokens
from ...analysis.stops import find_end_of_turn
from ...findings import Applicability, Finding, Fix, Severity
from ...io.gguf import KEY_EOT
from ...registry import register
from ..base import GGUFFixer


@register
class GgufEndOfTurnNotEog(GGUFFixer):
    """llama.cpp does not stop on the token the GGUF's chat template ends turns with.

    ## What it checks
    Renders `tokenizer.chat_template` to find the token printed after an answer, and builds
    the end-of-generation (EOG) set exactly as llama.cpp does when it loads the vocabulary: the
    ids in `tokenizer.ggml.eos_token_id`, `eot_token_id`, `eom_token_id`, the FIM pad/repo/sep
    ids, and tokens guessed by their text (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, ...).

    ## Why is this bad?
    llama.cpp, llama-cpp-python, LM Studio and Ollama stop generating only on EOG tokens;
    `generation_config.json` does not exist for them. A fine-tune converted with the
    pre-training eos (a base model's `<|end_of_text|>`) and a turn end that is not one of the
    guessed texts (`<eoa>`, `<|end_of_turn|>`, a marker the fine-tune added) answers, prints
    the marker, and goes on into the next turn.

    ## Example
    A template ends turns with `<|assistant_end|>`; the GGUF's eos is `</s>` and it has no
    `eot_token_id`: the EOG set is `{</s>}`.

    ## Fix
    Sets `tokenizer.ggml.eot_token_id` to the end-of-turn token: patched in place when the key
    exists (4 bytes), added by rewriting the metadata section otherwise (tensor data is
    streamed after it unchanged). The eos stays.

    ## Fix safety
    Safe: it adds a stop token the template itself prints. Unsafe when it replaces an eot id
    that would then no longer stop generation.
    """

    code = "FTX500"
    name = "gguf-end-of-turn-not-eog"
    severity = Severity.ERROR

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding when the template's end of turn is not in llama.cpp's EOG set."""
        template = ctx.template()
        if template is None:
            return
        vocab = ctx.meta.special_vocabulary()
        end = find_end_of_turn(template, gguf_special_tokens(ctx.meta), vocab)
        if end is None or end.token is None or end.token not in vocab:
            return
        token_id = vocab[end.token]
        eog = eog_ids(ctx.meta)
        if token_id in eog:
            return
        stops = ", ".join(f"{ctx.meta.token(i)} ({i}, {why})" for i, why in sorted(eog.items()))
        old = ctx.meta.int_value(KEY_EOT)
        guessed = old is not None and eog.get(old) == "guessed from its text"
        applicability = Applicability.SAFE if old is None or guessed else Applicability.UNSAFE
        edit = ctx.edit(KEY_EOT, token_id, f"eot_token_id = {token_id} ({end.token})")
        yield self.finding(
            f"chat template ends turns with {end.token} ({token_id}) but llama.cpp stops only on "
            f"{stops or 'nothing'}: generation runs past the end of the answer",
            path=None,
            fix=Fix(f"Set {KEY_EOT} to {token_id} ({end.token})", applicability, (edit,)),
            data={"end_of_turn": end.token, "end_of_turn_id": token_id, "eog": sorted(eog)},
        )
