"""The driver's Tune callback that keeps the run's CSV tables current.

Leaves out the trials themselves, their checkpoints (checkpoints.py) and the progress line
(progress.py). The driver's work per
trial does not grow with the number of trials: a trial that ends is appended to the run's
journal (one line, one write), and the tables are rewritten whole, atomically, at most every few
seconds and at the end; the journal then starts empty again. A killed driver loses only the
trials in flight: the next one reads the tables, then the journal. History is keyed by (trial,
epoch), so a trial replayed from an older checkpoint after a resume never records an epoch twice.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

from mlp_core.files import DiskFull
from mlp_core.train import DIVERGED, EPOCH, MID_EPOCH, VAL_ACCURACY
from results.folder import table as T
from results.folder import writer as W
from results.sweep.edges import rung_log
from results.sweep.halving import RUNG_LOG, stopped_at

from .checkpoints import BestWeights
from .errors import SweepHalted, halting_when_full
from .faults import lost_for_good
from .ray_api import Callback
from .session import member, open_session
from .trainable import DISK_FULL, EARLIER, unpacked


class RunRecorder(Callback):
    # The tables are rewritten at most this often, and less often when a rewrite is slow, so that
    # rewriting never takes more than 5% of the driver's time (BENCHMARKS.md, "Per-trial overhead").
    WRITE_EVERY_S = 5.0

    def __reduce__(self):  # a restored experiment reports to this driver's (session.py says why)
        return member, (str(self.run_dir), "recorder")

    def __init__(self, run_dir: Path, epochs: int, storage: str | None = None, rounds: bool = False):
        self.run_dir = Path(run_dir)
        self.epochs = epochs
        # With --extend-edges: results.csv gives each trial's round, the one running now
        self.rounds, self.round, self.rung_log = rounds, 0, RUNG_LOG
        # The best finished trial so far, the one whose checkpoints keep their weights
        self.best_weights = BestWeights(self.run_dir, storage)
        self.history: dict[str, dict[int, dict]] = {}  # trial id -> epoch -> history row
        self.partial: dict[str, dict[float, dict]] = {}  # trial id -> fraction -> row (first epoch)
        self.rows: dict[str, dict] = {}  # finished trials only
        self.nodes: dict[str, str] = {}
        self.threads: dict[str, int] = {}
        self.diverged: set[str] = set()
        self.owed: set[str] = set()  # trials Tune ended as errors with retries left (faults.py)
        # What the tables hold so far, for the progress line: finished trials by status, and
        # the best finite validation accuracy reported
        self.counts: Counter = Counter()
        self.best: float | None = None
        self._last_write = time.monotonic()
        self._period = self.WRITE_EVERY_S
        # Each table's rows as already formatted for its CSV. A stored row is never changed (a
        # new report stores a new dict), so a rewrite formats only the rows new since the last.
        self._formatted: dict[str, dict] = {T.HISTORY_FILE: {}, T.PARTIAL_FILE: {}, T.RESULTS_FILE: {}}
        self._load_existing()
        self._journal = W.open_journal(self.run_dir)  # appended to as trials end (T.JOURNAL_FILE)
        self.write()  # the tables exist from the start, and hold the journal of a driver before

    def start_round(self, round_: int) -> None:
        """The trials that end from now on are of this round of --extend-edges, decided by its
        halving record."""
        self.round, self.rung_log = round_, rung_log(round_)

    # -- state from an earlier, interrupted driver ----------------------------------------------
    def _load_existing(self):
        """The tables as an earlier driver left them, with its journal's trials (T.load_*)."""
        if (self.run_dir / T.HISTORY_FILE).exists():
            for r in T.load_history(self.run_dir).to_dict("records"):
                self.history.setdefault(str(r[T.TRIAL_ID]), {})[int(r[EPOCH])] = r
                self._note_best(r.get(VAL_ACCURACY))
        for r in T.load_partial(self.run_dir).to_dict("records"):
            self.partial.setdefault(str(r[T.TRIAL_ID]), {})[float(r[EPOCH])] = r
        if (self.run_dir / T.RESULTS_FILE).exists():
            for r in T.load_results(self.run_dir).to_dict("records"):
                self._keep(str(r[T.TRIAL_ID]), r)

    def _keep(self, tid: str, row: dict):
        if row[T.STATUS] != T.Status.ERROR:  # a resume retries errored trials
            self.rows[tid] = row
            self.counts[row[T.STATUS]] += 1
            self.best_weights.loaded(tid, row)

    def _note_best(self, value):
        if isinstance(value, float) and math.isfinite(value) and (self.best is None or value > self.best):
            self.best = value

    @property
    def finished(self) -> frozenset:
        return frozenset(self.rows)

    # -- Tune hooks -----------------------------------------------------------------------------
    def on_trial_result(self, iteration, trials, trial, result, **info):
        result = unpacked(result)
        if DISK_FULL in result:  # a trial's checkpoint did not fit: stop the sweep (as a crash would)
            raise SweepHalted(DiskFull(**result[DISK_FULL]))
        tid = trial.trial_id
        if tid in self.rows or EPOCH not in result:
            return
        self.nodes[tid] = result.get(T.NODE_ID, "")
        self.threads[tid] = result.get(T.BLAS_THREADS)
        # A restored trial's replayed report brings its reports before it (EARLIER), which a
        # driver that died before writing its tables would not have.
        for report in (*result.get(EARLIER, ()), result):
            self._keep_row(tid, report)
        if result.get(DIVERGED):
            self.diverged.add(tid)
        with halting_when_full():
            self._write_if_due()  # also between trial ends, so long trials' epochs reach the disk

    def _keep_row(self, tid: str, report: dict) -> None:
        """A report's history row (or partial row, inside the first epoch). A trial restored from
        an older checkpoint (or from scratch) replays epochs it had reported: training is seeded,
        so each replayed row replaces its twin. The rows of the epochs it has not reached again
        are kept: Tune can stop a restored trial before it gets back there (a STOP it had queued
        for it before a resume), and those rows are still what the trial computed."""
        row = {c: report.get(c) for c in T.HISTORY_COLUMNS}
        row[T.TRIAL_ID] = tid
        if report.get(MID_EPOCH):
            self.partial.setdefault(tid, {})[float(report[EPOCH])] = row
        else:
            self.history.setdefault(tid, {})[int(report[EPOCH])] = row
            self._note_best(row[VAL_ACCURACY])

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Tune calls this only for a trial that ended: its function returned, or the scheduler
        # stopped it (an interrupted sweep leaves its trials unfinished, without this call).
        if trial.trial_id not in self.rows:
            self._finish(trial, self._final_status(trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        if not lost_for_good(trial):  # ended by Tune with retries left: the sweep runs it again
            self.owed.add(trial.trial_id)
        elif trial.trial_id not in self.rows:
            self._finish(trial, T.Status.ERROR)

    def on_experiment_end(self, trials, **info):
        with halting_when_full():
            self.write()

    # -- bookkeeping ------------------------------------------------------------------------------
    def _final_status(self, tid: str) -> str:
        if tid in self.diverged:
            return T.Status.DIVERGED
        if max(self.history.get(tid, {}), default=0) >= self.epochs:
            return T.Status.COMPLETED
        return T.Status.STOPPED_EARLY  # ended before its last epoch: the scheduler stopped it

    def _finish(self, trial, status: str):
        tid = trial.trial_id
        config = {k: trial.config[k] for k in T.HYPERPARAMETERS}
        history = list(self.history.get(tid, {}).values())
        partial = list(self.partial.get(tid, {}).values())
        session = open_session(self.run_dir)
        halving = session and session.decisions.get(self.rung_log)  # None: no halving, or ASHA
        row = T.summarise_trial(tid, config, status, history, self.nodes.get(tid),
                                self.threads.get(tid), partial,
                                stopped_at(halving, tid) if halving is not None else None)
        if self.rounds:
            row[T.ROUND] = self.round
        self.rows[tid] = row
        self.counts[status] += 1
        with halting_when_full():
            W.append_journal(self._journal, {T.TRIAL_ID: tid, "result": row, "history": history,
                                             "partial": partial})
            self._write_if_due()
        self.best_weights.finished(tid, row, trial.path)

    def _write_if_due(self):
        if time.monotonic() - self._last_write > self._period:
            self.write()

    def write(self):
        """Rewrite the three tables from memory (each atomically), then empty the journal."""
        t0 = time.monotonic()
        rows = [r for epochs in self.history.values() for r in epochs.values()]
        W.write_history(rows, self.run_dir / T.HISTORY_FILE, self._formatted[T.HISTORY_FILE])
        partial = [r for fractions in self.partial.values() for r in fractions.values()]
        if partial or (self.run_dir / T.PARTIAL_FILE).exists():
            W.write_history(partial, self.run_dir / T.PARTIAL_FILE, self._formatted[T.PARTIAL_FILE])
        W.write_results(list(self.rows.values()), self.run_dir / T.RESULTS_FILE,
                        self._formatted[T.RESULTS_FILE], self.rounds)
        if self._journal is not None:  # everything in it is in the tables now
            self._journal.truncate(0)
        self._last_write = time.monotonic()
        self._period = max(self.WRITE_EVERY_S, 19 * (self._last_write - t0))

    def close(self):
        if self._journal is not None:
            self._journal.close()
            self._journal = None

