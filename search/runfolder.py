"""One driver per run folder: an advisory lock, held for the driver's whole life, that the kernel
drops when the process dies (so a driver killed with SIGKILL leaves nothing stale to clean up).

Leaves out what a run folder holds (results/table.py) and checking its name (sweep.py).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "driver.lock"  # holds the PID of the driver that has the folder


class FolderInUse(Exception):
    """Another live driver holds the folder; the message names the folder and its PID."""


def lock_folder(folder: str | os.PathLike):
    """Take `folder`'s lock, or raise FolderInUse naming the holder's PID. Returns the open lock
    file: the lock lasts until it is closed or this process ends."""
    path = Path(folder) / LOCK_FILE
    # O_NOFOLLOW: a link planted at the lock's path is refused, not followed
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    f = os.fdopen(fd, "r+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = f.read().strip() or "unknown"
        f.close()
        raise FolderInUse(f"{folder} is in use by another driver (PID {holder}); wait for it to "
                          f"end, or stop it") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def holder(folder: str | os.PathLike) -> str | None:
    """The PID of the live driver holding `folder`, or None when no driver holds it."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        lock_folder(folder).close()
    except FolderInUse:
        return path.read_text().strip() or "unknown"
    return None
