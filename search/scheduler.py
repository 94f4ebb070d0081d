"""Deterministic early stopping: synchronous successive halving over a grid known up front, as a
Ray Tune scheduler on Tune's public TrialScheduler API (the decisions are halving.py's).

Leaves out the trials themselves (trainable.py) and how the tables record them (callbacks.py).
"""
from __future__ import annotations

import json
import math
import os

from . import rayenv

rayenv.configure()  # before Ray is imported: it reads some of this once

from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import TrialScheduler  # noqa: E402

from mlp_core.train import EPOCH, VAL_ACCURACY  # noqa: E402

from .halving import Halving, grid_key  # noqa: E402
from .space import rungs_used  # noqa: E402

# One line per value recorded at a rung, appended before the decision is returned: what a
# resumed sweep's scheduler reads back (Tune restores the trials, not a scheduler's state).
RUNG_LOG = "rungs.jsonl"


class HalvingScheduler(TrialScheduler):
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
        self.rungs = tuple(rungs_used(sorted(rungs), epochs)[::-1])  # increasing
        self.metric_name = metric
        self.log_path = str(log_path) if log_path else None
        self.halving = Halving(n_trials, self.rungs, reduction_factor)
        self.trials: dict[str, Trial] = {}
        self._load_log()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["trials"] = {}  # Tune adds the restored trials again
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # A fresh copy of the decisions, then everything the log says was recorded since.
        h = self.halving
        self.halving = Halving(h.n_trials, h.rungs, h.reduction_factor)
        self._load_log()

    # -- the log --------------------------------------------------------------------------------
    def _load_log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return
        with open(self.log_path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: nothing after it
                    break
                self.halving.record(entry["trial_id"], self.halving.rung_at(entry["rung"]),
                                    entry["value"], tuple(entry["key"]))

    def _log(self, tid: str, j: int, value: float, key: tuple):
        if not self.log_path:
            return
        line = json.dumps({"trial_id": tid, "rung": self.rungs[j], "value": value, "key": list(key)})
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _record(self, trial: Trial, j: int, value: float) -> list[int]:
        tid, key = trial.trial_id, grid_key(trial.config)
        if self.halving.accepts(tid, j):
            self._log(tid, j, value, key)
        return self.halving.record(tid, j, value, key)

    # -- Tune's scheduler API -------------------------------------------------------------------
    def set_search_properties(self, metric, mode, **spec) -> bool:
        if metric and metric != self.metric_name or mode and mode != "max":
            return False
        return True

    @property
    def metric(self):
        return self.metric_name

    def on_trial_add(self, tune_controller, trial: Trial):
        self.trials[trial.trial_id] = trial

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        epoch = result.get(EPOCH)
        j = self.halving.rung_at(epoch) if epoch is not None else None
        if j is None:  # between rungs, or past the last
            return self.CONTINUE
        value = result.get(self.metric_name, float("nan"))
        decided = self._record(trial, j, value)
        self._act_on(tune_controller, decided, current=trial)
        fate = self.halving.fate(trial.trial_id, j)
        if fate == "stop" or not math.isfinite(value):  # a diverged trial never goes on
            return self.STOP
        if fate == "go":
            return self.CONTINUE
        return self.PAUSE

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict):
        self._ended(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial: Trial):
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial: Trial):
        self._ended(tune_controller, trial)

    def _ended(self, tune_controller, trial: Trial):
        j = self.halving.pending_rung(trial.trial_id)
        if j is not None:  # ended before its rung (diverged, failed): it counts there as NaN
            self._act_on(tune_controller, self._record(trial, j, float("nan")))

    def _act_on(self, tune_controller, decided: list[int], current: Trial | None = None):
        """Stop the paused trials that a rung just decided against; the current trial gets its
        decision as on_trial_result's answer, and the promoted ones are resumed by
        choose_trial_to_run."""
        for j in decided:
            for tid in self.halving.values[j]:
                trial = self.trials.get(tid)
                if trial is None or trial is current or self.halving.fate(tid, j) != "stop":
                    continue
                if trial.status == Trial.PAUSED or (trial.status == Trial.RUNNING and trial.is_saving):
                    tune_controller.stop_trial(trial)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        """A pending trial, else a paused one whose rung let it go on, largest hidden size first
        (the longest work first shortens the wait at the next barrier). Paused trials that a
        decision stopped while the driver was down are stopped here."""
        best = None
        for trial in tune_controller.get_trials():
            if trial.status == Trial.PENDING:
                return trial
            if trial.status != Trial.PAUSED:
                continue
            j = self._paused_at(trial)
            fate = self.halving.fate(trial.trial_id, j) if j is not None else "go"
            if fate == "stop":
                tune_controller.stop_trial(trial)
            elif fate == "go" and (best is None or grid_key(trial.config) > grid_key(best.config)):
                best = trial
        return best

    def _paused_at(self, trial: Trial) -> int | None:
        epoch = (trial.last_result or {}).get(EPOCH)
        return self.halving.rung_at(epoch) if epoch is not None else None

    def debug_string(self) -> str:
        parts = [f"rung {s['rung']}: {s['entered']} in" + (f", {s['went_on']} on" if s["went_on"] is not None else "")
                 for s in self.halving.summary()]
        return "Successive halving: " + "; ".join(parts)
