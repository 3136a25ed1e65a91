"""The only package that writes: atomic writes, the lock, a write-ahead journal, commit, undo.

Crash safety rests on one journal per repair, `<root>/.ftfix/backups/<stamp>/manifest.json`:

1. Under the lock (`.ftfix/lock`), the originals are copied into the backup folder (whole
   small files; tensor rows as their original bytes) and the journal is written with
   `state: pending`, listing every planned edit with its sha256 before and after and its
   backup. Files and folders are fsynced before the first byte of the checkpoint changes.
2. Files are replaced atomically (same-folder temp file, fsync, `os.replace`); shards whose
   tensors grow are rewritten the same way, streamed (the journal holds their original header
   and where the new rows go, enough to cut them out again); tensor rows are patched in place
   with `pwrite` and fsynced.
3. The journal is rewritten with `state: complete`. Without `backup`, the journal and its
   backups are then deleted (so `--no-backup` only gives up `undo`, never crash recovery).

The journal (`format: 2`) lists `files` (path, sha256 before/after, backup or none for a
created file, symlink target, mode), `tensors` (path, tensor, rows, sha256 of the rows' bytes
before/after, backup of those bytes) and `resized` (path, backup of the original header and its
sha256, the inserted spans and their sha256, the grown header's sha256, original size, and the
whole-file sha256 before/after once the rewrite has run).

`recover(root)` runs at the start of every writing command (repair, undo) on the fine-tune, never
for `check`, `--dry-run` or the base: a `pending` journal (a repair killed mid-way) is rolled
back from its backups, an `undoing` journal (an undo killed mid-way) is finished, leftover
`*.ftfix-tmp` files are removed. Only journals sealed by this user's ftfix in that folder are
acted on (`trust.py`); any other is refused. An error while committing rolls back
in-process at once. `undo` marks its journal `undoing` before it restores anything.

`FTFIX_TEST_PAUSE=<seconds>` (test-only, read nowhere else) sleeps between the steps of a
commit, so crash tests can kill the process inside every step.
"""

from __future__ import annotations

from .atomic import BACKUPS, LOCK, MANIFEST, STATE_DIR, atomic_write
from .commit import CommitResult, commit
from .lock import locked
from .output import copy_tree_for_output
from .record import write_state_file
from .recovery import recover
from .streamed import (
    GrownShard,
    check_grown_shard,
    rewrite_shard_with_grown_tensors,
    shard_header_sha256,
    shrink_grown_shard,
)
from .undo import undo

__all__ = [
    "BACKUPS",
    "LOCK",
    "MANIFEST",
    "STATE_DIR",
    "CommitResult",
    "GrownShard",
    "atomic_write",
    "check_grown_shard",
    "commit",
    "copy_tree_for_output",
    "locked",
    "recover",
    "rewrite_shard_with_grown_tensors",
    "shard_header_sha256",
    "shrink_grown_shard",
    "undo",
    "write_state_file",
]
