"""Tune's stock schedulers (--scheduler none and asha) started from a queue of pending trials,
and that queue, which the halving scheduler (scheduler.py) serves from too.

Leaves out early stopping's decisions (results/sweep/halving.py, scheduler.py).
"""
from __future__ import annotations

from collections import deque

from .ray_api import ASHAScheduler, FIFOScheduler, Trial


class PendingQueue:
    """choose_trial_to_run's pending trials, in the order Tune added them, from a queue that drops
    each once it has started: a call costs the same with 175 trials or 10,000 (Tune's own
    FIFOScheduler, which ASHAScheduler inherits, walks every trial per call: quadratic in the
    grid). Schedulers that never pause need nothing else: Tune itself starts any trial put back
    to PENDING (a retry)."""

    def on_trial_add(self, tune_controller, trial: Trial):
        super().on_trial_add(tune_controller, trial)
        self._enqueue(trial)

    def _enqueue(self, trial: Trial):
        if trial.status == Trial.PENDING:
            self._pending_queue().append(trial)

    def _pending_queue(self) -> deque:
        return self.__dict__.setdefault("_pending", deque())

    def _next_pending(self) -> Trial | None:
        queue = self._pending_queue()
        while queue and queue[0].status != Trial.PENDING:
            queue.popleft()
        return queue[0] if queue else None

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        return self._next_pending()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_pending", None)  # Tune adds the restored trials again
        return state


class QueuedFIFO(PendingQueue, FIFOScheduler):
    """--scheduler none: every trial runs all its epochs, started in the grid's order."""


class QueuedASHA(PendingQueue, ASHAScheduler):
    """--scheduler asha: Ray's ASHAScheduler as it is, its trials started from the queue."""
