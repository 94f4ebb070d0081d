"""A trial worker's death, met one way whatever path Tune takes: the one retry decision, and how
a sweep that can no longer move ends Tuner.fit (to retry what Tune gave up too early, or to stop
with a resume command) instead of waiting for ever.

Leaves out the decisions at a rung (results/sweep/halving.py, scheduler.py) and the tables (callbacks.py).
"""
from __future__ import annotations

import time

from results.sweep.halving import Halving
from results.sweep.settings import HYPERPARAMETERS

from .ray_api import Trial

# How long the sweep may sit with no trial running and none to start before it ends Tuner.fit.
# Tune snapshots its experiment at least every 10 s: after this long the snapshot a restore
# starts from is the idle state itself, and no trial replays epochs it had already reported.
IDLE_GRACE_S = 12.0


def lost_for_good(trial: Trial) -> bool:
    """Whether a failed trial has spent its retries (FailureConfig.max_failures): the one retry
    decision. Tune ends some trials as ERROR before that: a trial it has just put back to
    PENDING after a failure takes a second failure of the same death (the reset of a cached
    actor that had died, a future of the dead actor resolving late) as final. Such a trial is
    owed its retries: its rung waits for it, and the sweep restores it (SweepIdle)."""
    return not trial.should_recover()


def owed_retry(trial: Trial) -> bool:
    """Ended by Tune as ERROR with retries left (lost_for_good says why that happens)."""
    return trial.status == Trial.ERROR and not lost_for_good(trial)


class SweepIdle(Exception):
    """Raised by the halving scheduler when no trial has run and none could start for
    IDLE_GRACE_S while trials wait at a rung. An Exception, so that Tune cleans up its actors and
    calls the callbacks' on_experiment_end (the tables are written) before Tuner.fit raises it.
    The driver then restores the experiment, which runs the trials owed a retry again and
    restarts every paused one from its checkpoint (a decision lost on the way is taken again);
    when the last restore made no progress, it stops with SweepStalled instead.

    `waiting`: one text per trial the open rung waits for; `progress`: a mark of how far the
    sweep is (values recorded at rungs, trials ended), to tell a restore that helped."""

    def __init__(self, rung: float | None, waiting: list[str], progress: tuple):
        self.rung, self.waiting, self.progress = rung, waiting, progress
        where = f"rung {rung:g} waits for" if rung is not None else "waiting for"
        shown = "; ".join(waiting[:5]) + (f"; and {len(waiting) - 5} more" if len(waiting) > 5 else "")
        super().__init__(f"no trial running and none can start: {where} {len(waiting)} trial"
                         f"{'s' if len(waiting) != 1 else ''} ({shown or 'none left'})")


def idle(halving: Halving, trials: list[Trial]) -> SweepIdle:
    """The SweepIdle of a sweep that cannot move: what its first undecided rung waits for."""
    j = len(halving.promoted)
    waiting = [t for t in trials if halving.pending_rung(t.trial_id) == j
               and (t.status != Trial.ERROR or owed_retry(t))]
    progress = (sum(map(len, halving.values)), sum(t.status == Trial.TERMINATED for t in trials))
    return SweepIdle(halving.rungs[j] if j < len(halving.rungs) else None, list(map(describe, waiting)), progress)


def failure_line(trial: Trial, node: str | None) -> str:
    """The one line a trial's failure gets on the terminal (Ray's own report goes to the log)."""
    where = f" on node {node[:8]}" if node else ""
    if lost_for_good(trial):
        return (f"trial {named(trial)} failed{where} with no retries left ({trial.max_failures} used): "
                "it is an error in the tables")
    then = ("from its last checkpoint" if trial.status != Trial.ERROR
            else "once no other trial can run (the sweep restores it)")
    return f"trial {named(trial)} failed{where}: retry {trial.num_failures} of {trial.max_failures}, {then}"


def named(trial: Trial) -> str:
    """A trial's id and configuration, as every message of the sweep names a trial."""
    return f"{trial.trial_id} (" + ", ".join(f"{c}={trial.config.get(c)}" for c in HYPERPARAMETERS) + ")"


def describe(trial: Trial) -> str:
    """A trial as the messages name it: its id, configuration and state."""
    state = (f"error with retries left ({trial.num_failures} failures of {trial.max_failures})"
             if trial.status == Trial.ERROR else trial.status.lower())
    return f"{named(trial)}: {state}"


class IdleWatch:
    """The halving scheduler's liveness (scheduler.py): when choose_trial_to_run finds nothing to
    start, `_watch` looks whether any trial runs; if none does, every trial is settled again from
    Tune's states (`_reconcile`), and if nothing has started IDLE_GRACE_S later, SweepIdle ends
    the fit. Uses the scheduler's `halving`, `_unsure`, `_settle` and `_ended`; keeps
    `_watched` and `_idle_since`, which choose_trial_to_run clears when it starts a trial."""

    def _watch(self, tune_controller) -> bool:
        """Nothing to start: if no trial runs either, settle every trial again (True); still
        nothing after IDLE_GRACE_S, raise SweepIdle. Walks every trial, at most once a second."""
        now = time.monotonic()
        if now - self._watched < 1.0:
            return False
        self._watched = now
        trials = tune_controller.get_trials()
        statuses = {t.status for t in trials}
        if Trial.RUNNING in statuses or Trial.PENDING in statuses or Trial.PAUSED not in statuses:
            self._idle_since = None  # busy, or every trial ended (Tune ends the experiment)
        elif self._idle_since is None:
            self._idle_since = now
            self._reconcile(tune_controller, trials)
            return True
        elif now - self._idle_since >= IDLE_GRACE_S:
            raise idle(self.halving, trials)
        return False

    def _reconcile(self, tune_controller, trials) -> None:
        """Every fate again, from Tune's states: an ended trial (not owed a retry) counts as NaN at
        the rung it was due at, and every paused trial is stopped, queued or left to its rung."""
        for trial in trials:
            ended = trial.status == Trial.TERMINATED or trial.status == Trial.ERROR and lost_for_good(trial)
            if ended and self.halving.pending_rung(trial.trial_id) is not None:
                self._ended(tune_controller, trial)
            elif trial.status == Trial.PAUSED:
                self._unsure.append(trial)
        self._settle(tune_controller)
