"""Registry-wide checks: every rule documented, tested, listed in the README, and idempotent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ckpt_builders import tree_digest

import ftfix
from ftfix import registry
from ftfix.errors import UnknownCodeError
from ftfix.findings import Severity
from ftfix.readme import rules_table

ROOT = Path(__file__).resolve().parent.parent
FIXERS = registry.all_fixers()


@pytest.mark.parametrize("fixer", FIXERS, ids=lambda f: f.code)
def test_docstring_sections(fixer):
    """Each rule documents what it checks, why, an example, its fix and the fix's safety."""
    doc = fixer.documentation()
    for section in registry.REQUIRED_SECTIONS:
        assert section in doc
    assert ftfix.explain(fixer.code).startswith(
        f"{fixer.code} {fixer.name} ({fixer.severity_label()})"
    )


@pytest.mark.parametrize("fixer", FIXERS, ids=lambda f: f.code)
def test_every_rule_has_a_test_module(fixer):
    """tests/rules/test_ftxNNN_<name>.py exists for every rule."""
    name = f"test_{fixer.code.lower()}_{fixer.name.replace('-', '_')}.py"
    assert (ROOT / "tests" / "rules" / name).is_file(), name


@pytest.mark.parametrize("fixer", FIXERS, ids=lambda f: f.code)
def test_rule_is_quiet_on_a_healthy_pair(fixer, pair):
    """No rule reports anything on a healthy pair, and repair leaves it byte-identical."""
    base, ft = pair
    before = tree_digest(ft)
    assert ftfix.check(base, ft, select=[fixer.code]).findings == []
    ftfix.repair(base, ft, select=[fixer.code])
    assert tree_digest(ft) == before


def test_codes_and_names_unique_and_ordered():
    """Codes are unique and sorted; names are unique."""
    codes = [f.code for f in FIXERS]
    assert codes == sorted(set(codes))
    assert len({f.name for f in FIXERS}) == len(FIXERS)
    assert all(isinstance(f.severity, Severity) for f in FIXERS)


def test_register_rejects_bad_rules():
    """@register fails loudly on a duplicate code or a missing docstring section."""
    from ftfix.rules.base import Fixer

    class Duplicate(Fixer):
        """X.

        ## What it checks
        ## Why is this bad?
        ## Example
        ## Fix
        ## Fix safety
        """

        code = FIXERS[0].code
        name = "duplicate"
        severity = Severity.INFO

        def check(self, ctx):
            yield from ()

    with pytest.raises(ValueError, match="already used"):
        registry.register(Duplicate)

    class Undocumented(Fixer):
        """No sections."""

        code = "FTX998"
        name = "undocumented"
        severity = Severity.INFO

        def check(self, ctx):
            yield from ()

    with pytest.raises(ValueError, match="docstring lacks sections"):
        registry.register(Undocumented)


def test_select_by_prefix_and_name():
    """Selectors match by code prefix or name; unknown ones raise."""
    assert [f.code for f in registry.resolve(["FTX00"])] == [
        f.code for f in FIXERS if f.code.startswith("FTX00")
    ]
    assert [f.code for f in registry.resolve(["missing-chat-template"])] == ["FTX001"]
    assert "FTX001" not in [f.code for f in registry.resolve(None, ["FTX001"])]
    with pytest.raises(UnknownCodeError):
        registry.resolve(["FTX7"])


def test_readme_rules_table_in_sync():
    """The README's rules table is generated from the docstrings (python -m ftfix.readme)."""
    readme = (ROOT / "README.md").read_text("utf-8")
    match = re.search(r"<!-- rules:start -->\n(.*?)<!-- rules:end -->", readme, re.S)
    assert match, "README.md lacks the rules markers"
    assert match.group(1) == rules_table(), "run: python -m ftfix.readme README.md"


def test_one_severity_truth_for_ftx204():
    """Issue 13 item 8: FTX204 prints warnings and errors; the rules table, `explain` and the
    README sample agree, and a rule cannot emit a severity it does not declare."""
    from ftfix.findings import Severity

    fixer = ftfix.registry.get("FTX204")
    assert fixer.severity_label() == "error/warning"
    assert "| FTX204 | `eos-token-drift` | error/warning |" in rules_table()
    assert ftfix.explain("FTX204").startswith("FTX204 eos-token-drift (error/warning)")
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "FTX204 warning" in readme  # the sample output, now consistent with the table
    assert fixer.severities() == (Severity.ERROR, Severity.WARNING)


@pytest.mark.parametrize("fixer", FIXERS, ids=lambda f: f.code)
def test_rule_declares_every_severity_it_names(fixer):
    """One truth: every severity a rule module names is one the rule declares (`severity` and
    `other_severities`), so the rules table and `explain` never under-state it."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[type(fixer).__module__])
    named = {Severity[m] for m in re.findall(r"Severity\.(ERROR|WARNING|INFO)\b", source)}
    assert named <= set(fixer.severities()), (fixer.code, sorted(s.value for s in named))
