"""FTX920 unfinished-repair-journal: check reports a journal that did not finish, never acts."""

from __future__ import annotations

from ckpt_builders import tree_digest

import ftfix
from ftfix.findings import FileEdit
from ftfix.io.state import BACKUPS, STATE_DIR
from ftfix.write import journal as wjournal

STAMP = "20260101T000000000000Z-abcdef"


def _pending(ft, *, state=None):
    before = (ft / "config.json").read_bytes()
    edit = FileEdit("config.json", before, before.replace(b"{", b'{\n  "x": 1,', 1))
    folder = ft / STATE_DIR / BACKUPS / STAMP
    journal = wjournal._begin(ft, folder, [edit], [], keep=True)
    (ft / "config.json").write_bytes(edit.after)  # killed after writing the file
    if state is not None:
        wjournal._set_state(ft, folder, journal, state)
    return edit


def test_pending_journal_is_reported_and_left_alone(pair):
    base, ft = pair
    edit = _pending(ft)
    before = tree_digest(ft)
    report = ftfix.check(base, ft, select=["FTX920"])
    [finding] = report.findings
    assert finding.path == f"{STATE_DIR}/{BACKUPS}/{STAMP}" and finding.fix is None
    assert "half-written" in finding.message and report.exit_code == 1
    assert tree_digest(ft) == before  # check never rolls back
    # the writer rolls it back, after which nothing is reported
    assert ftfix.repair(base, ft, select=["FTX920"]).exit_code == 0
    assert (ft / "config.json").read_bytes() == edit.before
    assert ftfix.check(base, ft, select=["FTX920"]).findings == []


def test_complete_journal_is_not_reported(pair):
    base, ft = pair
    _pending(ft, state="complete")
    assert ftfix.check(base, ft, select=["FTX920"]).findings == []


def test_journal_in_the_base_is_reported_without_a_path(pair):
    base, ft = pair
    _pending(base)
    [finding] = ftfix.check(base, ft, select=["FTX920"]).findings
    assert finding.path is None and "the base holds" in finding.message


def test_healthy_folder_has_no_finding(pair):
    base, ft = pair
    assert ftfix.check(base, ft, select=["FTX920"]).findings == []
