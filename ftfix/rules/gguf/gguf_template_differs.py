"""FTX503 gguf-template-differs."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.gguf import GGUFContext, gguf_special_tokens
from ...analysis.probes import first_difference
from ...findings import Applicability, Finding, Fix, Severity
from ...io.gguf import KEY_TEMPLATE
from ...registry import register
from ..base import GGUFFixer


@register
class GgufTemplateDiffers(GGUFFixer):
    """The GGUF's chat template is not the one of the folder it was converted from (or its base).

    ## What it checks
    Renders `tokenizer.chat_template` and the Hugging Face folder's template over the probe
    conversations (with the GGUF's special tokens) and compares the texts; a GGUF without a
    template is reported too.

    ## Why is this bad?
    A GGUF converted before the folder was repaired, or by a converter that read a stale
    `tokenizer_config.json`, formats prompts unlike the model was trained: llama.cpp and
    Ollama then run the model with the wrong turn markers or none.

    ## Example
    `ftfix check ft/ --gguf ft.gguf` on a fine-tune repaired after it was converted: the
    folder's template has the generation prompt, the GGUF's does not.

    ## Fix
    With `--gguf`, writes the folder's template into the GGUF: the metadata section is
    rewritten and the tensor data streamed after it unchanged (journaled, undoable).

    ## Fix safety
    Safe against the folder the GGUF came from (`--gguf`). Against a base model the finding is
    a warning without a fix: a fine-tune may change its template on purpose.
    """

    code = "FTX503"
    name = "gguf-template-differs"
    severity = Severity.ERROR
    other_severities = (Severity.WARNING,)

    def check_gguf(self, ctx: GGUFContext) -> Iterator[Finding]:
        """Yield a finding when the GGUF's template renders differently from the folder's."""
        ref = ctx.reference_template()
        if ref is None:
            return
        template = ctx.template()
        specials = gguf_special_tokens(ctx.meta)
        safe = ctx.reference_role == "finetuned"
        severity = Severity.ERROR if safe else Severity.WARNING
        if template is None:
            detail = "the GGUF has no tokenizer.chat_template"
        else:
            if template == ref:
                return
            mine, theirs = ctx.renders(template, specials), ctx.renders(ref, specials)
            rendered, expected = mine.by_name(), theirs.by_name()
            if theirs.broken:
                return
            differing = [
                name
                for name, probe in expected.items()
                if name not in rendered
                or (rendered[name].plain, rendered[name].with_prompt)
                != (probe.plain, probe.with_prompt)
            ]
            if not differing:
                return
            name = differing[0]
            got = rendered[name].with_prompt if name in rendered else "(does not render)"
            want = expected[name].with_prompt
            a, b = first_difference(str(got), str(want))
            detail = f"it renders {a!r} where {ctx.reference_role} renders {b!r} ({name})"
        fix = None
        if safe:
            edit = ctx.edit(KEY_TEMPLATE, ref, "chat template from the folder")
            fix = Fix("Write the folder's chat template into the GGUF", Applicability.SAFE, (edit,))
        yield self.finding(
            f"the GGUF's chat template differs from {ctx.reference_role}'s: {detail}",
            path=None,
            fix=fix,
            severity=severity,
        )
