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

    ## Why is this bad?
    The frameworks format data with their own Python templates, not with the Jinja template
    they save; the model learned the Python template's format. A default system prompt the
    trainer added and the saved template replaces, or headers written differently, make the
    served model worse than in the trainer's own chat, though the saved template is often
    exactly the base's (comparing with the base cannot see it).

    ## Example
    `training_args.yaml` says `template: qwen`: LLaMA-Factory trained with the default system
    prompt "You are a helpful assistant.", while the saved Qwen2.5 template injects "You are
    Qwen, created by Alibaba Cloud. You are a helpful assistant." into every request without a
    system message.

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
            for sample in probe_samples(record):
                try:
                    found = compare_sample(source, sample, special_tokens=specials, tokenizer=None)
                except TemplateRenderError:
                    break  # a broken template is FTX003's finding
                if found is None:
                    continue
                system = f" (system prompt {known[1]!r})" if known[1] else " (no system prompt)"
                yield self.finding(
                    f"{record.path} says {record.framework} trained with its template "
                    f"{record.template!r}{system}, which the saved chat template does not "
                    f"reproduce: {found.description}",
                    path=record.path if not record.path.startswith("../") else None,
                    data={
                        "framework": record.framework,
                        "template": record.template,
                        "system": known[1],
                        "region": found.region,
                        "trained": found.trained,
                        "served": found.served,
                    },
                )
                break
