"""Ray Tune's side of early stopping: the schedulers a sweep runs under, on Tune's public
TrialScheduler API. The halving scheduler's decisions, rungs and record are results/sweep/halving.py's.

Implementation notes (HalvingScheduler)
- A trial reports at each rung (on_trial_result). Its value is appended to the record, then
  decided: CONTINUE once the rung let it go on or it is certain to (fewer than ceil(n/eta)
  could still rank above it), STOP once the rung stopped it or ceil(n/eta) others already beat
  it there (or it diverged), PAUSE while that is open. A paused trial that becomes certain to
  go on is queued at once, without waiting for the rest of its rung.
- PAUSE: Tune saves a checkpoint and frees the trial's CPU; the trial stays PAUSED until
  choose_trial_to_run hands it back (queued when its rung lets it go on, largest hidden size
  first), or stop_trial ends it (its rung stopped it, or others beat it).
- A trial can be between states when a decision comes: RUNNING while saving its pause
  (is_saving), or PAUSED as restored by a resume. Such trials wait in `_unsure` and are
  settled at the next choose_trial_to_run.
- A worker or node that dies: Tune calls on_trial_error, then adds the trial again as PENDING
  (it restarts from its last checkpoint and reports its true value). Only a trial that has
  spent its retries (faults.lost_for_good) counts as NaN at its rung, as does one that ended
  before it (on_trial_complete, on_trial_remove); its rung waits for one owed a retry.
- Liveness: when no trial runs and none can start, every fate is settled again from Tune's
  states; if that starts nothing within IDLE_GRACE_S, SweepIdle ends Tuner.fit (faults.py).
- Tune pickles the scheduler into its experiment state; a resumed one reads the record back, and
  the restored trials replay their checkpoint's report before they train on.

Leaves out the trials themselves (trainable.py) and how the tables record them (callbacks.py).
"""
from __future__ import annotations

import heapq
import math
import os
from collections import deque

from mlp_core.train import EPOCH, VAL_ACCURACY
from results.sweep.halving import Halving, append_record, replay_record, rungs_used
from results.sweep.settings import grid_key

from .errors import halting_when_full
from .faults import IdleWatch, lost_for_good
from .queues import PendingQueue
from .ray_api import Trial, TrialScheduler
from .session import open_session
from .trainable import unpacked


class HalvingScheduler(IdleWatch, PendingQueue, TrialScheduler):
    """Successive halving for Tune, with barriers that leave no core idle while work remains: a
    trial that reaches a rung before the rung is complete is paused (its checkpoint saved, its
    CPU given to another trial) and resumed or stopped once the rung is decided.

    Every value it records is appended to `log_path` before the decision is returned; a resumed
    sweep's scheduler (Tune unpickles the one it was started with) reads the log back, and the
    trials replay the report of the checkpoint they restart from, so no decision is lost or
    taken twice."""

    def __init__(self, n_trials: int, rungs, epochs: int, reduction_factor: int,
                 log_path: str | os.PathLike | None = None, metric: str = VAL_ACCURACY):
        super().__init__()
        self.rungs = rungs_used(rungs, epochs)
        self.metric_name = metric
        self.log_path = str(log_path) if log_path else None
        self.halving = Halving(n_trials, self.rungs, reduction_factor)
        self._forget_trials()
        self._load_log()

    def _load_log(self):
        """The decisions recorded so far (a resume's), put in the sweep's session, where the
        recorder reads each stopped trial's rung (Tune unpickles its own copy of the scheduler
        on a restore, which is the live one then)."""
        if self.log_path:
            replay_record(self.log_path, self.halving)
            self.halving.take_certain()  # restored paused trials are settled as Tune adds them
            session = open_session(os.path.dirname(self.log_path))
            if session is not None:
                session.decisions[os.path.basename(self.log_path)] = self.halving

    def _forget_trials(self):
        """The trials Tune has added, and the queues choose_trial_to_run serves from."""
        self.trials: dict[str, Trial] = {}
        self._pending: deque[Trial] = deque()  # added as PENDING, in Tune's order (PendingQueue)
        self._ready: list[tuple] = []  # heap of paused trials a decision let go on: largest first
        self._unsure: list[Trial] = []  # fate to settle once paused: restored, or saving when decided
        self._pushed = 0  # a tie-break for the heap, in push order
        self._watched, self._idle_since = 0.0, None  # IdleWatch's

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("trials", "_pending", "_ready", "_unsure"):
            del state[name]  # Tune adds the restored trials again
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._forget_trials()
        # A fresh copy of the decisions, then everything the log says was recorded since.
        h = self.halving
        self.halving = Halving(h.n_trials, h.rungs, h.reduction_factor)
        self._load_log()

    # -- the log --------------------------------------------------------------------------------
    def _log(self, tid: str, j: int, value: float, key: tuple):
        if self.log_path:
            with halting_when_full():
                append_record(self.log_path, tid, self.rungs[j], value, key)

    def _record(self, trial: Trial, j: int, value: float) -> list[int]:
        tid, key = trial.trial_id, grid_key(trial.config)
        if self.halving.accepts(tid, j):
            self._log(tid, j, value, key)
        return self.halving.record(tid, j, value, key)

    # -- Tune's scheduler API -------------------------------------------------------------------
    def set_search_properties(self, metric, mode, **spec) -> bool:
        return not (metric and metric != self.metric_name or mode and mode != "max")

    @property
    def metric(self):
        return self.metric_name

    @property
    def supports_buffered_results(self) -> bool:
        """No: a report at a rung must be decided as it arrives (Tune then keeps its result
        buffer at one result, TUNE_RESULT_BUFFER_LENGTH=1, its default anyway)."""
        return False

    def on_trial_add(self, tune_controller, trial: Trial):
        self.trials[trial.trial_id] = trial
        self._enqueue(trial)
        if trial.status == Trial.PAUSED:  # restored paused: its rung may have been decided since
            self._unsure.append(trial)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        epoch = unpacked(result).get(EPOCH)
        j = self.halving.rung_at(epoch) if epoch is not None else None
        if j is None:  # between rungs, or past the last
            return self.CONTINUE
        value = result.get(self.metric_name, float("nan"))
        decided = self._record(trial, j, value)
        self._act_on(tune_controller, decided, current=trial)
        self._send_on_certain(current=trial)
        self._stop_displaced(tune_controller, j, current=trial)
        fate = self.halving.fate(trial.trial_id, j)
        if fate == "stop" or not math.isfinite(value):  # a diverged trial never goes on
            return self.STOP
        if fate == "go":
            # Settled again at the next choice: Tune may still pause it, on a PAUSE it had queued
            # for the trial before a resume, and only a decision would then send it on.
            self._unsure.append(trial)
            return self.CONTINUE
        # Enough others beat it here already: stopped now, its checkpoint not kept for a
        # decision that can only go against it.
        return self.STOP if self.halving.beaten(trial.trial_id, j) else self.PAUSE

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict | None = None):
        self._ended(tune_controller, trial)

    on_trial_remove = on_trial_complete  # (paused or pending, stopped)

    def on_trial_error(self, tune_controller, trial: Trial):
        # Called for a retry too (the trial is added again, restarts from its last checkpoint and
        # reports its true value at the rung): NaN at its rung only once its retries are spent.
        if lost_for_good(trial):
            self._ended(tune_controller, trial)

    def _ended(self, tune_controller, trial: Trial):
        j = self.halving.pending_rung(trial.trial_id)
        if j is not None:  # ended before its rung (diverged, failed): it counts there as NaN
            self._act_on(tune_controller, self._record(trial, j, float("nan")))
            self._send_on_certain()

    def _send_on_certain(self, current: Trial | None = None):
        """Queue the paused trials that just became certain to go on from their rung: they need
        not wait for the rest of it (one still saving its pause is settled once paused). The
        current trial gets its answer from on_trial_result."""
        for tid in self.halving.take_certain():
            trial = self.trials.get(tid)
            if trial is None or trial is current:
                continue
            if trial.status == Trial.PAUSED and self._fate(trial) == "go":
                self._queue(trial)
            elif trial.status == Trial.RUNNING and trial.is_saving:
                self._unsure.append(trial)

    def _act_on(self, tune_controller, decided: list[int], current: Trial | None = None):
        """After rungs are decided: stop the paused trials they decided against, and queue the
        paused ones they let go on for choose_trial_to_run (a trial still saving its pause is
        settled once paused). The current trial gets its decision as on_trial_result's answer."""
        for j in decided:
            for tid in self.halving.values[j]:
                trial = self.trials.get(tid)
                if trial is None or trial is current:
                    continue
                if not self._waiting_at(trial, j):  # on its way back to rung j (restarted)
                    if trial.status == Trial.PAUSED:  # paused on the way: settled where it is
                        self._unsure.append(trial)
                    continue
                if self.halving.fate(tid, j) == "stop":
                    tune_controller.stop_trial(trial)
                elif trial.status == Trial.PAUSED:
                    self._queue(trial)
                else:  # still saving its pause
                    self._unsure.append(trial)

    def _stop_displaced(self, tune_controller, j: int, current: Trial):
        """Stop the paused trial (if any) that the value just recorded at undecided rung j pushed
        out of the rung's best: whatever the rest report, it cannot go on."""
        tid = self.halving.displaced(j)
        trial = self.trials.get(tid) if tid is not None else None
        if trial is not None and trial is not current and self._waiting_at(trial, j):
            tune_controller.stop_trial(trial)

    def _waiting_at(self, trial: Trial, j: int) -> bool:
        """Paused at rung j, or saving the checkpoint of that pause. Not a trial that has a value
        at rung j but is running towards it again (restarted from an earlier checkpoint, or from
        scratch): stopped now, its table would lack the epochs up to the rung."""
        pausing = trial.status == Trial.PAUSED or trial.status == Trial.RUNNING and trial.is_saving
        return pausing and self._paused_at(trial) == j

    def _queue(self, trial: Trial):
        self._pushed += 1
        heapq.heappush(self._ready, (tuple(-v for v in grid_key(trial.config)), self._pushed, trial))

    def _settle(self, tune_controller):
        """Paused trials whose fate was unknown when they came: stopped, queued, or left to the
        decision of their rung (which queues them); trials still saving wait."""
        unsure, self._unsure = self._unsure, []
        for trial in unsure:
            if trial.status == Trial.RUNNING and trial.is_saving:
                self._unsure.append(trial)
            elif trial.status == Trial.PAUSED:
                fate = self._fate(trial)
                if fate == "stop":
                    tune_controller.stop_trial(trial)
                elif fate == "go":
                    self._queue(trial)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        """A pending trial, else a paused one whose rung let it go on, largest hidden size first
        (the longest work first shortens the wait at the next barrier). Paused trials that a
        decision stopped while the driver was down are stopped here. Queues with entries dropped
        as their trial moves on: only an idle sweep's watch walks every trial."""
        self._settle(tune_controller)
        trial = self._next_to_run()
        if trial is None and self._watch(tune_controller):  # settled again: one may start now
            trial = self._next_to_run()
        if trial is not None:
            self._idle_since = None
        return trial

    def _next_to_run(self) -> Trial | None:
        pending = self._next_pending()
        if pending is not None:
            return pending
        while self._ready:
            trial = self._ready[0][2]
            if trial.status == Trial.PAUSED and self._fate(trial) == "go":
                return trial  # dropped from the queue once it runs
            heapq.heappop(self._ready)  # running again, ended, or paused at an undecided rung
        return None

    def _fate(self, trial: Trial) -> str | None:
        """A paused trial's fate at its rung: "stop" also before the rung is complete, once
        enough others beat it there."""
        j = self._paused_at(trial)
        if j is None:
            return "go"
        fate = self.halving.fate(trial.trial_id, j)
        return "stop" if fate is None and self.halving.beaten(trial.trial_id, j) else fate

    def _paused_at(self, trial: Trial) -> int | None:
        epoch = unpacked(trial.last_result or {}).get(EPOCH)
        return self.halving.rung_at(epoch) if epoch is not None else None

    def debug_string(self) -> str:
        parts = [f"rung {s['rung']}: {s['entered']} in" + (f", {s['went_on']} on" if s["went_on"] is not None else "")
                 for s in self.halving.summary()]
        return "Successive halving: " + "; ".join(parts)
