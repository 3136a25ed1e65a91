"""FTX204 eos-token-drift."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.stops import (
    GENERATION_CONFIG,
    StopSetup,
    describe_ids,
    eos_ids,
    find_end_of_turn,
    stop_setup,
    token_vocabulary,
)
from ...analysis.vocab import compatible
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG, Checkpoint, Kind
from ...registry import register
from ..base import Fixer


def _with_content(value: Any, token: str) -> Any:
    # Keep the shape the file uses: a plain string, or an AddedToken dict.
    if isinstance(value, dict):
        return {**value, "content": token}
    return token


def eos_token_edits(target: Checkpoint, token: str) -> list[FileEdit]:
    """Set the tokenizer's eos token to `token` wherever the fine-tune declares it."""
    edits: list[FileEdit | None] = []
    legacy = target.json(SPECIAL_TOKENS_MAP)
    config = target.json(TOKENIZER_CONFIG)
    if config is not None and ("eos_token" in config or not (legacy or {}).get("eos_token")):
        edits.append(
            edit_json(
                target,
                TOKENIZER_CONFIG,
                {"eos_token": _with_content(config.get("eos_token"), token)},
            )
        )
    if legacy is not None and legacy.get("eos_token") is not None:
        edits.append(
            edit_json(
                target,
                SPECIAL_TOKENS_MAP,
                {"eos_token": _with_content(legacy["eos_token"], token)},
            )
        )
    return [e for e in edits if e is not None]


def _base_end_of_turn(base: Checkpoint) -> str | None:
    template = base.chat_template()
    if template is None:
        return None
    end = find_end_of_turn(template, base.special_tokens(), token_vocabulary(base))
    return None if end is None else end.token


@register
class EosTokenDrift(Fixer):
    """The eos that converters read is not the token the template ends turns with.

    ## What it checks
    Consumers that take a single eos read it from different files: llama.cpp's
    `convert_hf_to_gguf.py` writes the `eos_token` string of `tokenizer_config.json` into the
    GGUF (falling back to the integer `eos_token_id` of `config.json`) and ignores
    `generation_config.json`; transformers falls back to `config.json` when there is no
    `generation_config.json`. The rule compares both with the end-of-turn token the chat
    template prints after an answer, and with the base:

    - the tokenizer's `eos_token` changed from the base's and is not the end of turn: error;
    - `config.json`'s `eos_token_id` changed from the base's and lost the end of turn that the
      base's included: error when no `generation_config.json` stops there either, else warning;
    - the tokenizer's `eos_token` is the base's but not the end of turn, and the base's own
      template does not end turns with it either (a base model fine-tuned into a chat model):
      warning. A chat base that ships this combination on purpose (Gemma's `<eos>` with
      `<end_of_turn>`, Phi-3's `<|endoftext|>` with `<|end|>`) is not reported.

    ## Why is this bad?
    A GGUF converted from the fine-tune gets the wrong eos: llama.cpp, Ollama and LM Studio
    then run past the end of the answer (unless they happen to recognise the marker by name).
    Tokenizer code that appends `tokenizer.eos_token` to training examples also trains the wrong
    token.

    ## Example
    A Llama-3-Instruct fine-tune whose training script set `tokenizer.eos_token =
    "<|end_of_text|>"`; the template still ends turns with `<|eot_id|>`.

    ## Fix
    Set `eos_token` (in `tokenizer_config.json`, and in `special_tokens_map.json` when the
    folder has one) to the end-of-turn token; restore `config.json`'s `eos_token_id` to the
    base's value.

    ## Fix safety
    Depends: safe when it restores the base's value on the base's vocabulary and the restored
    token is what the fine-tune's template ends turns with; unsafe otherwise. Setting any other eos
    changes which token the tokenizer calls eos, and so what data collators append.
    """

    code = "FTX204"
    name = "eos-token-drift"
    severity = Severity.ERROR
    needs = frozenset()
    other_severities = (Severity.WARNING,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield findings for a tokenizer eos or config.json eos that does not end turns."""
        setup = stop_setup(ctx)
        if setup is None or setup.token is None or setup.token_id is None:
            return
        yield from self._tokenizer(ctx, setup)
        yield from self._config(ctx, setup)

    def _tokenizer(self, ctx: Context, setup: StopSetup) -> Iterator[Finding]:
        target, base = ctx.target, ctx.base_or_none
        if setup.tokenizer is not target:
            return  # the adapter ships no tokenizer: it uses the base's, as the base does
        eos, token = target.special_tokens().get("eos_token"), setup.token
        if eos is None or token is None or eos == token:
            return
        # Without the base, the folder alone shows the mismatch (a warning, the unsafe fix).
        base_eos = base.special_tokens().get("eos_token") if base is not None else None
        drifted = base_eos is not None and base_eos != eos
        if not drifted and base is not None and _base_end_of_turn(base) == setup.token:
            return  # the base pairs this eos with this turn end by design
        safe = (
            drifted
            and base is not None
            and base_eos == setup.token
            and compatible(base, target) == "same"
        )
        if drifted:
            message = (
                f"tokenizer eos_token is {eos} but the base's is {base_eos} and assistant turns "
                f"end with {setup.describe()}; llama.cpp's converter writes {eos} as the eos"
            )
        else:
            message = (
                f"tokenizer eos_token is {eos} but assistant turns end with {setup.describe()}; "
                f"converters that read one eos (llama.cpp's) stop on {eos}"
            )
        edits = eos_token_edits(target, token)
        yield self.finding(
            message,
            path=edits[0].path if edits else TOKENIZER_CONFIG,
            severity=Severity.ERROR if drifted else Severity.WARNING,
            fix=Fix(
                f"{'Restore' if safe else 'Set'} eos_token to {token}",
                Applicability.SAFE if safe else Applicability.UNSAFE,
                tuple(edits),
            ),
            data={"eos_token": eos, "base_eos_token": base_eos, "end_of_turn": setup.token},
        )

    def _config(self, ctx: Context, setup: StopSetup) -> Iterator[Finding]:
        target, base = ctx.target, ctx.base_or_none
        if target.kind is not Kind.MERGED or base is None:
            return  # a drift from the base's config.json needs the base
        value = target.config.get("eos_token_id")
        base_value = base.config.get("eos_token_id")
        ids, base_ids = eos_ids(value), eos_ids(base_value)
        if setup.token_id in ids or setup.token_id not in base_ids or ids == base_ids:
            return
        generation = target.generation_config or {}
        covered = setup.token_id in eos_ids(generation.get("eos_token_id"))
        safe = compatible(base, target) == "same"
        edit = edit_json(target, "config.json", {"eos_token_id": base_value})
        yield self.finding(
            f"config.json eos_token_id is {describe_ids(setup.tokenizer, value)} but the base's "
            f"is {describe_ids(setup.tokenizer, base_value)}, which includes the end of turn "
            f"{setup.describe()}",
            path="config.json",
            severity=Severity.WARNING if covered else Severity.ERROR,
            fix=Fix(
                "Restore the base's eos_token_id in config.json",
                Applicability.SAFE if safe else Applicability.UNSAFE,
                () if edit is None else (edit,),
            ),
            data={
                "eos_token_id": list(ids),
                "base_eos_token_id": list(base_ids),
                "covered_by": GENERATION_CONFIG if covered else None,
            },
        )
