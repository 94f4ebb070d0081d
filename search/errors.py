"""The one error a sweep's settings, run folder or cluster raise: its message names the flag or
the path, for the command line to print as one line (exit 2).
"""
from __future__ import annotations

import contextlib

from mlp_core.files import DiskFull


class SweepError(Exception):
    """A setting, the run folder or the cluster is unusable; the message names the flag or the path."""


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
