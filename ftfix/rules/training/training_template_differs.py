"""FTX601 training-template-differs."""

from __future__ import annotations

from collections.abc import Iterator

from ...analysis.context import Context
from ...analysis.render import TemplateRenderError
from ...analysis.trainers import known_format, probe_samples, training_records
from ...analysis.training import compare_sample
from ...findings import Finding, Severity
from ...registry import register
from ..base import Fixer


@register
class TrainingTemplateDiffers(Fixer):
    """The training framework's record names a template known to differ from the saved one.

    ## What it checks
    The records training frameworks leave in the output folder (or its trainer root):
    LLaMA-Factory's `training_args.yaml` / `llamaboard_config.yaml` (`template`,
    `default_system`), ms-swift's `args.json` (`template`, `system`) and axolotl's `config.yml`
    (`chat_template`, `conversation`). When the named template is one whose output ftfix knows
    (ChatML-style `qwen`, `qwen2_5`, `chatml`; `llama3`), a probe conversation is written the
    way that template wrote the training data and compared with the saved chat template's
    rendering, as FTX600 compares real training rows. Other template names are not judged.
    When the template's default system prompt changed between framework versions (LLaMA-Factory's
    `qwen` up to 0.9.2 against 0.9.3 on) and the record does not set it, the warning names
    the versions it holds for.

    ## Why is this bad?
    The frameworks format data with their own Python templates, not with the Jinja template
    they save; the model learned the Python template's format. A default system prompt the
    trainer added and the saved template replaces, or headers written differently, make the
    served model worse than in the trainer's own chat, though the saved template is often
    exactly the base's (comparing with the base cannot see it).

    ## Example
    `training_args.yaml` says `template: qwen`: LLaMA-Factory up to 0.9.2 trained with the
    default system prompt "You are a helpful assistant.", while the saved Qwen2.5 template
    injects "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." into every
    request without a system message.

    ## Fix
    None automatic. Send the training system prompt with every request, or save a template
    that reproduces the training format; confirm with real rows (`--trained-on`).

    ## Fix safety
    No fix is offered: the record says how training formatted data, not which format the
    users of the model will send.
    """

    code = "FTX601"
    name = "training-template-differs"
    severity = Severity.WARNING
    needs = frozenset()

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield a warning for each record whose named template renders unlike the saved one."""
        source = ctx.options.template or ctx.target.chat_template()
        if source is None:
            return
        specials = ctx.target.special_tokens()
        for record in training_records(ctx.target):
            known = known_format(record)
            if known is None:
                continue
            outcomes = []
            for label, system in known[1]:
                try:
                    found = next(
                        (
                            d
                            for d in (
                                compare_sample(
                                    source, sample, special_tokens=specials, tokenizer=None
                                )
                                for sample in probe_samples(record, system)
                            )
                            if d is not None
                        ),
                        None,
                    )
                except TemplateRenderError:
                    return  # a broken template is FTX003's finding
                outcomes.append((label, system, found))
            differing = [o for o in outcomes if o[2] is not None]
            if not differing:
                continue
            label, system, found = differing[0]
            assert found is not None
            said = f" (system prompt {system!r})" if system else " (no system prompt)"
            if label is not None and len(differing) < len(outcomes):
                said = f" ({label}: system prompt {system!r})" if system else f" ({label})"
            yield self.finding(
                f"{record.path} says {record.framework} trained with its template "
                f"{record.template!r}{said}, which the saved chat template does not "
                f"reproduce: {found.description}",
                path=record.path if not record.path.startswith("../") else None,
                data={
                    "framework": record.framework,
                    "template": record.template,
                    "system": system,
                    "versions": label,
                    "region": found.region,
                    "trained": found.trained,
                    "served": found.served,
                },
            )
