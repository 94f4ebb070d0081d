"""Driver-side Tune callbacks: the run's CSV tables kept current, and a compact progress line.

Leaves out the trials themselves. Tables are rewritten atomically whenever a trial ends, so a
crash of the driver loses at most the trials in flight; history is keyed by (trial, epoch), so a
trial replayed from an older checkpoint after a resume never records an epoch twice.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pandas as pd

from . import rayenv

rayenv.configure()  # before Ray is imported: it reads some of this once

from ray.tune import Callback  # noqa: E402

from mlp_core.train import DIVERGED, EPOCH, PARTIAL, VAL_ACCURACY  # noqa: E402
from results import table as T  # noqa: E402

from .trainable import STATE_FILE  # noqa: E402


# Tune pickles the RunConfig (callbacks included) into tuner.pkl and, on a resume, hands back
# those copies. Ours pickle as a reference to the live instance of this driver, so a resumed
# sweep reports to the recorder that loaded the run's tables, not to an empty stale copy.
_LIVE: dict[tuple[str, str], Callback] = {}


def _live(kind: str, run_dir: str) -> Callback:
    try:
        return _LIVE[(kind, run_dir)]
    except KeyError:
        raise RuntimeError(f"no live {kind} for {run_dir}: resume through run_sweep") from None


class RunRecorder(Callback):
    WRITE_EVERY_S = 10.0

    def __reduce__(self):
        return _live, ("recorder", str(self.run_dir))

    def __init__(self, run_dir: Path, epochs: int):
        self.run_dir = Path(run_dir)
        self.epochs = epochs
        self.history: dict[str, dict[int, dict]] = {}  # trial id -> epoch -> history row
        self.partial: dict[str, dict[float, dict]] = {}  # trial id -> fraction -> row (first epoch)
        self.rows: dict[str, dict] = {}  # finished trials only
        self.nodes: dict[str, str] = {}
        self.threads: dict[str, int] = {}
        self.diverged: set[str] = set()
        self.running: set[str] = set()
        self._last_write = time.monotonic()
        # Each table's rows as already formatted for its CSV. A stored row is never changed (a
        # new report stores a new dict), so a rewrite formats only the rows new since the last.
        self._formatted: dict[str, dict] = {T.HISTORY_FILE: {}, T.PARTIAL_FILE: {}, T.RESULTS_FILE: {}}
        self._load_existing()
        _LIVE[("recorder", str(self.run_dir))] = self

    # -- state from an earlier, interrupted driver ----------------------------------------------
    def _load_existing(self):
        if (self.run_dir / T.HISTORY_FILE).exists():
            for r in T.load_history(self.run_dir).to_dict("records"):
                self.history.setdefault(str(r[T.TRIAL_ID]), {})[int(r[EPOCH])] = r
        for r in T.load_partial(self.run_dir).to_dict("records"):
            self.partial.setdefault(str(r[T.TRIAL_ID]), {})[float(r[EPOCH])] = r
        if (self.run_dir / T.RESULTS_FILE).exists():
            for r in T.load_results(self.run_dir).to_dict("records"):
                if r[T.STATUS] != T.ERROR:  # a resume retries errored trials
                    self.rows[str(r[T.TRIAL_ID])] = r

    @property
    def finished(self) -> frozenset:
        return frozenset(self.rows)

    # -- Tune hooks -----------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = trial.trial_id
        if tid in self.rows or EPOCH not in result:
            return
        self.nodes[tid] = result.get(T.NODE_ID, "")
        self.threads[tid] = result.get(T.BLAS_THREADS)
        row = {c: result.get(c) for c in T.HISTORY_COLUMNS}
        row[T.TRIAL_ID] = tid
        # A trial restored from an older checkpoint replays epochs: later ones recorded before
        # belong to the abandoned attempt. A report from inside the first epoch means the trial
        # started from scratch, so every epoch recorded before is abandoned.
        epochs = self.history.setdefault(tid, {})
        if result.get(PARTIAL):
            epoch = float(result[EPOCH])
            epochs.clear()
            self.partial.setdefault(tid, {})[epoch] = row
        else:
            epoch = int(result[EPOCH])
            for later in [e for e in epochs if e > epoch]:
                del epochs[later]
            epochs[epoch] = row
        if result.get(DIVERGED):
            self.diverged.add(tid)
        if time.monotonic() - self._last_write > self.WRITE_EVERY_S:
            self.write()  # also between trial ends, so long trials' epochs reach the disk

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Tune calls this only for a trial that ended: its function returned, or the scheduler
        # stopped it (an interrupted sweep leaves its trials unfinished, without this call).
        self.running.discard(trial.trial_id)
        if trial.trial_id not in self.rows:
            self._finish(trial, self._final_status(trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        if trial.trial_id not in self.rows:
            self._finish(trial, T.ERROR)

    def on_experiment_end(self, trials, **info):
        self.write()

    # -- bookkeeping ------------------------------------------------------------------------------
    def _final_status(self, tid: str) -> str:
        if tid in self.diverged:
            return T.DIVERGED
        if max(self.history.get(tid, {}), default=0) >= self.epochs:
            return T.COMPLETED
        return T.STOPPED_EARLY  # ended before its last epoch: the scheduler stopped it

    def _finish(self, trial, status: str):
        tid = trial.trial_id
        config = {k: trial.config[k] for k in T.HYPERPARAMETERS}
        hist = pd.DataFrame(list(self.history.get(tid, {}).values()), columns=T.HISTORY_COLUMNS)
        partial = pd.DataFrame(list(self.partial.get(tid, {}).values()), columns=T.HISTORY_COLUMNS)
        self.rows[tid] = T.summarise_trial(tid, config, status, hist, self.nodes.get(tid),
                                           self.threads.get(tid), partial)
        self.write()
        drop_checkpoint_weights(trial)

    def write(self):
        self._last_write = time.monotonic()
        rows = [r for epochs in self.history.values() for r in epochs.values()]
        T.write_history(rows, self.run_dir / T.HISTORY_FILE, self._formatted[T.HISTORY_FILE])
        partial = [r for fractions in self.partial.values() for r in fractions.values()]
        if partial or (self.run_dir / T.PARTIAL_FILE).exists():
            T.write_history(partial, self.run_dir / T.PARTIAL_FILE, self._formatted[T.PARTIAL_FILE])
        T.write_results(list(self.rows.values()), self.run_dir / T.RESULTS_FILE,
                        self._formatted[T.RESULTS_FILE])


def drop_checkpoint_weights(trial) -> None:
    """Free a finished trial's checkpoint weights, keeping the (now tiny) checkpoint folders.

    Tune keeps every checkpoint (no num_to_keep): with num_to_keep, a checkpoint named by the last
    experiment snapshot can be deleted before the next snapshot lands, and a resume after the
    driver is killed then fails to restore that trial. A finished trial is never trained again
    (it is in results.csv), so its weights can go; its folders stay so that a stale snapshot
    still restores and the trial returns at once. Local storage only; remote storage keeps all."""
    path = Path(trial.path or "")
    if trial.path and path.is_dir():
        for state in path.glob(f"checkpoint_*/{STATE_FILE}"):
            state.unlink(missing_ok=True)


class Progress(Callback):
    """One line: trials done / running / stopped early / diverged, best so far, elapsed, ETA."""

    def __init__(self, recorder: RunRecorder, total: int, stream=None, every_s: float = 2.0,
                 display=None):
        """`display`: an object with update(text), such as IPython's display handle; without
        one, a Jupyter kernel gets one of its own (the line is updated in place in the cell,
        with no carriage returns), a terminal gets the line rewritten in place, and anything
        else a new line every 30 s."""
        self.recorder = recorder
        self.total = total
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.display = display if display is not None else (notebook_display() if stream is None else None)
        self.tty = self.display is None and getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.monotonic()
        self.done_at_start = len(recorder.rows)
        self._last = 0.0
        _LIVE[("progress", str(recorder.run_dir))] = self

    def __reduce__(self):
        return _live, ("progress", str(self.recorder.run_dir))

    def line(self) -> str:
        rows = list(self.recorder.rows.values())
        done = len(rows)
        stopped = sum(r[T.STATUS] == T.STOPPED_EARLY for r in rows)
        diverged = sum(r[T.STATUS] == T.DIVERGED for r in rows)
        errors = sum(r[T.STATUS] == T.ERROR for r in rows)
        best = max((r[VAL_ACCURACY] for epochs in self.recorder.history.values()
                    for r in epochs.values() if isinstance(r[VAL_ACCURACY], float) and math.isfinite(r[VAL_ACCURACY])),
                   default=None)
        elapsed = time.monotonic() - self.t0
        new = done - self.done_at_start
        eta = f"{_hms(elapsed / new * (self.total - done))}" if new > 0 and done < self.total else "-"
        parts = [f"trials {done}/{self.total} done", f"{len(self.recorder.running)} running",
                 f"{stopped} stopped early", f"{diverged} diverged"]
        if errors:
            parts.append(f"{errors} errors")
        text = ", ".join(parts)
        if best is not None:
            text += f" | best val_accuracy {best:.4f}"
        return f"{text} | elapsed {_hms(elapsed)}, ETA {eta}"

    def _emit(self, force=False):
        now = time.monotonic()
        in_place = self.tty or self.display is not None
        if not force and now - self._last < (self.every_s if in_place else 30.0):
            return
        self._last = now
        if self.display is not None:
            self.display.update(self.line())
            return
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def on_step_begin(self, iteration, trials, **info):
        self._emit()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._emit(force=self.tty)

    def on_experiment_end(self, trials, **info):
        self._emit(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def notebook_display():
    """An IPython display handle when this runs in a Jupyter kernel, else None."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "kernel"):
        return None
    from IPython.display import display
    return display("", display_id=True)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
