"""Issue 19: hostile chat templates are FTX003 findings, bounded in memory and in total time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from ckpt_builders import copy_checkpoint

import ftfix
from ftfix.analysis import render as render_mod
from ftfix.analysis.render import TemplateRenderError, render

# Single C-level operations no timer can stop, and templates that only blow up the parser.
MEMORY = {
    "center": "{{ 'x'|center(10**9) }}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "indent": "{{ 'a\nb'|indent(10**9) }}",
    "percent-format": "{{ '%0999999999d'|format(1) }}",
    "str-format": "{{ '{:>999999999}'.format(1) }}",
    "tojson-indent": "{{ messages|tojson(indent=10**8) }}",
    "tilde-doubling": "{% set ns = namespace(s='x') %}{% for i in range(34) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "list-doubling": "{% set ns = namespace(l=[1]) %}{% for i in range(34) %}"
    "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
}
NESTED = {
    "nested-ifs": "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000,
    "nested-parens": "{{ " + "(" * 100_000 + "1" + ")" * 100_000 + " }}",
    "break-outside-loop": "{% break %}",
}
USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("name", sorted(MEMORY))
def test_single_huge_operation_fails_fast_as_too_large(name):
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as info:
        render(MEMORY[name] + f"{{# {name} #}}", USER)
    assert info.value.kind == "too-large", info.value
    assert time.monotonic() - started < 1.9  # refused, not run until the 2 s timeout


@pytest.mark.parametrize("name", sorted(NESTED))
def test_nested_templates_are_render_errors(name):
    with pytest.raises(TemplateRenderError) as info:
        render(NESTED[name], USER)
    assert info.value.kind in ("too-large", "syntax"), info.value


def test_memory_bound_is_lifted_after_a_render():
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(TemplateRenderError):
        render(MEMORY["center"] + "{# lifted #}", USER)
    render("{{ messages[0].content }}", USER)
    assert resource.getrlimit(resource.RLIMIT_AS) == before


CHILD = textwrap.dedent(
    """
    import json, sys, ftfix
    base, *folders = sys.argv[1:]
    out = {}
    for ft in folders:
        report = ftfix.check(base, ft)
        out[ft] = [(f.code, f.data.get("error_kind")) for f in report.findings]
    print(json.dumps(out))
    """
)


def test_check_reports_every_hostile_template_within_a_memory_bound(pair, tmp_path):
    """One `check` process over all of them: FTX003 each, peak RSS far below a gigabyte."""
    base, ft = pair
    folders = []
    for name, source in {**MEMORY, **NESTED}.items():
        folder = copy_checkpoint(ft, tmp_path / name)
        (folder / "chat_template.jinja").write_text(source)
        folders.append(str(folder))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base), *folders],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    results = json.loads(out)
    for folder in folders:
        codes = [code for code, _ in results[folder]]
        assert "FTX003" in codes, (folder, results[folder])
    assert time.monotonic() - started < 120


def _check_peak_kib(base, ft) -> tuple[int, bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftfix", "check", str(base), str(ft)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss, out  # KiB on Linux


def test_check_memory_peak_of_one_hostile_template(pair, tmp_path):
    """The '%0999999999d' template asks for ~1 GB in one C call: refused within the bound."""
    base, ft = pair
    healthy, _ = _check_peak_kib(base, ft)
    (ft / "chat_template.jinja").write_text(MEMORY["percent-format"])
    hostile, out = _check_peak_kib(base, ft)
    assert b"FTX003" in out
    assert hostile < healthy + 300 * 1024, (healthy >> 10, hostile >> 10)  # +256 MiB bound


def test_total_time_budget_per_template(pair, monkeypatch):
    """A template under the per-render limit but slow is stopped once its budget is spent."""
    base, ft = pair
    slow = (
        "{% for i in range(100000) %}{% for j in range(3) %}{% endfor %}{% endfor %}"
        "{% for m in messages %}{{ m.content }}{% endfor %}"
    )
    (ft / "chat_template.jinja").write_text(slow)
    monkeypatch.setattr(render_mod, "_SLOW_RENDER", 0.0)
    monkeypatch.setattr(render_mod, "_TEMPLATE_BUDGET", 0.05)
    calls = []
    real = render_mod._stream
    monkeypatch.setattr(
        render_mod,
        "_stream",
        lambda *a: calls.append(1) or real(*a),  # type: ignore[func-returns-value]
    )
    report = ftfix.check(base, ft, select=["FTX003"])
    broken = [f for f in report.findings if f.code == "FTX003"]
    assert broken and "budget" in broken[0].data["error"], report.findings
    assert len(calls) <= 3, len(calls)
