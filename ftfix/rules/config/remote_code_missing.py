"""FTX407 remote-code-missing."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.config import CONFIG, auto_map_files
from ...analysis.context import Context
from ...findings import Applicability, FileEdit, Finding, Fix, Severity
from ...io.checkpoint import TOKENIZER_CONFIG
from ...registry import register
from ..base import Fixer


@register
class RemoteCodeMissing(Fixer):
    """`auto_map` names Python files the folder does not have.

    ## What it checks
    The `auto_map` entries of `config.json` and `tokenizer_config.json` (`"AutoModelForCausalLM":
    "modeling_x.XForCausalLM"`, a tokenizer's `[slow, fast]` pair) and whether each named
    `.py` file exists in the fine-tuned folder. Entries that point into another repository
    (`org/repo--module.Class`) are not the folder's to hold.

    ## Why is this bad?
    `trust_remote_code=True` loads (transformers, vLLM and SGLang for architectures they do not
    implement themselves) import those files from the folder: without them the load fails with
    "No module named modeling_x" or a missing-file error. `save_pretrained` of a merged model
    often writes the config but not the code files. A warning, not an error: a model type the
    loader implements natively (Phi-3 in recent transformers) ignores `auto_map` unless
    `trust_remote_code=True` is passed, and ftfix does not import transformers to tell which.

    ## Example
    InternLM2 or Phi-3-small fine-tune: `config.json` has `"auto_map"` pointing at
    `modeling_internlm2.py`, which only the base folder holds.

    ## Fix
    Copy each missing file from the base, byte for byte. ftfix never imports or runs it.

    ## Fix safety
    Safe: a byte copy of the base's own file into a gap; without a base copy no fix is offered.
    """

    code = "FTX407"
    name = "remote-code-missing"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield one finding per auto_map file missing from the fine-tune."""
        target = ctx.target
        names = auto_map_files(target.config, target.tokenizer_config)
        for rel in names:
            if target.exists(rel):
                continue
            base = ctx.base_or_none
            source = base.read_bytes(rel) if base is not None else None
            fix = None
            if source is not None:
                fix = Fix(
                    f"Copy {rel} from the base", Applicability.SAFE, (FileEdit(rel, None, source),)
                )
            where = CONFIG if rel in auto_map_files(target.config) else TOKENIZER_CONFIG
            yield self.finding(
                f"{where} auto_map names {rel}, which is not in the folder; "
                "trust_remote_code loads fail"
                + ("" if source is not None else " (the base does not have it either)"),
                path=rel,
                fix=fix,
                data={"file": rel, "named_in": where},
            )
