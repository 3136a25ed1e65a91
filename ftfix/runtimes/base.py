"""What a runtime model answers, and the facts about a folder every runtime model reads.

A runtime model is knowledge: which files and keys a consumer of the folder reads, in which
order. `Facts` gathers once, from the folder alone (and the base for adapters), what any of them
may need; each runtime turns it into an `Answer`: will it load, which template it renders,
which ids stop an assistant turn, is BOS doubled, and a verdict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from ..analysis.config import (
    CONFIG,
    architecture_drift,
    quantized_tensors,
    weight_keys,
)
from ..analysis.context import Context
from ..analysis.render import TemplateRenderError, render
from ..analysis.stops import GENERATION_CONFIG, eos_ids, stop_setup, token_vocabulary
from ..analysis.vocab import bos_policy
from ..io.checkpoint import (
    CHAT_TEMPLATE_FILE,
    PROCESSOR_TEMPLATE_FILE,
    TOKENIZER_CONFIG,
    Checkpoint,
    Kind,
)

__all__ = ["Answer", "Facts", "Runtime", "Verdict", "gather"]


class Verdict(str, Enum):
    """The one-word outcome of serving the folder with a runtime."""

    OK = "ok"
    WILL_NOT_LOAD = "will not load"
    WILL_NOT_STOP = "will not stop"
    DIFFERENT_PROMPT = "renders a different prompt"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    """One runtime's answer for one folder.

    Args:
        runtime (`str`): display name, e.g. `vLLM`.
        version (`str`): the runtime version the model was read from.
        loads (`bool`): whether the runtime loads the folder.
        template (`str`): where the template it renders comes from (or `none`).
        stop_ids (`tuple[int, ...]`): ids that end an assistant turn there.
        bos_doubled (`bool`, *optional*): BOS twice at the start of a chat prompt; `None` when
            the runtime's tokenisation of chat prompts is not modelled.
        verdict (`Verdict`): the worst outcome found.
        reasons (`tuple[str, ...]`): why the verdict is not `ok`, each naming the flag or file
            that fixes it.
        stop_tokens (`tuple[str, ...]`): the text of each stop id, where the tokenizer names it.
    """

    runtime: str
    version: str
    loads: bool
    template: str
    stop_ids: tuple[int, ...]
    bos_doubled: bool | None
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    stop_tokens: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the `runtimes` list of the report)."""
        return {
            "runtime": self.runtime,
            "version": self.version,
            "loads": self.loads,
            "template": self.template,
            "stop_ids": list(self.stop_ids),
            "stop_tokens": list(self.stop_tokens),
            "bos_doubled": self.bos_doubled,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Facts:
    """What the folder says, read once for every runtime model.

    Args:
        kind (`Kind`): merged, adapter or tokenizer-only.
        end_of_turn (`str`, *optional*): what the chat template prints after an answer.
        end_of_turn_id (`int`, *optional*): its id.
        jinja_template (`str`, *optional*): `chat_template.jinja` (or chat_template.json).
        key_template (`str`, *optional*): the default template of tokenizer_config.json's key.
        generation_eos (`tuple[int, ...]`, *optional*): `generation_config.json` eos ids; `None`
            when the file is absent.
        config_eos (`tuple[int, ...]`): `config.json` eos ids.
        tokenizer_eos (`str`, *optional*): tokenizer_config.json's `eos_token`.
        tokenizer_eos_id (`int`, *optional*): its id.
        vocabulary (`Mapping[str, int | None]`): added and special tokens with ids.
        bos_in_template (`bool`): a rendered prompt starts with `bos_token`.
        tokenizer_adds_bos (`bool`, *optional*): encoding text adds BOS.
        add_bos_flag (`bool`, *optional*): tokenizer_config.json's `add_bos_token`.
        tokenizer_class (`str`, *optional*): tokenizer_config.json's `tokenizer_class`.
        architectures (`tuple[str, ...]`): config.json's `architectures`.
        blockers (`tuple[str, ...]`): what stops any transformers-based loader, with its fix.
        adapter (`Mapping[str, Any]`, *optional*): adapter_config.json of an adapter.
        base_template (`str`, *optional*): the base's default template.
        base_tied (`bool`): the base ties its head to the embedding.
        drifted_architecture (`str`, *optional*): `architectures` when it is only a drifted
            name of the base's class (FTX403), else `None`.
        model_known (`bool`): a config.json or generation_config.json of the model is at hand
            (an adapter checked without its base has neither: its stop ids are unknown).
    """

    kind: Kind
    end_of_turn: str | None
    end_of_turn_id: int | None
    jinja_template: str | None
    key_template: str | None
    generation_eos: tuple[int, ...] | None
    config_eos: tuple[int, ...]
    tokenizer_eos: str | None
    tokenizer_eos_id: int | None
    vocabulary: Mapping[str, int | None]
    bos_in_template: bool
    tokenizer_adds_bos: bool | None
    add_bos_flag: bool | None
    tokenizer_class: str | None
    architectures: tuple[str, ...]
    blockers: tuple[str, ...] = ()
    adapter: Mapping[str, Any] | None = None
    base_template: str | None = None
    base_tied: bool = False
    drifted_architecture: str | None = None
    model_known: bool = True

    @property
    def transformers_template(self) -> str | None:
        """The template transformers renders: the `.jinja` file wins over the JSON key."""
        return self.jinja_template if self.jinja_template is not None else self.key_template

    def stops(self, ids: tuple[int, ...]) -> bool | None:
        """Whether `ids` include the end of turn; `None` when the turn end or ids are unknown."""
        if self.end_of_turn_id is None or not (ids or self.model_known):
            return None
        return self.end_of_turn_id in ids


class Runtime(ABC):
    """A model of one runtime's loading rules. One module per runtime, one subclass each."""

    name: ClassVar[str]
    version: ClassVar[str]
    sources: ClassVar[tuple[str, ...]]

    @abstractmethod
    def answer(self, facts: Facts) -> Answer:
        """What this runtime does with the folder described by `facts`."""

    def build(
        self,
        facts: Facts,
        *,
        loads: bool,
        template: str,
        stop_ids: tuple[int, ...],
        bos_doubled: bool | None,
        reasons: list[tuple[Verdict, str]],
    ) -> Answer:
        """An Answer whose verdict is the worst of `reasons` (ok when there are none)."""
        order = [Verdict.WILL_NOT_LOAD, Verdict.WILL_NOT_STOP, Verdict.DIFFERENT_PROMPT]
        verdict = next((v for v in order if any(r[0] is v for r in reasons)), Verdict.OK)
        names = {i: t for t, i in facts.vocabulary.items() if i is not None}
        return Answer(
            self.name,
            self.version,
            loads,
            template,
            tuple(stop_ids),
            bos_doubled,
            verdict,
            tuple(text for _, text in reasons),
            tuple(names.get(i, "?") for i in stop_ids),
        )


def _default_key_template(ckpt: Checkpoint) -> str | None:
    for loc in ckpt.template_locations():
        if loc.path == TOKENIZER_CONFIG and loc.name == "default":
            return loc.source
    return None


def _jinja_template(ckpt: Checkpoint) -> str | None:
    for loc in ckpt.template_locations():
        if loc.path in (CHAT_TEMPLATE_FILE, PROCESSOR_TEMPLATE_FILE) and loc.name == "default":
            return loc.source
    return None


def _starts_with_bos(template: str | None, specials: Mapping[str, str]) -> bool:
    bos = specials.get("bos_token")
    if template is None or not bos:
        return False
    try:
        text = render(
            template,
            [{"role": "user", "content": "hello"}],
            special_tokens=specials,
            add_generation_prompt=True,
        )
    except TemplateRenderError:
        return False
    return text.startswith(bos)


def _blockers(ctx: Context) -> list[str]:
    """What makes a transformers-based loader fail, each with the fix."""
    target = ctx.target
    found: list[str] = []
    if target.kind is Kind.MERGED:
        if "quantization_config" in target.config and not quantized_tensors(target):
            found.append("quantization_config without quantised tensors (ftfix repair: FTX401)")
        # Missing auto_map code (FTX407) breaks only trust_remote_code loads of model types the
        # runtime does not implement; which those are is not known without importing it.
        keys = weight_keys(target)
        if keys and all(k.startswith(("_orig_mod.", "module.")) for k in keys):
            found.append("weight keys carry a wrapper prefix (FTX409: re-save unwrapped)")
    return found


def gather(ctx: Context) -> Facts:
    """Read the facts every runtime model needs from `ctx` (the target and, for adapters, base)."""
    target = ctx.target
    has_tokenizer = any(target.exists(n) for n in (TOKENIZER_CONFIG, "tokenizer.json"))
    base = ctx.base_or_none
    tokenizer = target if has_tokenizer or base is None else base
    setup = stop_setup(ctx)
    specials = tokenizer.special_tokens()
    vocabulary = dict(token_vocabulary(tokenizer))
    eos = specials.get("eos_token")
    eos_id = vocabulary.get(eos) if eos else None
    if eos is not None and eos_id is None:
        eos_id = tokenizer.token_id(eos)
    model = target if target.kind is Kind.MERGED or base is None else base
    generation = model.generation_config
    jinja = _jinja_template(tokenizer)
    key = _default_key_template(tokenizer)
    if jinja is None and key is None and ctx.options.template is not None:
        key = ctx.options.template
    policy = bos_policy(tokenizer)
    flag = tokenizer.tokenizer_config.get("add_bos_token")
    adapter = target.json("adapter_config.json") if target.kind is Kind.ADAPTER else None
    architectures = model.config.get("architectures") or []
    base_config = (base.json(CONFIG) if base is not None else None) or {}
    return Facts(
        kind=target.kind,
        end_of_turn=None if setup is None else setup.token,
        end_of_turn_id=None if setup is None else setup.token_id,
        jinja_template=jinja,
        key_template=key,
        generation_eos=None if generation is None else eos_ids(generation.get("eos_token_id")),
        config_eos=eos_ids(model.config.get("eos_token_id")),
        tokenizer_eos=eos,
        tokenizer_eos_id=eos_id,
        vocabulary=vocabulary,
        bos_in_template=_starts_with_bos(jinja if jinja is not None else key, specials),
        tokenizer_adds_bos=policy.adds,
        add_bos_flag=flag if isinstance(flag, bool) else None,
        tokenizer_class=tokenizer.tokenizer_config.get("tokenizer_class"),
        architectures=tuple(a for a in architectures if isinstance(a, str)),
        blockers=tuple(_blockers(ctx)),
        adapter=adapter,
        base_template=base.chat_template() if base is not None else None,
        base_tied=base_config.get("tie_word_embeddings") is True,
        drifted_architecture=_drifted(ctx),
        model_known=model.json(CONFIG) is not None or generation is not None,
    )


def _drifted(ctx: Context) -> str | None:
    base = ctx.base_or_none
    drift = None if base is None else architecture_drift(ctx.target, base)
    if drift is None:
        return None
    return (
        f"architectures is {drift.found or 'missing'}, not the base's {drift.expected}: set it "
        "back in config.json (FTX403)"
    )


def union(*groups: tuple[int, ...] | None) -> tuple[int, ...]:
    """Ids of all groups, first occurrence order."""
    seen: list[int] = []
    for group in groups:
        for token_id in group or ():
            if token_id not in seen:
                seen.append(token_id)
    return tuple(seen)


def template_name(facts: Facts, source: str | None) -> str:
    """Where `source` is stored, for the table."""
    if source is None:
        return "none"
    if source == facts.jinja_template:
        return CHAT_TEMPLATE_FILE
    return f"{TOKENIZER_CONFIG}[chat_template]"


def stop_reason(facts: Facts, ids: tuple[int, ...], fix: str) -> list[tuple[Verdict, str]]:
    """`will not stop` when the end-of-turn id is not among `ids`."""
    if facts.stops(ids) is False:
        return [
            (
                Verdict.WILL_NOT_STOP,
                f"turns end with {facts.end_of_turn} ({facts.end_of_turn_id}), not among the stop "
                f"ids {list(ids)}: {fix}",
            )
        ]
    return []


GENERATION_FIX = f"add it to eos_token_id in {GENERATION_CONFIG} (ftfix repair: FTX201/FTX202)"
