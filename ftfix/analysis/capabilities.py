"""What today's chat needs from a template: tools, tool calls and results, reasoning, thinking.

The capability rules (FTX009-FTX011) share this module. A template's capabilities are read from
its renders of `probes.shapes()`: it has a capability when a shape's render shows what the shape
carries (the tool's name, the call's arguments, the tool's result, the reasoning text), or, for
the thinking switch, when `enable_thinking` true and false render differently.

* `losses()` compares a template with the reference's: which capabilities the reference has and
  the template drops (renders without them), refuses (fails on every shape) or changes (renders
  them otherwise while the plain probe conversations agree).
* `only_losses_differ()` says whether restoring the reference changes nothing but those shapes.
* `thinking_default()` says whether a template thinks when `enable_thinking` is not set.
* `generation_tags()` / `without_generation_tags()` find and remove `{% generation %}` markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .probes import CAPABILITIES, ShapeRenders, TemplateRenders, first_difference, shapes
from .render import TemplateRenderError

__all__ = [
    "CONSEQUENCES",
    "LOSABLE",
    "Loss",
    "generation_tags",
    "losses",
    "only_losses_differ",
    "probes_same",
    "shapes_same",
    "thinking_default",
    "without_generation_tags",
]

# The capabilities a fine-tune's template can lose; content parts are the multimodal rules'.
LOSABLE = tuple(c for c in CAPABILITIES if c != "content parts")

# What breaks where, per capability (from the runtimes' documentation and source).
CONSEQUENCES = {
    "tools": (
        "tool definitions never reach the prompt: Ollama only enables tools for a model whose"
        ' template uses them ("does not support tools"), and vLLM/SGLang with'
        " --enable-auto-tool-choice prompt the model without its tools"
    ),
    "tool calls": (
        "earlier tool calls vanish from the history, so the model never sees the call format"
        " vLLM's --tool-call-parser and Ollama parse from its output"
    ),
    "tool results": "tool results never reach the model, so an agent loop's answers are lost",
    "reasoning": (
        "reasoning_content is not rendered: training data with reasoning trains without it,"
        " and vLLM's --reasoning-parser finds no reasoning block where the model was taught one"
    ),
    "thinking switch": (
        'enable_thinking is ignored: chat_template_kwargs={"enable_thinking": false} in vLLM'
        " and SGLang, and Ollama's think=false, no longer switch thinking"
    ),
}


@dataclass(frozen=True)
class Loss:
    """A capability the reference's template has and the fine-tune's does not render as it does.

    Args:
        capability (`str`): one of `LOSABLE`.
        how (`str`): `dropped` (renders without it), `refused` (fails on every shape of it) or
            `changed` (renders it, differently from the reference).
        shape (`str`): the shape that shows it.
        observed (`str`): excerpt of the fine-tune's render, from just before the difference.
        expected (`str`): the reference's render, same place.
    """

    capability: str
    how: str
    shape: str
    observed: str = ""
    expected: str = ""

    def describe(self) -> str:
        """`drops tool calls`, `refuses tools`, `renders reasoning differently`."""
        if self.how == "changed":
            return f"renders {self.capability} differently"
        verb = "drops" if self.how == "dropped" else "fails on"
        return f"{verb} {self.capability}"


def _signal_shape(renders: ShapeRenders, capability: str) -> str:
    """The first shape of `capability` whose render shows it."""
    if capability == "thinking switch":
        return "thinking-off"
    signals = {shape.name: shape.signal for shape in shapes()}
    for name, text in renders.rendered(capability).items():
        if signals[name] in text:
            return name
    return ""


def losses(target: ShapeRenders, ref: ShapeRenders, *, same_format: bool) -> list[Loss]:
    """The capabilities `ref` has that `target` drops, refuses or (with `same_format`) changes.

    Args:
        target (`ShapeRenders`): the fine-tune's template over the shapes.
        ref (`ShapeRenders`): the reference's template over the shapes.
        same_format (`bool`): the plain probe conversations render identically; only then is a
            capability both render but differently called changed (otherwise every shape
            differs and the template-format rules speak).
    """
    found: list[Loss] = []
    for capability in LOSABLE:
        if not ref.shows(capability):
            continue
        shape = _signal_shape(ref, capability)
        expected = ref.results[shape]
        assert isinstance(expected, str)  # a shape that shows a signal rendered
        if not target.shows(capability):
            observed = target.results.get(shape)
            if capability != "thinking switch" and not target.rendered(capability):
                found.append(Loss(capability, "refused", shape, str(observed), ""))
                continue
            text = observed if isinstance(observed, str) else ""
            obs, exp = first_difference(text, expected, context=48)
            found.append(Loss(capability, "dropped", shape, obs, exp))
            continue
        if not same_format:
            continue
        theirs = ref.rendered(capability)
        for name, text in target.rendered(capability).items():
            if name in theirs and text != theirs[name]:
                obs, exp = first_difference(text, theirs[name], context=48)
                found.append(Loss(capability, "changed", name, obs, exp))
                break
    return found


def only_losses_differ(
    target: ShapeRenders, ref: ShapeRenders, lost: list[Loss], probes_same: bool
) -> bool:
    """Restoring the reference changes only the renders of the lost capabilities' shapes.

    Every plain probe conversation renders identically (`probes_same`), and so does every shape
    of a capability not lost (failures count as identical when both fail the same way).
    """
    if not probes_same:
        return False
    lost_capabilities = {loss.capability for loss in lost}
    for shape in shapes():
        if shape.capability in lost_capabilities:
            continue
        if not _same(target.results.get(shape.name), ref.results.get(shape.name)):
            return False
    return True


def shapes_same(a: ShapeRenders, b: ShapeRenders) -> bool:
    """Every shape renders identically (failures count as identical when of the same kind)."""
    return all(_same(a.results.get(s.name), b.results.get(s.name)) for s in shapes())


def _same(x: str | TemplateRenderError | None, y: str | TemplateRenderError | None) -> bool:
    if isinstance(x, str) or isinstance(y, str) or x is None or y is None:
        return x == y
    return x.kind == y.kind


def thinking_default(renders: ShapeRenders) -> bool | None:
    """Whether the template thinks when `enable_thinking` is unset; None without a switch.

    The unset render is compared with the renders of `enable_thinking` true and false, which
    must differ (else there is no switch to have a default).
    """
    on, off, unset = (renders.results.get(f"thinking-{s}") for s in ("on", "off", "unset"))
    if not (isinstance(on, str) and isinstance(off, str) and isinstance(unset, str)):
        return None
    if on == off:
        return None
    if unset == on:
        return True
    if unset == off:
        return False
    return None


def probes_same(target: TemplateRenders, ref: TemplateRenders) -> bool:
    """Every probe conversation renders identically, with and without the flag."""
    if target.compile_error is not None or ref.compile_error is not None:
        return False

    pairs = zip(target.probes, ref.probes, strict=True)
    return all(_same(p.plain, q.plain) and _same(p.with_prompt, q.with_prompt) for p, q in pairs)


# --------------------------------------------------------------------------- generation tags
# `{% generation %}` / `{% endgeneration %}` with any whitespace control.
_GENERATION_TAG = re.compile(r"\{%([-+]?)\s*(end)?generation\s*([-+]?)%\}")


def generation_tags(source: str) -> list[str]:
    """The `{% generation %}` and `{% endgeneration %}` tags in `source`, in order."""
    return [match.group(0) for match in _GENERATION_TAG.finditer(source)]


def without_generation_tags(source: str) -> str:
    """`source` with every generation tag replaced by an empty comment.

    The comment keeps the tag's whitespace control (`{#- -#}`), so the text around it is
    trimmed as before; whether the result renders identically is for the caller to prove.
    """
    return _GENERATION_TAG.sub(lambda m: "{#" + m.group(1) + " " + m.group(3) + "#}", source)
