"""The package's folders are its architecture: imports flow one way, and a test holds it.

faces (cli, verify, integrations) -> orchestration (api, plan, batch, report, readme, config,
formats, hub) -> rules
(and the registry) -> runtimes -> analysis -> io -> data (errors, findings, version). Runtimes
are knowledge (what vLLM, llama.cpp, Ollama... read from a folder) that both the rules and the
report read, built on analysis: so they sit between the two. The writer (`write/`)
stands apart: only orchestration and faces import it, and it imports io and data only. Every
import counts, including those inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ftfix"

# Higher may import lower or equal; never the reverse.
RANKS = {
    "data": 0,
    "io": 1,
    "analysis": 2,
    "runtimes": 3,
    "rules": 4,
    "orchestration": 5,
    "faces": 6,
}
WRITER_MAY_IMPORT = {"data", "io", "write"}
IMPORTS_WRITER = {"orchestration", "faces", "write"}


def layer(module: str) -> str:
    """The layer of a dotted module name inside ftfix."""
    parts = module.split(".")[1:]
    head = parts[0] if parts else "__init__"
    if head in ("io", "analysis", "runtimes", "rules", "write"):
        return head
    if head in ("errors", "findings", "_version"):
        return "data"
    if head == "registry":
        return "rules"
    if head in ("api", "api_gguf", "plan", "batch", "report", "readme", "config", "formats", "hub"):
        return "orchestration"
    if head in ("cli", "verify", "integrations", "__init__", "__main__"):
        return "faces"
    raise AssertionError(f"{module}: no layer assigned; add it to tests/test_layout.py")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every ftfix import in the file, at any depth."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ftfix")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("ftfix"):
                target = node.module
            else:
                continue
            # `from . import rules` names a module; count the module itself
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(
                    ".py"
                ).exists() or (PACKAGE.parent / Path(*sub.split(".")) / "__init__.py").exists()
                found.append((node.lineno, sub if is_module else target))
    return found


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        mine = layer(here)
        for line, target in imported_modules(path):
            theirs = layer(target)
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {here} ({mine}) imports {target}"
            if mine == "write" and theirs not in WRITER_MAY_IMPORT:
                bad.append(f"{where} ({theirs}): the writer imports io and data only")
            elif theirs == "write" and mine not in IMPORTS_WRITER:
                bad.append(f"{where}: only orchestration and faces may call the writer")
            elif mine != "write" and theirs != "write" and RANKS[theirs] > RANKS[mine]:
                bad.append(
                    f"{where} ({theirs}): imports flow faces -> orchestration -> rules -> "
                    "runtimes -> analysis -> io"
                )
    return bad


def test_imports_flow_one_way():
    """No module imports a layer above its own; the writer imports io and data only."""
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("ftfix.cli", "faces"),
        ("ftfix.api", "orchestration"),
        ("ftfix.config", "orchestration"),
        ("ftfix.formats", "orchestration"),
        ("ftfix.rules.stops.pad_token_is_eos", "rules"),
        ("ftfix.analysis.stops", "analysis"),
        ("ftfix.runtimes.vllm", "runtimes"),
        ("ftfix.io.checkpoint", "io"),
        ("ftfix.write.commit", "write"),
        ("ftfix.errors", "data"),
    ],
)
def test_layers_are_assigned(module, expected):
    """The layer table names the folders the way the README describes them."""
    assert layer(module) == expected


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """An analysis module importing a rule is reported (the guard itself works)."""
    fake = tmp_path / "ftfix"
    (fake / "analysis").mkdir(parents=True)
    (fake / "rules").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "analysis" / "__init__.py").write_text("")
    (fake / "rules" / "__init__.py").write_text("")
    (fake / "rules" / "base.py").write_text("X = 1\n")
    (fake / "analysis" / "leak.py").write_text("def f():\n    from ..rules.base import X\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    found = violations()
    assert len(found) == 1 and "analysis/leak.py:2" in found[0], found


# Code prefix -> folder under ftfix/rules/ (the longest matching prefix wins).
FAMILIES = {
    "FTX00": "templates",
    "FTX01": "templates",
    "FTX02": "tokenizer",
    "FTX1": "weights",
    "FTX2": "stops",
    "FTX31": "adapters",
    "FTX90": "files",
    "FTX91": "files",
    "FTX3": "adapters",
    "FTX5": "gguf",
    "FTX6": "training",  # issue 20
    "FTX92": "folder",  # issue 19
    "FTX93": "folder",
    "FTX40": "config",  # issue 14
    "FTX42": "runtime",  # issue 14
}


def test_every_rule_lives_in_its_family_folder():
    """Rule modules sit in the folder of their code family, never at the top of rules/."""
    import ftfix.registry

    for fixer in ftfix.registry.all_fixers():
        prefix = max((p for p in FAMILIES if fixer.code.startswith(p)), key=len, default=None)
        assert prefix, f"{fixer.code}: add its family to FAMILIES"
        expected = f"ftfix.rules.{FAMILIES[prefix]}."
        assert type(fixer).__module__.startswith(expected), (fixer.code, type(fixer).__module__)


def test_ci_mode_turns_a_skip_into_a_failure(pytester, monkeypatch):
    """With CI=true a plain skip fails and a skip_ok skip stays a skip; without CI both skip."""
    pytester.makeconftest(
        "from ci_mode import pytest_configure, pytest_runtest_makereport  # noqa: F401\n"
    )
    pytester.makepyfile(
        "import pytest\n"
        "def test_needs_data():\n    pytest.skip('../shared not present')\n"
        "@pytest.mark.skip_ok('does not apply')\n"
        "def test_not_applicable():\n    pytest.skip('n/a')\n"
    )
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*skipped in CI mode*../shared not present*"])
    monkeypatch.setenv("CI", "")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=2)
