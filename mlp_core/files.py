"""Atomic file writes: a temporary file beside the target, flushed, then renamed over it; lines
appended whole or not at all, and the append-only logs of JSON lines made of them; a full disk
named in one line.

Readers see the old file or the complete new one, never a part; a failure leaves no stray file.
A link planted at the target is replaced by the new file, never followed; the file gets the
permissions the user's umask gives a new file (0644 with the usual 022), as `open` would.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs):
    """Yield a file object whose content replaces `path` only when the block ends cleanly."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    attempted = 0  # the bytes handed to the file, for the message when the disk is full
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide run folders from colleagues
        with os.fdopen(fd, mode, **open_kwargs) as f:
            try:
                yield f
            finally:
                attempted = _position(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # rename: a symlink at `path` is replaced, its target untouched
    except BaseException as e:
        written = max(_size(tmp), attempted)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise_if_full(e, path, written)
        raise


def _position(f) -> int:
    """How many bytes were handed to `f` (buffered ones included), 0 if it cannot say."""
    for part in (f, getattr(f, "buffer", None)):  # a text file's tell() flushes: it may fail
        try:
            return part.tell()
        except (OSError, ValueError, AttributeError):
            continue
    return 0


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def append_line(f, line: str) -> None:
    """Append one line to the open text file `f` whole, or not at all: a write the disk cannot
    take is cut off again, so a later line never follows half a line."""
    f.flush()
    size = os.fstat(f.fileno()).st_size
    try:
        f.write(line)
        f.flush()
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(f.fileno(), size)  # shrinking frees space: this succeeds on a full disk
        raise_if_full(e, f.name, len(line.encode()))
        raise


# ---------------------------------------------------------------------------------------------
# Append-only logs of JSON lines: one record type for every log a run folder keeps
# ---------------------------------------------------------------------------------------------
class RecordError(ValueError):
    """A whole line of a JSON-lines log that is not JSON (a hand edit, another file)."""


def open_log(path: str | os.PathLike):
    """A JSON-lines log opened for appending (created with the umask's permissions). A link
    planted at `path` is refused, not followed; a last line a crash cut short is cut off first,
    so that no record ever follows half a line. Opened by its path, so that the file's name says
    where a full disk refused a write."""
    def no_follow(p, flags):
        return os.open(p, flags | os.O_NOFOLLOW, 0o666)
    f = open(path, "a", encoding="utf-8", opener=no_follow)
    end = os.fstat(f.fileno()).st_size
    if end:
        with open(path, "rb", opener=no_follow) as r:
            r.seek(end - 1)
            if r.read(1) != b"\n":
                r.seek(0)
                os.ftruncate(f.fileno(), r.read().rfind(b"\n") + 1)
    return f


def log_append(log, entry: dict, default=None) -> None:
    """One record as one line of an open log, whole or not at all (append_line). `default`: as
    json.dumps's, for values JSON does not know."""
    append_line(log, json.dumps(entry, default=default, separators=(",", ":")) + "\n")


def log_entries(path: str | os.PathLike) -> list[dict]:
    """A log's records, oldest first (none when there is no log); a last line cut short by a
    crash is left out; a whole line that is not JSON is a RecordError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    entries = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise RecordError(f"{path}: line {len(entries) + 1} is not JSON") from None
                break  # the last line, cut short by a crash
    return entries


class DiskFull(OSError):
    """A write failed because the disk (or the user's quota) is full: the message names the
    filesystem, its free space, and what was being written."""

    def __init__(self, path: str | os.PathLike, nbytes: int, code: int = errno.ENOSPC,
                 message: str | None = None):
        self.path, self.nbytes = str(path), nbytes
        # worded where the write failed: on a cluster, the machine whose disk is full
        super().__init__(code, message or disk_full_message(path, nbytes, code))

    def __str__(self):
        return self.strerror

    def __reduce__(self):  # as itself from another process (OSError's own would lose the path)
        return DiskFull, (self.path, self.nbytes, self.errno, self.strerror)

    def fields(self) -> dict:
        """What rebuilds it in another process: DiskFull(**fields)."""
        return {"path": self.path, "nbytes": self.nbytes, "code": self.errno, "message": self.strerror}


FULL = (errno.ENOSPC, errno.EDQUOT)


def raise_if_full(e: OSError, path, nbytes: int) -> None:
    """DiskFull from `e` when it says the disk or quota is full (ENOSPC, EDQUOT)."""
    if isinstance(e, DiskFull):
        raise e
    if e.errno in FULL:
        raise DiskFull(path, nbytes, e.errno) from e


def disk_full_message(path, nbytes: int, code: int = errno.ENOSPC) -> str:
    path = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    mount = mount_point(path)
    try:
        usage = shutil.disk_usage(mount)
        room = f"{size_text(usage.free)} free of {size_text(usage.total)}"
    except OSError:
        room = "its size unknown"
    what = "quota exceeded" if code == errno.EDQUOT else "disk full"
    return (f"{what}: the filesystem at {mount} ({room}) could not take {size_text(nbytes)} "
            f"written to {path}")


def mount_point(path) -> str:
    """The mount point of the filesystem holding `path` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


def size_text(n: int) -> str:
    """Bytes for a person: 120 bytes, 2 kB, 404.6 MB, 1.21 GB."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e5:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} kB" if n >= 1e3 else f"{n} bytes"


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
