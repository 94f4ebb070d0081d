"""Atomic file writes: a temporary file beside the target, flushed, then renamed over it.

Readers see the old file or the complete new one, never a part; a failure leaves no stray file.
A link planted at the target is replaced by the new file, never followed; the file gets the
permissions the user's umask gives a new file (0644 with the usual 022), as `open` would.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs):
    """Yield a file object whose content replaces `path` only when the block ends cleanly."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide run folders from colleagues
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # rename: a symlink at `path` is replaced, its target untouched
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def umask() -> int:
    """This process's umask, read without changing it (Linux: /proc; elsewhere set and restore,
    which another thread creating a file at that instant could see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
