"""Validate a generation_config.json statically, the way transformers' strict validation does.

transformers' `GenerationConfig.validate(strict=True)` (run by `save_pretrained` on any config
that was changed after loading, and on every save in transformers 4.5x) refuses a config whose
flags contradict each other: sampling-only values (`temperature`, `top_p`, ...) while `do_sample`
is not true, beam-only values with one beam, output flags without `return_dict_in_generate`,
cache settings with `use_cache: false`. Some values it refuses even when loading
(`max_new_tokens <= 0`, an unknown `early_stopping`). A config refused there breaks every later
merge, export or push, so ftfix never writes one, and reports an existing one (FTX208).

This module mirrors those checks on the parsed JSON, without importing transformers. Each issue
says whether dropping the key changes nothing at generation time (a sampling value under greedy
decoding is never read), which makes dropping it a safe fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GenerationConfigIssue",
    "new_issues",
    "validate_generation_config",
    "without_ineffective_keys",
]

# Sampling-only flags and the value at which transformers does not complain about them under
# greedy decoding (`None`: any value is an issue).
_SAMPLING_ONLY: tuple[tuple[str, float | None], ...] = (
    ("temperature", 1.0),
    ("top_p", 1.0),
    ("min_p", None),
    ("top_h", None),
    ("typical_p", 1.0),
    ("top_k", 50),
    ("epsilon_cutoff", 0.0),
    ("eta_cutoff", 0.0),
)
_BEAM_ONLY = ("early_stopping", "length_penalty")
_OUTPUT_FLAGS = ("output_attentions", "output_hidden_states", "output_scores", "output_logits")
_CACHE_ARGS = ("cache_implementation", "cache_config")
# Arguments of generate() that a GenerationConfig refuses to hold.
_GENERATE_ARGUMENTS = (
    "logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "synced_gpus",
    "assistant_model", "streamer", "negative_prompt_ids", "negative_prompt_attention_mask",
)  # fmt: skip


@dataclass(frozen=True)
class GenerationConfigIssue:
    """One reason transformers refuses a generation config.

    Args:
        key (`str`): the offending key.
        message (`str`): what is wrong, lower case.
        ineffective (`bool`): the key has no effect on generation as configured, so dropping it
            changes nothing but makes the config valid.
    """

    key: str
    message: str
    ineffective: bool


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _sampling_issues(config: Mapping[str, Any]) -> list[GenerationConfigIssue]:
    if config.get("do_sample") is True:
        return []
    found = []
    for key, neutral in _SAMPLING_ONLY:
        value = config.get(key)
        if value is None or (neutral is not None and _number(value) == neutral):
            continue
        found.append(
            GenerationConfigIssue(
                key,
                f"{key}={value!r} is only used when sampling, but do_sample is "
                f"{config.get('do_sample')!r}",
                ineffective=True,
            )
        )
    return found


def _beam_issues(config: Mapping[str, Any]) -> list[GenerationConfigIssue]:
    beams = config.get("num_beams")
    if beams is not None and beams != 1:
        return []
    found = []
    early, penalty = config.get("early_stopping"), config.get("length_penalty")
    if early is not None and early is not False:
        found.append(
            GenerationConfigIssue(
                "early_stopping", f"early_stopping={early!r} is only used with num_beams > 1", True
            )
        )
    if penalty is not None and _number(penalty) != 1.0:
        found.append(
            GenerationConfigIssue(
                "length_penalty",
                f"length_penalty={penalty!r} is only used with num_beams > 1",
                True,
            )
        )
    return found


def _hard_issues(config: Mapping[str, Any]) -> list[GenerationConfigIssue]:
    # Refused by transformers even without strict validation: loading the file fails.
    found = []
    early = config.get("early_stopping")
    if early not in (None, True, False, "never"):
        found.append(
            GenerationConfigIssue(
                "early_stopping",
                f"early_stopping must be a boolean or 'never', not {early!r}",
                False,
            )
        )
    max_new = _number(config.get("max_new_tokens"))
    if max_new is not None and max_new <= 0:
        found.append(
            GenerationConfigIssue(
                "max_new_tokens", f"max_new_tokens must be greater than 0, not {max_new:g}", False
            )
        )
    returned = _number(config.get("num_return_sequences"))
    beams = config.get("num_beams")
    if returned is not None and returned > 1:
        if (beams is None or beams == 1) and not config.get("do_sample"):
            found.append(
                GenerationConfigIssue(
                    "num_return_sequences",
                    f"num_return_sequences={returned:g} needs sampling or beam search",
                    False,
                )
            )
        elif isinstance(beams, int) and returned > beams:
            found.append(
                GenerationConfigIssue(
                    "num_return_sequences",
                    f"num_return_sequences={returned:g} exceeds num_beams={beams}",
                    False,
                )
            )
    suppressed = config.get("suppress_tokens")
    if isinstance(suppressed, list):
        for key in ("forced_bos_token_id", "forced_eos_token_id"):
            forced = config.get(key)
            ids = {forced} if isinstance(forced, int) else set(forced or [])
            if ids and ids <= set(suppressed):
                found.append(
                    GenerationConfigIssue(key, f"every {key} is also in suppress_tokens", False)
                )
    found.extend(
        GenerationConfigIssue(key, f"{key} is an argument of generate(), not a config key", True)
        for key in _GENERATE_ARGUMENTS
        if key in config
    )
    return found


def validate_generation_config(config: Mapping[str, Any]) -> list[GenerationConfigIssue]:
    """The reasons transformers' strict validation refuses `config`; empty when it passes.

    Args:
        config (`Mapping[str, Any]`): the parsed `generation_config.json`.

    Example:
        >>> [i.key for i in validate_generation_config({"do_sample": False, "top_p": 0.9})]
        ['top_p']
    """
    found = _hard_issues(config) + _sampling_issues(config) + _beam_issues(config)
    pad = _number(config.get("pad_token_id"))
    if pad is not None and pad < 0:
        found.append(
            GenerationConfigIssue("pad_token_id", f"pad_token_id is negative ({pad:g})", False)
        )
    if config.get("use_cache") is False:
        found.extend(
            GenerationConfigIssue(key, f"{key} has no effect with use_cache=false", True)
            for key in _CACHE_ARGS
            if config.get(key) is not None
        )
    if config.get("return_dict_in_generate") is not True:
        found.extend(
            GenerationConfigIssue(
                key, f"{key}=true is ignored without return_dict_in_generate=true", True
            )
            for key in _OUTPUT_FLAGS
            if config.get(key) is True
        )
    return found


def without_ineffective_keys(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """`config` without the keys that make it invalid and have no effect.

    Returns `None` when dropping them is not enough to make it valid.
    """
    drop = {i.key for i in validate_generation_config(config) if i.ineffective}
    cleaned = {k: v for k, v in config.items() if k not in drop}
    return None if validate_generation_config(cleaned) else cleaned


def new_issues(
    config: Mapping[str, Any], known: Iterable[Mapping[str, Any] | None]
) -> list[GenerationConfigIssue]:
    """The issues of `config` that none of the `known` configs already has with the same value.

    A fine-tune that keeps its base's quirk byte for byte (a published config transformers only
    warns about while it is unchanged) is not the fine-tune's problem, and a file ftfix derives
    from the base may carry it.
    """
    inherited = {
        (issue.key, repr(other.get(issue.key)))
        for other in known
        if other is not None
        for issue in validate_generation_config(other)
    }
    return [
        issue
        for issue in validate_generation_config(config)
        if (issue.key, repr(config.get(issue.key))) not in inherited
    ]
