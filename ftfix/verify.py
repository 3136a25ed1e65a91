"""`ftfix verify`: load the model, generate, and measure whether answers come and stop.

This is the one place ftfix loads a model (transformers, and peft for adapters); torch is
imported here and nowhere on the check/repair path.
"""

from __future__ import annotations

import html
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .analysis.turns import assistant_frame, leading_markers
from .errors import InvalidCheckpointError
from .io.checkpoint import Checkpoint, Kind

__all__ = ["DEFAULT_PROBES", "ProbeOutcome", "VerifyReport", "load_prompts", "verify"]

logger = logging.getLogger(__name__)

Message = Mapping[str, str]

# Short, answerable prompts; the assistant turn, when present, is the reference answer used for
# the teacher-forced end-of-turn probability.
DEFAULT_PROBES: tuple[tuple[Message, ...], ...] = (
    ({"role": "user", "content": "Hello! How are you?"},
     {"role": "assistant", "content": "I am fine, thank you."}),
    ({"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}),
    ({"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}),
    ({"role": "user", "content": "Say yes or no."}, {"role": "assistant", "content": "Yes."}),
)  # fmt: skip


@dataclass
class ProbeOutcome:
    """What one probe did.

    Args:
        prompt (`str`): the rendered prompt (with the generation prompt).
        answer (`str`): decoded new tokens (special tokens kept, so markers are visible).
        new_tokens (`int`): number of generated tokens.
        stopped (`bool`): generation ended on a stop token before `max_new_tokens`.
        stopped_on_end_of_turn (`bool`): ... and that token is the template's end of turn.
        empty (`bool`): no text before the stop.
        hit_max_new_tokens (`bool`): generation ran to the limit.
        looping (`bool`): a repeated n-gram or a repeated end-of-turn marker.
        end_of_turn_probability (`float`, *optional*): teacher-forced probability of the end-of-turn
            token right after the reference answer.
    """

    prompt: str
    answer: str
    new_tokens: int
    stopped: bool
    stopped_on_end_of_turn: bool
    empty: bool
    hit_max_new_tokens: bool
    looping: bool
    end_of_turn_probability: float | None = None


@dataclass
class VerifyReport:
    """Per-probe outcomes and rates for one checkpoint (and optionally its repaired copy).

    Args:
        finetuned (`str`): the checkpoint measured.
        label (`str`): "as is" or "repaired".
        end_of_turn (`list[str]`): end-of-turn tokens derived from the template.
        outcomes (`list[ProbeOutcome]`): one per probe.
        min_stop_rate (`float`): threshold for `exit_code`.
        repaired (`VerifyReport`, *optional*): the same measurements on a repaired copy
            (`compare_before=True`).
    """

    finetuned: str
    label: str
    end_of_turn: list[str]
    outcomes: list[ProbeOutcome] = field(default_factory=list)
    min_stop_rate: float = 0.9
    repaired: VerifyReport | None = None

    def _rate(self, attr: str) -> float:
        if not self.outcomes:
            return 0.0
        return sum(bool(getattr(o, attr)) for o in self.outcomes) / len(self.outcomes)

    @property
    def stop_rate(self) -> float:
        """Share of probes that stopped on a stop token before the limit (any stop token)."""
        return self._rate("stopped")

    @property
    def verdict_rate(self) -> float:
        """What the verdict judges: stops at the end of the first assistant turn.

        The share of probes that stopped on the template's end-of-turn token before writing
        further turns. A template without an end-of-turn token (raw text) falls back to `stop_rate`.
        """
        return self._rate("stopped_on_end_of_turn") if self.end_of_turn else self.stop_rate

    @property
    def ok(self) -> bool:
        """The folder as it is reaches `min_stop_rate`."""
        return self.verdict_rate >= self.min_stop_rate

    @property
    def metrics(self) -> dict[str, float | None]:
        """Overall rates and the mean teacher-forced end-of-turn probability."""
        probs = [
            o.end_of_turn_probability
            for o in self.outcomes
            if o.end_of_turn_probability is not None
        ]
        return {
            "stop_rate": self.stop_rate,
            "end_of_turn_stop_rate": self._rate("stopped_on_end_of_turn"),
            "empty_rate": self._rate("empty"),
            "max_tokens_rate": self._rate("hit_max_new_tokens"),
            "loop_rate": self._rate("looping"),
            "mean_end_of_turn_probability": sum(probs) / len(probs) if probs else None,
        }

    @property
    def exit_code(self) -> int:
        """1 when the folder as it is stops below the threshold.

        A repaired copy measured with `compare_before` is shown, never judged in its place.
        """
        return 0 if self.ok else 1

    def verdict(self) -> str:
        """`Verdict: ok.` or why not, for the folder as it is (and what a repair would do)."""
        what = "end-of-turn stop rate" if self.end_of_turn else "stop rate"
        if self.ok:
            text = f"Verdict: ok ({what} {self.verdict_rate:.2f})."
        else:
            text = (
                f"Verdict: {what} {self.verdict_rate:.2f} is below {self.min_stop_rate:.2f}: the "
                "model does not end its answers."
            )
        if self.repaired is not None:
            after = "would pass" if self.repaired.ok else "would still fail"
            text += (
                f" The repaired copy {after} ({self.repaired.verdict_rate:.2f}); run ftfix repair."
            )
        return text

    def render_text(self) -> str:
        """A table: one column per measured variant."""
        variants = [self] + ([self.repaired] if self.repaired else [])
        names = [v.label for v in variants]
        lines = [
            f"ftfix verify {self.finetuned} (end of turn: {', '.join(self.end_of_turn) or '?'})"
        ]
        lines.append(f"{'metric':<30}" + "".join(f"{n:>12}" for n in names))
        for key in self.metrics:
            cells = []
            for v in variants:
                value = v.metrics[key]
                cells.append(f"{'-' if value is None else f'{value:.2f}':>12}")
            lines.append(f"{key:<30}" + "".join(cells))
        for v in variants:
            for i, o in enumerate(v.outcomes):
                marks = {"stopped": o.stopped, "empty": o.empty, "max-tokens": o.hit_max_new_tokens,
                         "looping": o.looping}  # fmt: skip
                flags = [name for name, on in marks.items() if on]
                what = f"{o.new_tokens} tokens {','.join(flags)}"
                lines.append(f"  [{v.label}] probe {i}: {what}: {o.answer[:60]!r}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable result."""
        return {
            "finetuned": self.finetuned,
            "label": self.label,
            "end_of_turn": self.end_of_turn,
            "metrics": self.metrics,
            "outcomes": [asdict(o) for o in self.outcomes],
            "repaired": self.repaired.to_dict() if self.repaired else None,
            "verdict_rate": self.verdict_rate,
            "verdict": self.verdict(),
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        """`to_dict()` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def _repr_html_(self) -> str:
        variants = [self] + ([self.repaired] if self.repaired else [])
        head = "".join(f"<th>{html.escape(v.label)}</th>" for v in variants)
        rows = "".join(
            f"<tr><td>{html.escape(key)}</td>"
            + "".join(
                f"<td>{'-' if v.metrics[key] is None else f'{v.metrics[key]:.2f}'}</td>"
                for v in variants
            )
            + "</tr>"
            for key in self.metrics
        )
        samples = "".join(
            f"<tr><td>{html.escape(v.label)} {i}</td><td>{o.new_tokens}</td>"
            f"<td>{'yes' if o.stopped_on_end_of_turn else 'no'}</td>"
            f"<td><code>{html.escape(o.answer[:120])}</code></td></tr>"
            for v in variants
            for i, o in enumerate(v.outcomes)
        )
        eot = html.escape(", ".join(self.end_of_turn) or "?")
        return (
            f"<div><p><b>ftfix verify</b> {html.escape(self.finetuned)} (end of turn: "
            f"<code>{eot}</code>)</p>"
            f"<p><b>{html.escape(self.verdict())}</b></p>"
            f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
            "<table><thead><tr><th>probe</th><th>tokens</th><th>ended turn</th><th>answer</th>"
            f"</tr></thead><tbody>{samples}</tbody></table></div>"
        )


def load_prompts(path: str | os.PathLike[str]) -> list[list[dict[str, str]]]:
    """Read a JSONL file: each line a list of messages or `{"messages": [...]}`.

    Raises:
        `InvalidCheckpointError`: a line is not JSON or not a list of role/content messages.
    """
    probes = []
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidCheckpointError(path, f"line {number}: invalid JSON ({exc.msg})") from exc
        messages = value.get("messages") if isinstance(value, dict) else value
        if not (
            isinstance(messages, list) and messages
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
        ):  # fmt: skip
            raise InvalidCheckpointError(
                path,
                f"line {number}: expected a list of {{role, content}} messages",
                hint='write one conversation per line: [{"role": "user", "content": "..."}]',
            )
        probes.append(messages)
    return probes


def _looping(ids: Sequence[int], eot_ids: set[int], n: int = 4, repeats: int = 3) -> bool:
    if sum(1 for t in ids if t in eot_ids) > 1:
        return True
    counts: dict[tuple[int, ...], int] = {}
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= repeats:
            return True
    return False


def _measure(
    base: str | os.PathLike[str],
    folder: Path,
    probes: Sequence[Sequence[Message]],
    *,
    label: str,
    max_new_tokens: int,
    device: str,
    trust_remote_code: bool,
    min_stop_rate: float,
) -> VerifyReport:
    import torch

    ckpt = Checkpoint.open(folder)
    base_ckpt = Checkpoint.open(base, role="base")
    model, tokenizer = _load(ckpt, base_ckpt, device=device, trust_remote_code=trust_remote_code)

    template = ckpt.chat_template() or base_ckpt.chat_template() or ""
    frame = assistant_frame(template, ckpt.special_tokens()) if template else None
    vocabulary = [str(t) for t in tokenizer.all_special_tokens] + list(tokenizer.get_added_vocab())
    end_of_turn = leading_markers(frame.trailer, vocabulary)[:1] if frame else []
    eot_ids = {tokenizer.convert_tokens_to_ids(t) for t in end_of_turn}
    eos = model.generation_config.eos_token_id
    stop_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    report = VerifyReport(str(folder), label, end_of_turn, min_stop_rate=min_stop_rate)
    for messages in probes:
        has_reference = messages[-1]["role"] == "assistant"
        prompt_messages = list(messages[:-1] if has_reference else messages)
        prompt = tokenizer.apply_chat_template(
            prompt_messages, add_generation_prompt=True, tokenize=False
        )
        input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")[
            "input_ids"
        ].to(device)
        pad_id = tokenizer.pad_token_id
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids, max_new_tokens=max_new_tokens, do_sample=False,
                attention_mask=torch.ones_like(input_ids),
                pad_token_id=pad_id if pad_id is not None else min(stop_ids, default=0),
            )  # fmt: skip
        new = out[0, input_ids.shape[1] :].tolist()
        stopped = bool(new) and new[-1] in stop_ids and len(new) <= max_new_tokens
        body = new[:-1] if stopped else new
        outcome = ProbeOutcome(
            prompt=prompt,
            answer=tokenizer.decode(new, skip_special_tokens=False),
            new_tokens=len(new),
            stopped=stopped,
            # The first assistant turn ended: the first end-of-turn token is where it stopped.
            stopped_on_end_of_turn=stopped
            and new[-1] in eot_ids
            and not any(t in eot_ids for t in new[:-1]),
            empty=not tokenizer.decode(body, skip_special_tokens=True).strip(),
            hit_max_new_tokens=len(new) >= max_new_tokens and not stopped,
            looping=_looping(new, eot_ids),
        )
        if has_reference and eot_ids:
            outcome.end_of_turn_probability = _eot_probability(
                model, tokenizer, prompt, messages[-1]["content"], sorted(eot_ids)[0], device
            )
        report.outcomes.append(outcome)
    return report


def _load(
    ckpt: Checkpoint, base: Checkpoint, *, device: str, trust_remote_code: bool
) -> tuple[Any, Any]:
    """The model (base + adapter through peft for an adapter) and its tokenizer, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    has_tokenizer = ckpt.exists("tokenizer_config.json") or ckpt.exists("tokenizer.json")
    source = ckpt.root if has_tokenizer else base.root
    tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    model: Any
    if ckpt.kind is Kind.ADAPTER:
        from peft import PeftModel

        loaded: Any = AutoModelForCausalLM.from_pretrained(
            str(base.root), trust_remote_code=trust_remote_code, output_loading_info=True
        )
        model, info = loaded
        _refuse_incomplete(base, info)
        rows = _adapter_vocabulary(ckpt, len(tokenizer))
        if rows is not None and rows != model.get_input_embeddings().weight.shape[0]:
            # Training added tokens: peft saved the resized embedding and head, and loads them
            # into a base resized the same way first (as the training script did).
            model.resize_token_embeddings(rows)
        model = PeftModel.from_pretrained(model, str(ckpt.root))
        if ckpt.exists("generation_config.json"):
            model.generation_config = GenerationConfig.from_pretrained(str(ckpt.root))
    else:
        loaded = AutoModelForCausalLM.from_pretrained(
            str(ckpt.root), trust_remote_code=trust_remote_code, output_loading_info=True
        )
        model, info = loaded
        _refuse_incomplete(ckpt, info)
    model.to(device).eval()
    return model, tokenizer


_RECORDED_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt", ".tiktoken")


def _loaded_files(ckpt: Checkpoint) -> list[Path]:
    # What from_pretrained reads: weights, configs, tokenizer and template files at the top.
    return sorted(
        p
        for p in ckpt.root.iterdir()
        if p.is_file() and p.suffix in _RECORDED_SUFFIXES and not p.name.startswith(".")
    )


def _record(report: VerifyReport, target: Checkpoint, base: Checkpoint) -> None:
    """Keep what verify measured in `.ftfix/verified.json`, for `check` to trust (FTX206)."""
    from datetime import datetime, timezone

    from .analysis.verified import RECORD, fingerprint
    from .write import write_state_file

    if not report.end_of_turn:
        return
    files = {p.name: fingerprint(p) for p in _loaded_files(target)}
    if target.kind is Kind.ADAPTER:
        files.update({str(p.resolve()): fingerprint(p) for p in _loaded_files(base)})
    data = {
        "end_of_turn": report.end_of_turn[0],
        "end_of_turn_stop_rate": report.verdict_rate,
        "stop_rate": report.stop_rate,
        "probes": len(report.outcomes),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    try:
        write_state_file(
            target.root, Path(RECORD).name, (json.dumps(data, indent=2) + "\n").encode()
        )
    except (OSError, ValueError) as exc:  # a read-only folder: the result is still reported
        logger.warning("could not record the verify result in %s: %s", target.root, exc)


def _refuse_incomplete(ckpt: Checkpoint, info: Mapping[str, Any]) -> None:
    """Stop when transformers had to initialise weights the folder lacks.

    Numbers measured on randomly initialised weights would mean nothing.
    """
    missing = sorted(str(k) for k in info.get("missing_keys") or ())
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise InvalidCheckpointError(
            ckpt.root,
            f"weights incomplete: transformers initialised {len(missing)} missing tensors "
            f"({shown}), so generation would measure random weights",
            hint="point verify at the complete model (all shards downloaded, not LFS pointers)",
        )


def _adapter_vocabulary(ckpt: Checkpoint, tokenizer_length: int) -> int | None:
    """The vocabulary size the adapter was trained with, else `None` (the base's applies).

    It is the row count of the embedding or head peft saved with the adapter.
    """
    for file in ckpt.weight_files().values():
        for name in file.tensors:
            if name.endswith(("embed_tokens.weight", "lm_head.weight")) and "lora_" not in name:
                shape = file.info(name).shape
                if len(shape) == 2:
                    return int(shape[0])
    return None


def _eot_probability(
    model: Any, tokenizer: Any, prompt: str, answer: str, eot_id: int, device: str
) -> float:
    import torch

    ids = tokenizer(prompt + answer, add_special_tokens=False, return_tensors="pt")["input_ids"].to(
        device
    )
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    return float(torch.softmax(logits.float(), dim=-1)[eot_id])


def verify(
    base: str | os.PathLike[str],
    finetuned: str | os.PathLike[str],
    *,
    prompts: Sequence[Sequence[Message]] | str | os.PathLike[str] | None = None,
    max_new_tokens: int = 64,
    device: str = "cpu",
    compare_before: bool = False,
    min_stop_rate: float = 0.9,
    unsafe_fixes: bool = False,
    trust_remote_code: bool = False,
    record: bool = True,
) -> VerifyReport:
    """Generate greedily from the fine-tune and measure whether answers appear and stop.

    Args:
        base (`str` or `os.PathLike`): the base model (needed for adapters and repairs).
        finetuned (`str` or `os.PathLike`): merged model or PEFT adapter.
        prompts (*optional*): conversations (lists of messages; a final assistant message is the
            reference answer), or a JSONL path. Defaults to `DEFAULT_PROBES`.
        max_new_tokens (`int`, *optional*, defaults to 64): generation limit per probe.
        device (`str`, *optional*, defaults to `"cpu"`): torch device.
        compare_before (`bool`, *optional*): also measure a repaired temporary copy (the user's
            folder is not written).
        min_stop_rate (`float`, *optional*, defaults to 0.9): `exit_code` is 1 below it.
        unsafe_fixes (`bool`, *optional*): apply unsafe fixes to the temporary copy too.
        trust_remote_code (`bool`, *optional*): passed to transformers; off unless you ask.
        record (`bool`, *optional*, defaults to `True`): keep the result in
            `FINETUNED/.ftfix/verified.json` with fingerprints of the files loaded; while they
            are unchanged, `check` reports an end-of-turn row that looks untrained as verified
            (FTX206, info) when the measured end-of-turn stop rate proves the model stops.

    Returns:
        `VerifyReport`.

    Raises:
        `InvalidCheckpointError`: transformers reports missing weights (the numbers would
            measure random weights), or the prompts file is malformed.
    """
    if prompts is None:
        probes: Sequence[Sequence[Message]] = DEFAULT_PROBES
    elif isinstance(prompts, (str, os.PathLike)):
        probes = load_prompts(prompts)
    else:
        probes = prompts
    kwargs = {"max_new_tokens": max_new_tokens, "device": device,
              "trust_remote_code": trust_remote_code, "min_stop_rate": min_stop_rate}  # fmt: skip
    target = Checkpoint.open(finetuned)
    report = _measure(base, target.root, probes, label="as is", **kwargs)  # type: ignore[arg-type]
    if record:
        _record(report, target, Checkpoint.open(base, role="base"))
    if compare_before:
        from .api import repair

        scratch = Path(tempfile.mkdtemp(prefix="ftfix-verify-"))
        try:
            copy = scratch / "repaired"
            repair(base, target.root, output=copy, unsafe_fixes=unsafe_fixes)
            report.repaired = _measure(base, copy, probes, label="repaired", **kwargs)  # type: ignore[arg-type]
            report.repaired.finetuned = f"{target.root} (repaired copy)"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return report
