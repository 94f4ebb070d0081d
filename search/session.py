"""One sweep in this driver: what its Tuner, its Tune callbacks (the recorder, the paused tally,
the progress line, the tail's watch), its halving scheduler and the fits around them share,
built once by sweep.run_sweep and handed to each.

Why a session is looked up by its run folder at all: Tune pickles the callbacks into tuner.pkl
and the scheduler into its experiment snapshot, and a restore (--resume, or fitting's restore in
the same process) runs the unpickled copies; Tuner.restore takes no new callbacks. So each
callback pickles as a reference to a member of the open session of its run folder (`member`),
and a halving scheduler, restored, puts its decisions back in that session (`decisions`), where
the recorder reads each stopped trial's rung. A session is open only inside run_sweep's `with`;
a copy unpickled outside one fails with a message, not with an empty recorder.

Leaves out what the callbacks and the scheduler do (callbacks.py, checkpoints.py, progress.py,
scheduler.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from results.sweep.halving import Halving
    from results.sweep.spec import SweepSpec

    from .callbacks import RunRecorder
    from .checkpoints import PausedCheckpoints
    from .progress import AtTail, Progress

_OPEN: dict[str, SweepSession] = {}  # by str(run folder): the sweeps running in this driver


@dataclass(eq=False)
class SweepSession:
    spec: SweepSpec
    run_dir: Path
    resume: bool  # --resume: the first round's experiment is restored, not started
    recorder: RunRecorder
    paused: PausedCheckpoints
    progress: Progress | None = None
    tail: AtTail | None = None
    data: Any = None  # the split data; dropped once in Ray's object store and no round needs it
    searcher_max: int = 0  # trials the searcher hands out at once (cluster.searcher_limit)
    verbose: bool = False
    stream: Any = None  # where the sweep's own lines go
    # The live halving decisions by their record's file name (one per round of --extend-edges)
    decisions: dict[str, Halving] = field(default_factory=dict)

    def __enter__(self) -> SweepSession:
        key = str(self.run_dir)
        if key in _OPEN:  # the run folder's lock makes this a bug, not a user's error
            raise RuntimeError(f"a sweep of {key} is already running in this driver")
        _OPEN[key] = self
        return self

    def __exit__(self, *exc) -> None:
        _OPEN.pop(str(self.run_dir), None)

    def callbacks(self) -> list:
        """Tune's callbacks for this sweep, in the order Tune calls them: the tables first, so that
        the progress line counts a trial that just ended."""
        return [self.recorder, self.paused, self.progress, self.tail]

    def add_trials(self, n: int) -> int:
        """A round's trials added to the sweep's total (the progress line's, the tail's)."""
        self.progress.total += n
        self.tail.total += n
        return self.progress.total


def open_session(run_dir: str | Path) -> SweepSession | None:
    return _OPEN.get(str(run_dir))


def member(run_dir: str, name: str):
    """What a pickled callback (`name`: recorder, paused, progress, tail) of the sweep of `run_dir`
    becomes."""
    session = open_session(run_dir)
    if session is None:
        raise RuntimeError(f"no sweep of {run_dir} is running in this driver: resume through run_sweep")
    return getattr(session, name)
