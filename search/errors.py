"""How the Ray side stops a sweep from inside Tune's loop (SweepHalted), finds a full disk in
what Tune raised, the error it shares with the run folder's layer (results.errors.SweepError),
and the one a sweep that cannot move stops with (SweepStalled; search/faults.py). No Ray here.
"""
from __future__ import annotations

import contextlib

from mlp_core.files import FULL, DiskFull
from results.errors import SweepError  # noqa: F401 (raised by search's modules too)
from results.sweep.spec import MAX_FAILURES  # noqa: F401 (search's modules take it from here)


class SweepHalted(BaseException):
    """Raised inside Tune's loop (a callback, the scheduler) to end Tuner.fit at once, as a crash
    of the driver would, with the reason in `cause`: Tune turns an Exception raised there into
    a trial's failure, or into a TuneError holding only its text."""

    def __init__(self, cause: Exception):
        super().__init__(str(cause))
        self.cause = cause


@contextlib.contextmanager
def halting_when_full():
    """Inside Tune's loop: a write the disk cannot take halts the sweep (SweepHalted)."""
    try:
        yield
    except DiskFull as e:
        raise SweepHalted(e) from e


def disk_full_in(e: BaseException) -> DiskFull | None:
    """The DiskFull that `e` is or wraps (its causes and contexts), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, DiskFull):
            return e
        if isinstance(e, OSError) and e.errno in FULL:
            return DiskFull(e.filename or "Ray Tune's experiment state", 0, e.errno)
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


class SweepStalled(Exception):
    """The sweep stopped because it could not move, even after a restore: its tables are written,
    and --resume goes on from there (the message says what it waited for)."""
