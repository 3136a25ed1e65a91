"""Many checkpoints: trainer folders expand to every checkpoint-N; jobs run independently."""

from __future__ import annotations

from ckpt_builders import (
    LLAMA3_TEMPLATE,
    LLAMA3_TEMPLATE_NO_GEN_PROMPT,
    build_merged,
    build_trainer_root,
)

import ftfix
from ftfix.batch import expand_targets, run_many


def test_expand_trainer_root(tmp_path):
    """A trainer root is one target, or with all_checkpoints each checkpoint-N in numeric order."""
    root = build_trainer_root(tmp_path / "out", steps=(5, 10, 50))
    assert expand_targets([root]) == [str(root)]
    assert [p.rsplit("/", 1)[1] for p in expand_targets([root], all_checkpoints=True)] == [
        "checkpoint-5", "checkpoint-10", "checkpoint-50",
    ]  # fmt: skip


def test_run_many_in_a_process_pool(tmp_path):
    """Every checkpoint of a sweep is repaired in parallel; a bad target does not stop the rest."""
    base = build_merged(tmp_path / "base")
    root = build_trainer_root(
        tmp_path / "out", steps=(1, 2, 3), chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT
    )
    targets = [*expand_targets([root], all_checkpoints=True), str(tmp_path / "missing")]
    results = run_many(ftfix.repair, base, targets, jobs=2, progress=False)
    assert [r.exit_code for r in results] == [0, 0, 0, 2]
    assert "no such file or directory" in (results[-1].error or "")
    for step in (1, 2, 3):
        assert (root / f"checkpoint-{step}" / "chat_template.jinja").read_text() == LLAMA3_TEMPLATE
