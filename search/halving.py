"""Synchronous successive halving, the decisions alone: which trials of a grid known up front go
on at each rung, from their values there. No Ray, so benchmarks replay it as the sweep runs it.

Leaves out running trials, pausing and resuming them (scheduler.py).
"""
from __future__ import annotations

import bisect
import math

from .settings import HYPERPARAMETERS


class Halving:
    """Synchronous successive halving, decisions only: every trial of the grid reports at the
    first rung; once all have (or ended before it), the best ceil(n / reduction_factor) go on to
    the next rung, and so on. A decision reads only the values at its rung, so it is the same
    whatever order the values arrive in, on any number of workers.

    Ranking: higher value first; a value that is not finite (a diverged or failed trial) ranks
    last and never goes on; equal values are ordered by the trial's `key` (its position in the
    grid: smaller hidden size, then smaller learning rate, then smaller L2 first)."""

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

    # -- questions ----------------------------------------------------------------------------
    def rung_at(self, epoch: float) -> int | None:
        """The index of the rung at `epoch`, or None when no rung is there."""
        for j, r in enumerate(self.rungs):
            if r == epoch:
                return j
        return None

    def entered(self, tid: str, j: int) -> bool:
        """Whether `tid` is among the trials that compete at rung j."""
        return j == 0 or (j - 1 < len(self._promoted) and tid in self._promoted[j - 1])

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
        return None

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
        return rank[0] == math.inf or bisect.bisect_left(self._ranked[j], rank) >= self.keep(j)

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
        return self._decide_ready()

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
        return decided

    def _rank(self, item):
        tid, value = item
        return (-value if math.isfinite(value) else math.inf, self.keys[tid], tid)

    def summary(self) -> list[dict]:
        """Per rung: its epoch, how many trials competed, how many went on, and the cutoff."""
        return [{"rung": r, "entered": len(self.values[j]),
                 "went_on": len(self.promoted[j]) if j < len(self.promoted) else None,
                 "cutoff": self.cutoff(j)} for j, r in enumerate(self.rungs)]


def grid_key(config: dict) -> tuple:
    """A trial's place in the grid, for breaking ties: (hidden size, learning rate, L2)."""
    return tuple(config[k] for k in HYPERPARAMETERS)
