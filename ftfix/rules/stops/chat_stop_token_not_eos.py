"""FTX202 chat-stop-token-not-eos."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.stops import GENERATION_CONFIG, describe_ids, eos_ids, eos_value, stop_setup
from ...findings import Applicability, Finding, Fix, Severity
from ...io.checkpoint import Kind
from ...registry import register
from ..base import Fixer


@register
class ChatStopTokenNotEos(Fixer):
    """The token that ends an assistant turn is not an eos id of generation_config.json.

    ## What it checks
    The end-of-turn token is derived by rendering the chat template (the fine-tune's own, or
    `--template`; the base's for an adapter without tokenizer files) with two different answers
    and reading what it prints right after them: `<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`,
    `<|end|>`, `</s>`, `<eoa>`, ... Its id, from the fine-tune's tokenizer, must be in
    `eos_token_id` of the fine-tune's `generation_config.json` (an int or a list).

    ## Why is this bad?
    transformers' `generate`, vLLM and SGLang stop on the ids of `generation_config.json`. The
    model ends its answer with the end-of-turn token, generation goes on, and the model writes a
    new user turn, repeats the marker, or loops until `max_new_tokens`. Typical after fine-tuning
    a base model into a chat model (the base's eos is `<|endoftext|>`), and in InternLM2 chat
    checkpoints whose `generation_config.json` lists only `</s>` (2) while turns end with
    `<|im_end|>` (92542).

    ## Example
    `generation_config.json` has `"eos_token_id": 151643` (`<|endoftext|>`) and the template
    ends turns with `<|im_end|>` (151645).

    ## Fix
    Add the end-of-turn id to `eos_token_id`, keeping the original eos: `151643` becomes
    `[151643, 151645]`.

    ## Fix safety
    Safe: it only adds a stop id, the one the template itself ends every assistant turn with;
    the original eos still stops generation.
    """

    code = "FTX202"
    name = "chat-stop-token-not-eos"
    severity = Severity.ERROR
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a finding when generation_config.json does not stop on the end of turn."""
        target = ctx.target
        generation = target.generation_config
        if generation is None:
            return  # FTX201's case: what is used instead is judged there
        setup = stop_setup(ctx)
        if setup is None or setup.token_id is None:
            return
        value = generation.get("eos_token_id")
        ids = eos_ids(value)
        if setup.token_id in ids:
            return
        if not ids:
            owner = ctx.base_or_none if target.kind is Kind.ADAPTER else target
            config = None if owner is None else owner.json("config.json")
            if not config or "eos_token_id" not in config:
                return  # nothing in the files says what generation stops on: no conclusion
            ids = eos_ids(config.get("eos_token_id"))
            if setup.token_id in ids:
                return  # transformers fills the missing eos from config.json, which stops
            observed = "not set"
        else:
            observed = describe_ids(setup.tokenizer, value)
        new = (*ids, setup.token_id)
        edit = edit_json(target, GENERATION_CONFIG, {"eos_token_id": eos_value(new, like=value)})
        yield self.finding(
            f"eos_token_id is {observed} but assistant turns end with {setup.describe()}",
            path=GENERATION_CONFIG,
            fix=Fix(
                f"Add {setup.describe()} to eos_token_id",
                Applicability.SAFE,
                () if edit is None else (edit,),
            ),
            data={
                "eos_token_id": list(ids),
                "end_of_turn": setup.token,
                "end_of_turn_id": setup.token_id,
                "template": setup.template_origin,
            },
        )
