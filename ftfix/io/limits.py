"""Size limits on every file ftfix reads whole, and the one bounded reader that enforces them.

A checkpoint folder is not the user's own content (it came from the Hub, a git clone, an
archive), so a "small" file may be anything: a 6 GB `config.json` would otherwise be read into
memory whole. Every whole-file read goes through `read_limited`, which refuses a file over its
limit before reading it (from its size) and stops reading at the limit (a file that grows, or a
size that lies), and never blocks on a FIFO or a device planted under a file's name.

The limits are far above what real checkpoints hold (Llama 3's tokenizer.json is 9 MB, Gemma's
33 MB; a 1,000,000-token vocabulary is about 100 MB) and well below what exhausts a machine.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import InvalidCheckpointError

__all__ = [
    "JOURNAL_LIMIT",
    "JSON_LIMIT",
    "TEMPLATE_LIMIT",
    "TOKENIZER_LIMIT",
    "limit_for",
    "read_limited",
]

MiB = 1024 * 1024

#: tokenizer.json, and tokenizer_config.json / added_tokens.json, which list added tokens too.
TOKENIZER_LIMIT = 1024 * MiB
#: every other JSON file of a checkpoint (config, generation config, index, adapter config, ...).
JSON_LIMIT = 64 * MiB
#: chat template files (rendering is limited to 10^6 characters of output anyway).
TEMPLATE_LIMIT = 16 * MiB
#: ftfix's own journal manifest.
JOURNAL_LIMIT = 64 * MiB

_TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "added_tokens.json"})


def limit_for(rel: str) -> int:
    """The size limit for the checkpoint file `rel` (a relative POSIX path)."""
    name = rel.rsplit("/", 1)[-1]
    if name in _TOKENIZER_FILES:
        return TOKENIZER_LIMIT
    if name.endswith((".jinja", ".j2")):
        return TEMPLATE_LIMIT
    return JSON_LIMIT


def _human(size: int) -> str:
    return f"{size / MiB:.0f} MiB" if size >= MiB else f"{size} bytes"


def read_limited(path: Path, limit: int, *, follow_symlinks: bool = True) -> bytes | None:
    """The bytes of the regular file `path`, or `None` when there is no regular file there.

    Opened non-blocking (a FIFO under a file's name must not hang the run) and checked with
    `fstat` on the open descriptor, so what is read is what was checked. With
    `follow_symlinks=False` a symlink is refused (`O_NOFOLLOW`): for ftfix's own state.

    Raises:
        `InvalidCheckpointError`: the file is larger than `limit`.
        `OSError`: it cannot be read (permissions, I/O error).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENOTDIR, errno.ENXIO):
            return None  # a symlink refused by O_NOFOLLOW, a folder, a socket: not a file
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            raise InvalidCheckpointError(
                path,
                f"is {_human(info.st_size)}, over ftfix's {_human(limit)} limit for this file",
                hint="a file this large is not what its name says; copy it again from its source",
            )
        chunks = []
        left = limit + 1  # one byte more tells a file that grew past the limit
        while left > 0:
            chunk = os.read(fd, min(left, 16 * MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise InvalidCheckpointError(
                path,
                f"grew past ftfix's {_human(limit)} limit for this file while being read",
                hint="run ftfix again once nothing writes to the folder",
            )
        return data
    finally:
        os.close(fd)
