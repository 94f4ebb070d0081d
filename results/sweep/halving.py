"""Early stopping, in one place: which rungs a sweep uses, synchronous successive halving's
decisions at each, the per-rung record the scheduler appends as it decides (rungs.jsonl), and
the per-rung view that `show --rungs`, the report and `Run.rungs()` give from that record.

Leaves out pausing and resuming trials in Ray Tune (search/scheduler.py) and parsing --rungs
(space.py). No Ray and no pandas here: benchmarks replay the decisions as the sweep takes them.
"""
from __future__ import annotations

import bisect
import math
import os

from mlp_core.files import log_append, open_log

from ..errors import read_log

# One line per value recorded at a rung, appended before the decision is returned: what a resumed
# sweep's scheduler reads back (Tune restores the trials, not a scheduler's state), and what the
# per-rung view is computed from.
RUNG_LOG = "rungs.jsonl"  # a later round of --extend-edges keeps its own (edges.rung_log)


# ---------------------------------------------------------------------------------------------
# Which rungs
# ---------------------------------------------------------------------------------------------
def rungs_used(rungs, epochs: int) -> tuple:
    """The rungs that can stop a trial, increasing: those before its last epoch."""
    return tuple(r for r in sorted(rungs) if r < epochs)


def partial_rungs(rungs) -> tuple:
    """The rungs inside the first epoch: where trials must also report before it ends."""
    return tuple(r for r in rungs if r < 1)


def geometric_rungs(grace: int, rf: int, epochs: int) -> tuple:
    """Ray's own ASHA rungs: grace, grace*rf, grace*rf**2, ... below `epochs`."""
    rungs, r = [], grace
    while r < epochs:
        rungs.append(r)
        r *= rf
    return tuple(rungs) or (grace,)


def sweep_rungs(sweep: dict) -> tuple:
    """The rungs at which a sweep's early stopping judged trials (none without it): its --rungs
    before the last epoch, or with Ray's ASHA, Ray's geometric rungs from the first.
    `sweep`: sweep.json as table.load_sweep reads it, every setting there."""
    rungs, epochs = tuple(sweep["rungs"]), int(sweep["epochs"])
    if sweep["scheduler"] == "none" or not rungs:
        return ()
    if sweep["scheduler"] == "asha":
        rungs = geometric_rungs(rungs[0], int(sweep["reduction_factor"]), epochs)
    return tuple(int(r) if r == int(r) else r for r in rungs_used(rungs, epochs))


# ---------------------------------------------------------------------------------------------
# The decisions
# ---------------------------------------------------------------------------------------------
class Halving:
    """Synchronous successive halving, decisions only: every trial of the grid reports at the
    first rung; once all have (or ended before it), the best ceil(n / reduction_factor) go on to
    the next rung, and so on. A decision reads only the values at its rung, so it is the same
    whatever order the values arrive in, on any number of workers.

    Ranking: higher value first; a non-finite value (diverged, failed) last and never on; ties
    by the trial's `key`, its grid position (smaller hidden size, learning rate, L2 first). A
    trial can be sure either way before its rung is complete (`beaten`, `certain`); acting on
    that early (stopping it, or sending it on) decides as the complete rung does."""

    def __init__(self, n_trials: int, rungs, reduction_factor: int):
        if n_trials < 1 or reduction_factor < 2:
            raise ValueError(f"n_trials {n_trials} and reduction_factor {reduction_factor}")
        self.n_trials = n_trials
        self.rungs = tuple(rungs)
        self.reduction_factor = reduction_factor
        self.values: list[dict[str, float]] = [{} for _ in self.rungs]  # rung index -> trial -> value
        self.keys: dict[str, tuple] = {}  # trial -> tie-break key
        self.promoted: list[list[str]] = []  # rung index -> trials that went on, best first
        self._promoted: list[set[str]] = []  # the same as sets: membership is asked per report
        # rung index -> the rank keys of the values recorded there, best first: how many beat a
        # trial is asked at every report, before the rung is complete
        self._ranked: list[list[tuple]] = [[] for _ in self.rungs]
        # rung index -> trials certain to go on before it is complete; those new since take_certain
        self._certain: list[set[str]] = [set() for _ in self.rungs]
        self._newly_certain: list[str] = []

    # -- questions ----------------------------------------------------------------------------
    def rung_at(self, epoch: float) -> int | None:
        """The index of the rung at `epoch`, or None when no rung is there."""
        for j, r in enumerate(self.rungs):
            if r == epoch:
                return j
        return None

    def entered(self, tid: str, j: int) -> bool:
        """Whether `tid` competes at rung j (or is certain to, before rung j - 1 is complete)."""
        return (j == 0 or (j - 1 < len(self._promoted) and tid in self._promoted[j - 1])
                or tid in self._certain[j - 1])

    def entrants(self, j: int) -> int | None:
        """How many trials compete at rung j (None while the rung before is undecided)."""
        if j == 0:
            return self.n_trials
        return len(self.promoted[j - 1]) if j - 1 < len(self.promoted) else None

    def fate(self, tid: str, j: int) -> str | None:
        """At rung j: "go" (goes on), "stop" (stopped here or before) or None (not decided yet)."""
        for i in range(j + 1):
            if not self.entered(tid, i):
                return "stop" if i - 1 < len(self.promoted) else None
        if j < len(self.promoted):
            return "go" if tid in self._promoted[j] else "stop"
        return "go" if tid in self._certain[j] else None

    def cutoff(self, j: int) -> float | None:
        """The lowest value that went on at decided rung j (None when none went on)."""
        kept = self.promoted[j] if j < len(self.promoted) else []
        return self.values[j][kept[-1]] if kept else None

    def keep(self, j: int) -> int | None:
        """How many trials go on from rung j: ceil(entrants / reduction_factor)."""
        n = self.entrants(j)
        return None if n is None else math.ceil(n / self.reduction_factor)

    def beaten(self, tid: str, j: int) -> bool:
        """Whether `tid` is already certain not to go on from rung j, before the rung is complete:
        its value there is not finite, or keep(j) recorded values rank above it. The values still
        to come can only add to those above it, so the complete rung decides the same."""
        if tid not in self.values[j]:
            return False
        rank = self._rank((tid, self.values[j][tid]))
        if rank[0] == math.inf:
            return True
        k = self.keep(j)  # None while the rung before is undecided (`tid` was certain there)
        return k is not None and bisect.bisect_left(self._ranked[j], rank) >= k

    def certain(self, tid: str, j: int) -> bool:
        """Whether `tid` goes on from rung j whatever the values still to come there."""
        return tid in self._certain[j]

    def take_certain(self) -> list[str]:
        newly, self._newly_certain = self._newly_certain, []  # certain since last asked
        return newly

    def displaced(self, j: int) -> str | None:
        """The trial that the value recorded last at rung j pushed out of the rung's best keep(j)
        (or that value's own trial, when it ranked below them); None while fewer are recorded.
        Each value pushes out at most one, so asking after every record finds each beaten trial."""
        k, ranked = self.keep(j), self._ranked[j]
        return ranked[k][-1] if k is not None and len(ranked) > k else None

    def accepts(self, tid: str, j: int) -> bool:
        """Whether record(tid, j, ...) would store a value: `tid` competes at rung j and has
        none there yet."""
        return self.entered(tid, j) and tid not in self.values[j]

    def pending_rung(self, tid: str) -> int | None:
        """The rung `tid` competes at and has no value for yet (None if it has gone past them all
        or was stopped)."""
        for j in range(len(self.rungs)):
            if not self.entered(tid, j):
                return None
            if tid not in self.values[j]:
                return j
        return None

    # -- changes ------------------------------------------------------------------------------
    def record(self, tid: str, j: int, value: float, key: tuple) -> list[int]:
        """Record `tid`'s value at rung j (the first value stands: a trial that replays a report
        after a resume gives the same one), and decide every rung that is now complete. Returns
        the indices of the rungs decided by this call."""
        if not self.accepts(tid, j):
            return []
        value = float(value)
        self.values[j][tid] = value if math.isfinite(value) else float("nan")
        self.keys.setdefault(tid, tuple(key))
        bisect.insort(self._ranked[j], self._rank((tid, self.values[j][tid])))
        decided = self._decide_ready()
        if j >= len(self.promoted):
            self._note_certain(j, (tid,))
        return decided

    def _note_certain(self, j: int, candidates) -> None:
        """Add to rung j's certain trials those of `candidates` now among them: always the best
        c = keep(j) - (values still to come) finite values there. A record adds one to c, so at
        most one trial: the one recorded or the one at place c."""
        k = self.keep(j)
        ranked, known = self._ranked[j], self._certain[j]
        c = 0 if k is None else min(k - (self.entrants(j) - len(self.values[j])), len(ranked))
        for tid in (*candidates, ranked[c - 1][-1]) if c > 0 else ():
            rank = self._rank((tid, self.values[j][tid]))
            if tid not in known and rank[0] != math.inf and bisect.bisect_left(ranked, rank) < c:
                known.add(tid)
                self._newly_certain.append(tid)

    def _decide_ready(self) -> list[int]:
        decided = []
        while len(self.promoted) < len(self.rungs):
            j = len(self.promoted)
            if len(self.values[j]) < self.entrants(j):
                break
            ranked = sorted(self.values[j].items(), key=self._rank)
            self.promoted.append([t for t, v in ranked[:self.keep(j)] if math.isfinite(v)])
            self._promoted.append(set(self.promoted[-1]))
            decided.append(j)
            if j + 1 < len(self.rungs):  # its entrants known now: values already recorded there
                self._note_certain(j + 1, [r[-1] for r in self._ranked[j + 1]])
        return decided

    def _rank(self, item):
        tid, value = item
        return (-value if math.isfinite(value) else math.inf, self.keys[tid], tid)

    def summary(self) -> list[dict]:
        """Per rung: its epoch, how many trials competed, how many went on, how many were stopped
        there (a diverged or failed trial is neither), and the cutoff."""
        rows = []
        for j, r in enumerate(self.rungs):
            on = self._promoted[j] if j < len(self.promoted) else None
            rows.append({"rung": r, "entered": len(self.values[j]), "went_on": None if on is None else len(on),
                         "stopped": None if on is None else sum(math.isfinite(v) and t not in on
                                                                for t, v in self.values[j].items()),
                         "cutoff": self.cutoff(j)})
        return rows


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------
def append_record(path: str | os.PathLike, tid: str, rung: float, value: float, key: tuple) -> None:
    """One value at a rung, as one line of the run's record, whole or not at all (DiskFull)."""
    with open_log(path) as log:
        log_append(log, {"trial_id": tid, "rung": rung, "value": value, "key": list(key)})


def replay_record(path: str | os.PathLike, halving: Halving) -> Halving:
    """`halving` with every value the record at `path` holds, decided as they were."""
    for entry in read_log(path):
        halving.record(entry["trial_id"], halving.rung_at(entry["rung"]), entry["value"], tuple(entry["key"]))
    return halving


def stopped_at(halving: Halving, tid: str) -> float | None:
    """The rung at which the decisions stopped `tid`, or beat it before its rung was complete
    (None while it goes on, or for a trial they never saw)."""
    for j, r in enumerate(halving.rungs):
        fate = halving.fate(tid, j)
        if fate == "stop" or fate is None and halving.beaten(tid, j):
            return r
        if fate is None:
            return None
    return None
