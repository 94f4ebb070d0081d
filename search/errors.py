"""How the Ray side stops a sweep from inside Tune's loop (SweepHalted), and the error it shares
with the run folder's layer (results.errors.SweepError).
"""
from __future__ import annotations

import contextlib

from mlp_core.files import DiskFull
from results.errors import SweepError  # noqa: F401 (raised by search's modules too)


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
