"""The planner: each rule sees the target through the edits planned before it; two fixes of one
file merge into one edit that holds both; a fix computed against stale content is rejected.

Rules here are small test-local Fixers (not registered) that edit generation_config.json the way
the stop-token rules do, so the planner's staging and conflict check are tested on their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from ckpt_builders import tree_digest

from ftfix import write
from ftfix.analysis.context import Context
from ftfix.analysis.edits import edit_json
from ftfix.findings import Applicability, Finding, Fix, Severity
from ftfix.io.checkpoint import Checkpoint
from ftfix.plan import build
from ftfix.rules.base import Fixer

GEN = "generation_config.json"


class _SetKey(Fixer):
    """Set one key of generation_config.json, computed from the staged view.

    ## What it checks
    ## Why is this bad?
    ## Example
    ## Fix
    ## Fix safety
    """

    code = "FTX999"
    name = "test-set-key"
    severity = Severity.ERROR

    def __init__(self, key: str, value: object, *, stale: bool = False):
        self.key, self.value, self.stale = key, value, stale

    def check(self, ctx: Context) -> Iterator[Finding]:
        target = ctx.target
        if self.stale:  # computed against the file on disk, ignoring earlier planned edits
            target = Checkpoint.open(target.root)
        config = json.loads(target.read_bytes(GEN) or b"{}")
        if config.get(self.key) == self.value:
            return
        edit = edit_json(target, GEN, {self.key: self.value})
        assert edit is not None
        yield self.finding(
            f"{self.key} is not {self.value}",
            path=GEN,
            fix=Fix(f"Set {self.key}", Applicability.SAFE, (edit,)),
        )


def _folder(tmp_path, content=b'{\n  "bos_token_id": 1,\n  "eos_token_id": 2\n}\n'):
    root = tmp_path / "ft"
    root.mkdir()
    (root / GEN).write_bytes(content)
    (root / "config.json").write_text('{"model_type": "llama"}\n')
    return root


def test_two_fixes_of_one_file_merge_into_one_edit(tmp_path):
    """The second fix sees the first's result; the plan holds one edit with both keys."""
    root = _folder(tmp_path)
    original = (root / GEN).read_bytes()
    target = Checkpoint.open(root)
    fixers = [_SetKey("eos_token_id", [2, 7]), _SetKey("pad_token_id", 0)]
    plan = build(target, target, fixers, apply_fixes=True)

    assert [f.name for f in plan.applied] == ["test-set-key", "test-set-key"]
    assert list(plan.file_edits) == [GEN]
    edit = plan.file_edits[GEN]
    assert edit.before == original  # the file on disk, not an intermediate state
    after = json.loads(edit.after)
    assert after["eos_token_id"] == [2, 7] and after["pad_token_id"] == 0

    write.commit(root, list(plan.file_edits.values()), plan.tensor_edits)
    on_disk = json.loads((root / GEN).read_text())
    assert on_disk == {"bos_token_id": 1, "eos_token_id": [2, 7], "pad_token_id": 0}


def test_a_fix_against_stale_content_is_rejected_not_merged(tmp_path):
    """A fix computed without the earlier edit would undo it: reported, never applied."""
    root = _folder(tmp_path)
    target = Checkpoint.open(root)
    fixers = [_SetKey("eos_token_id", [2, 7]), _SetKey("pad_token_id", 0, stale=True)]
    plan = build(target, target, fixers, apply_fixes=True)

    assert len(plan.applied) == 1 and len(plan.findings) == 2
    stale = plan.findings[1]
    assert "conflicts with an earlier fix of generation_config.json" in plan.skipped[stale.key()]
    after = json.loads(plan.file_edits[GEN].after)
    assert after["eos_token_id"] == [2, 7] and "pad_token_id" not in after


def test_a_fix_that_restores_the_original_leaves_no_edit(tmp_path):
    """Set then set back: the file is not rewritten at all (a healthy folder stays untouched)."""
    root = _folder(tmp_path)
    before = tree_digest(root)
    target = Checkpoint.open(root)
    plan = build(
        target, target, [_SetKey("eos_token_id", 9), _SetKey("eos_token_id", 2)], apply_fixes=True
    )
    assert len(plan.applied) == 2
    assert plan.file_edits == {} and plan.empty
    write.commit(root, list(plan.file_edits.values()), plan.tensor_edits)
    assert tree_digest(root) == before


def test_check_only_plans_nothing(tmp_path):
    """Without apply_fixes every finding is reported and no edit is planned."""
    root = _folder(tmp_path)
    target = Checkpoint.open(root)
    plan = build(target, target, [_SetKey("eos_token_id", [2, 7])], apply_fixes=False)
    assert len(plan.findings) == 1 and plan.applied == [] and plan.empty
    assert plan.skipped[plan.findings[0].key()] == "check only"
