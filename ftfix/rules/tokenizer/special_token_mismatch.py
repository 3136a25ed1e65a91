"""FTX022 special-token-mismatch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...analysis.context import Context
from ...analysis.edits import edit_json
from ...analysis.render import TemplateRenderError, render
from ...analysis.turns import assistant_frame, leading_markers
from ...analysis.vocab import VocabComparison, Vocabulary, compare, token_text, vocabulary
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG, Checkpoint
from ...registry import register
from ..base import Fixer
from ..templates.missing_chat_template import has_tokenizer_files

ROLES = ("bos_token", "eos_token", "pad_token", "unk_token")
# Ids that config.json / generation_config.json declare for a tokenizer role. eos ids are the
# stop-token rules' (FTX2xx): they judge them against the template's end of turn.
NUMERIC = {"bos_token": "bos_token_id", "pad_token": "pad_token_id"}
NUMERIC_FILES = ("config.json", "generation_config.json")
# A token changed relative to the base: bos and unk shape every prompt; pad only batches.
DRIFT_SEVERITY = {
    "bos_token": Severity.WARNING,
    "unk_token": Severity.WARNING,
    "pad_token": Severity.INFO,
}
_SENTINEL = "<ftfix-sentinel-token>"
_NO_FIX = object()
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class _Part:
    """One disagreement, reported in the finding of the file that holds the value to change."""

    file: str
    key: str
    text: str
    severity: Severity
    new: Any = _NO_FIX
    safe: bool = False


def _say(token: str | None, vocab: Vocabulary) -> str:
    if token is None:
        return "null"
    token_id = vocab.id_of(token)
    if token_id is not None:
        return f"{token!r} ({token_id})"
    return f"{token!r} (not in the vocabulary)" if vocab.complete else repr(token)


def _say_id(token_id: int, vocab: Vocabulary) -> str:
    token = vocab.by_id.get(token_id)
    return f"{token_id} ({token!r})" if token is not None else str(token_id)


def _loaded_from(ckpt: Checkpoint) -> str:
    """The file transformers 5 takes named special tokens from."""
    overrides = "added_tokens_decoder" not in ckpt.tokenizer_config
    return SPECIAL_TOKENS_MAP if overrides and ckpt.exists(SPECIAL_TOKENS_MAP) else TOKENIZER_CONFIG


def _with_sentinel(tokens: Mapping[str, str], role: str) -> dict[str, str]:
    # Rendering with the role's variable replaced shows what the template writes literally.
    return {**tokens, role: _SENTINEL}


def template_begins_with(ckpt: Checkpoint, token: str) -> bool:
    """The fine-tune's own template literally starts every conversation with `token`."""
    source = ckpt.chat_template()
    if source is None:
        return False
    tokens = _with_sentinel(ckpt.special_tokens(), "bos_token")
    try:
        text = render(source, [{"role": "user", "content": "hello"}], special_tokens=tokens)
    except TemplateRenderError:
        return False
    return text.startswith(token)


def template_ends_turns_with(ckpt: Checkpoint, token: str) -> bool:
    """The fine-tune's own template literally ends an assistant turn with `token`."""
    source = ckpt.chat_template()
    if source is None:
        return False
    frame = assistant_frame(source, _with_sentinel(ckpt.special_tokens(), "eos_token"))
    if frame is None:
        return False
    markers = leading_markers(frame.trailer, set(vocabulary(ckpt).added) | {token})
    return bool(markers) and markers[0] == token


def _restore_is_safe(ctx: Context, role: str, value: str | None, vocab: VocabComparison) -> bool:
    """Whether restoring the base's `value` for `role` is safe, as DESIGN.md defines it.

    Safe when the vocabulary is the base's and the fine-tune's template literally begins (bos)
    or ends turns (eos) with the restored token; otherwise unsafe.
    """
    if value is None or not vocab.copy_allowed:
        return False
    if vocabulary(ctx.target).id_of(value) != vocabulary(ctx.base).id_of(value):
        return False
    if role == "bos_token":
        return template_begins_with(ctx.target, value)
    if role == "eos_token":
        return template_ends_turns_with(ctx.target, value)
    return False


@register
class SpecialTokenMismatch(Fixer):
    """Special tokens disagree between the fine-tune's files, or changed relative to the base.

    ## What it checks
    `bos_token`, `eos_token`, `pad_token` and `unk_token` as `tokenizer_config.json` and
    `special_tokens_map.json` declare them, resolved to ids through the fine-tune's vocabulary
    (`tokenizer.json` added tokens and model vocabulary), and `bos_token_id` / `pad_token_id` in
    `config.json` and `generation_config.json`. It reports: the two tokenizer files naming
    different tokens (saying which one transformers 5 loads: `special_tokens_map.json` only
    overrides a `tokenizer_config.json` without `added_tokens_decoder`); a bos/pad/unk token
    that is not in the vocabulary; a bos/pad/unk token changed relative to the base; and config
    ids that are not the tokenizer's. Declared `additional_special_tokens` must be in the
    vocabulary. The eos token's value and the eos ids of `config.json` /
    `generation_config.json` are judged by the stop-token rules (FTX2xx) against the template's
    end of turn; here only eos disagreeing between tokenizer files is reported. Disagreements
    the base has too are info.

    ## Why is this bad?
    Each consumer reads a different file: transformers reads tokenizer_config.json (or the map,
    in old folders), `generate()` reads generation_config.json, llama.cpp's converter reads
    tokenizer_config.json and config.json. When they disagree the same checkpoint starts,
    pads or stops differently depending on who loads it. A special token missing from the
    vocabulary is added by transformers as a brand-new id with no trained embedding row (or no
    row at all), and a drifted bos changes the first token of every prompt.

    ## Example
    A transformers 4 fine-tune set `bos_token` to `<|im_start|>` in `special_tokens_map.json`
    only: transformers 5 ignores the map there (tokenizer_config.json has
    `added_tokens_decoder`) and loads `<|begin_of_text|>`, while tools that read the map get
    `<|im_start|>`. Copied into a transformers 5 folder, the same map would win.

    ## Fix
    Make the disagreeing files say the base's value when it is one of them, otherwise the value
    transformers loads; set config ids to the tokenizer's ids. One finding (and one edit) per
    file that has to change.

    ## Fix safety
    Depends on the case. Safe when it changes nothing transformers loads (a stale file is
    aligned with the loaded one), when it puts back in config.json / generation_config.json the
    base's id that equals the tokenizer's, or when it restores the base's bos/eos with the
    base's vocabulary and the fine-tune's template literally begins (bos) or ends turns (eos)
    with it. Otherwise unsafe: a pad, unk or bos the fine-tune changed may be deliberate.
    """

    code = "FTX022"
    name = "special-token-mismatch"
    severity = Severity.WARNING
    other_severities = (Severity.ERROR, Severity.INFO)

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per file holding a special token that disagrees."""
        if not has_tokenizer_files(ctx):
            return
        parts: list[_Part] = []
        settled: dict[str, tuple[str | None, bool]] = {}
        for role in ROLES:
            found, token, safe = self._role(ctx, role)
            parts.extend(found)
            settled[role] = (token, safe)
        parts.extend(self._numeric_parts(ctx, settled))
        parts.extend(self._extra_parts(ctx))
        by_file: dict[str, list[_Part]] = {}
        for part in parts:
            by_file.setdefault(part.file, []).append(part)
        for file, found in by_file.items():
            updates = {p.key: p.new for p in found if p.new is not _NO_FIX}
            fix = None
            edit = _edit(ctx.target, file, updates) if updates else None
            if edit is not None:
                safe = all(p.safe for p in found if p.new is not _NO_FIX)
                fix = Fix(
                    f"Align special tokens in {file}",
                    Applicability.SAFE if safe else Applicability.UNSAFE,
                    (edit,),
                )
            severity = max((p.severity for p in found), key=_RANK.__getitem__)
            yield self.finding(
                "; ".join(p.text for p in found),
                path=file,
                fix=fix,
                severity=severity,
                data={"keys": [p.key for p in found]},
            )

    # -------------------------------------------------------------- tokenizer files
    def _role(self, ctx: Context, role: str) -> tuple[list[_Part], str | None, bool]:
        """Parts about `role` in the tokenizer files.

        Also returns the token the files settle on once fixed, and whether moving there is safe.
        """
        target = ctx.target
        vocab = vocabulary(target)
        comparison = compare(ctx.base, target)
        declared = _declared(target, role)
        loaded = target.special_tokens().get(role)
        base_tokens = ctx.base.special_tokens() if _has_tokenizer(ctx.base) else {}
        base_value = base_tokens.get(role)
        base_vocab = vocabulary(ctx.base)
        if len(set(declared.values())) > 1:
            return self._disagreement(ctx, role, declared, base_value, comparison)
        if role == "eos_token" or loaded is None:
            return [], loaded, True
        restorable = (
            base_value is not None
            and base_value != loaded
            and comparison.copy_allowed
            and vocab.id_of(base_value) is not None
            and vocab.id_of(base_value) == base_vocab.id_of(base_value)
        )
        if vocab.complete and vocab.id_of(loaded) is None:
            text = (
                f"{role} {loaded!r} is not in the vocabulary: transformers adds it as a new "
                f"token (id {len(vocab)}) with no trained embedding row"
            )
            if base_value is not None:
                text += f"; base has {_say(base_value, base_vocab)}"
            severity = Severity.ERROR if role == "bos_token" else Severity.WARNING
            new = base_value if restorable else _NO_FIX
            parts = [
                _Part(file, role, text, severity, new=_file_value(target, file, role, new))
                for file in declared
            ]
            return parts, base_value if restorable else loaded, False
        if base_value is None or loaded == base_value:
            return [], loaded, True
        if role == "pad_token" and loaded == target.special_tokens().get("eos_token"):
            return [], loaded, True  # pad == eos is pad-token-is-eos's (FTX207)
        # Changed relative to the base (both sides name a token).
        safe = _restore_is_safe(ctx, role, base_value, comparison)
        text = f"{role} is {_say(loaded, vocab)}; base has {_say(base_value, base_vocab)}"
        new = base_value if restorable else _NO_FIX
        parts = [
            _Part(
                file,
                role,
                text,
                DRIFT_SEVERITY[role],
                new=_file_value(target, file, role, new),
                safe=safe,
            )
            for file in declared
        ]
        return parts, base_value if restorable else loaded, safe

    def _disagreement(
        self,
        ctx: Context,
        role: str,
        declared: dict[str, str],
        base_value: str | None,
        comparison: VocabComparison,
    ) -> tuple[list[_Part], str | None, bool]:
        target = ctx.target
        vocab = vocabulary(target)
        loaded_from = _loaded_from(target)
        loaded = declared.get(loaded_from)
        wanted = base_value if base_value in declared.values() else loaded
        moves_loaded = wanted != loaded
        loaded_safe = not moves_loaded or _restore_is_safe(ctx, role, wanted, comparison)
        inherited = _declared(ctx.base, role) == declared
        parts = []
        for file, value in declared.items():
            if value == wanted:
                continue
            if role == "eos_token" and file == loaded_from:
                # Changing the eos transformers loads is eos-token-drift's call (FTX204), made
                # against the template's end of turn; only stale copies are reported here.
                continue
            others = ", ".join(
                f"{other} has {_say(v, vocab)}" for other, v in declared.items() if other != file
            )
            if file == loaded_from:
                note = "transformers 5 loads this one"
                if file == SPECIAL_TOKENS_MAP:
                    note += " (tokenizer_config.json has no added_tokens_decoder, so the map wins)"
                safe = loaded_safe
            else:
                note = "transformers 5 ignores this file, but other tools read it"
                safe = True
            text = f"{role} is {_say(value, vocab)} but {others}; {note}"
            if base_value is not None and base_value == wanted:
                text += f"; base has {_say(base_value, vocab)}"
            if inherited:
                text += "; the base has the same disagreement"
            parts.append(
                _Part(
                    file,
                    role,
                    text,
                    Severity.INFO if inherited else Severity.WARNING,
                    new=_file_value(target, file, role, wanted),
                    safe=safe,
                )
            )
        return parts, wanted, loaded_safe

    # ------------------------------------------------------------ config ids
    def _numeric_parts(
        self, ctx: Context, settled: Mapping[str, tuple[str | None, bool]]
    ) -> Iterator[_Part]:
        target = ctx.target
        vocab = vocabulary(target)
        comparison = compare(ctx.base, target)
        for role, key in NUMERIC.items():
            token, moving_safe = settled[role]
            token_id = vocab.id_of(token)
            values: dict[str, int] = {}
            for file in NUMERIC_FILES:
                value = (target.json(file) or {}).get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    values[file] = value
            if token_id is None:
                # Without the tokenizer's id, only the two config files can be compared.
                if len(set(values.values())) > 1:
                    inherited = all(
                        (ctx.base.json(f) or {}).get(key) == v for f, v in values.items()
                    )
                    yield _Part(
                        "generation_config.json",
                        key,
                        f"{key} is {values['generation_config.json']} but config.json has "
                        f"{values['config.json']} (generate() uses generation_config.json)"
                        + ("; the base has the same disagreement" if inherited else ""),
                        Severity.INFO if inherited else Severity.WARNING,
                    )
                continue
            loaded = target.special_tokens().get(role)
            for file, value in values.items():
                if value == token_id:
                    continue
                base_value = (ctx.base.json(file) or {}).get(key)
                text = f"{key} is {_say_id(value, vocab)}"
                if token == loaded:
                    text += f" but the tokenizer's {role} is {_say(token, vocab)}"
                else:
                    # The tokenizer files are being restored to the base's token as well.
                    text += f" but the base's {role} is {_say(token, vocab)}"
                if base_value == value:
                    yield _Part(
                        file, key, text + "; the base has the same disagreement", Severity.INFO
                    )
                    continue
                safe = base_value == token_id and comparison.copy_allowed and moving_safe
                if base_value is not None:
                    text += f"; base has {base_value}"
                yield _Part(file, key, text, Severity.WARNING, new=token_id, safe=safe)

    # ------------------------------------------------------- additional specials
    def _extra_parts(self, ctx: Context) -> Iterator[_Part]:
        target = ctx.target
        vocab = vocabulary(target)
        if not vocab.complete:
            return
        for file in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP):
            data = target.json(file) or {}
            for key in ("additional_special_tokens", "extra_special_tokens"):
                listed = data.get(key)
                if isinstance(listed, dict):
                    values = list(listed.values())
                elif isinstance(listed, list):
                    values = listed
                else:
                    continue
                absent = [t for t in map(token_text, values) if t and vocab.id_of(t) is None]
                if absent:
                    yield _Part(
                        file,
                        key,
                        f"{key} lists {', '.join(map(repr, absent[:5]))} which the vocabulary "
                        f"does not have: transformers adds them as new ids with no trained "
                        f"embedding rows",
                        Severity.WARNING,
                    )


def _has_tokenizer(ckpt: Checkpoint) -> bool:
    return ckpt.exists(TOKENIZER_CONFIG) or ckpt.exists("tokenizer.json")


def _declared(ckpt: Checkpoint, role: str) -> dict[str, str]:
    out = {}
    for file in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP):
        value = token_text((ckpt.json(file) or {}).get(role))
        if value is not None:
            out[file] = value
    return out


def _file_value(ckpt: Checkpoint, file: str, role: str, token: Any) -> Any:
    """`token` in the shape the file already uses for `role` (plain string or AddedToken dict)."""
    if token is _NO_FIX:
        return _NO_FIX
    current = (ckpt.json(file) or {}).get(role)
    if token is not None and isinstance(current, dict):
        return {**current, "content": token}
    return token


def _edit(ckpt: Checkpoint, file: str, updates: dict[str, Any]) -> FileEdit | None:
    removals = tuple(k for k, v in updates.items() if v is None and file == SPECIAL_TOKENS_MAP)
    kept = {k: v for k, v in updates.items() if k not in removals}
    return edit_json(ckpt, file, kept, remove=removals)
