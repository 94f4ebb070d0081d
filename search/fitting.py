"""Tuner.fit as a sweep runs it: quietly (the progress line says what goes on), through a full
disk (stopped as a crash would stop it, for --resume), and again from Tune's snapshot while
trials are owed a retry or the sweep could not move (faults.py), until it is done or stalled.

Leaves out building the Tuner (sweep.py).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from mlp_core.files import DiskFull
from results.columns import RAY_LOG

from .callbacks import RunRecorder
from .errors import SweepHalted, SweepStalled, disk_full_in
from .faults import SweepIdle
from .progress import Progress
from .ray_api import ProgressReporter


def fit_retrying(tuner, restored: Callable, recorder: RunRecorder, progress: Progress,
                 verbose: bool) -> DiskFull | None:
    """fit_until_full(tuner), then again from the experiment's snapshot (`restored()`, Tune's
    own resume) while trials are owed a retry (faults.lost_for_good) or the sweep ended the fit
    idle (SweepIdle), as long as each restore moves the sweep on; else SweepStalled."""
    last = None
    while True:
        try:
            disk_full = fit_until_full(tuner, verbose, recorder.run_dir / RAY_LOG)
            owed = sorted(recorder.owed - set(recorder.rows))
            if disk_full is not None or not owed:
                return disk_full
            why, mark = f"Tune ended {len(owed)} trial(s) with retries left", ("ended", len(recorder.rows))
        except SweepIdle as idle:
            why, mark = str(idle), idle.progress
        if mark == last:  # the last restore did not help (the tables are written: Tune's cleanup ran)
            raise SweepStalled(f"the sweep cannot go on: {why}")
        last = mark
        progress.restores += 1
        progress.say(f"{why}: restoring the experiment to run them again")
        # Tune's trials and their kept results are garbage now, much of it in reference cycles
        # that Python's collector would reach only later: freed here, the work after the sweep
        # (or the restored experiment) reuses their memory instead of adding to the driver's peak.
        del tuner
        gc.collect()
        tuner = restored()


def fit_until_full(tuner, verbose: bool, log_path: Path) -> DiskFull | None:
    """tuner.fit(); a full disk stops it as a crash of the driver would (Tune's last experiment
    snapshot, the tables and the journal are each whole, so --resume goes on from there), and
    is returned."""
    try:
        fit_quietly(tuner, verbose, log_path)
    except SweepHalted as e:  # our callbacks' or scheduler's writes
        return e.cause
    except Exception as e:  # Tune's own writes: its experiment snapshot
        full = disk_full_in(e)
        if full is None:
            raise
        return full
    return None


def fit_quietly(tuner, verbose: bool, log_path: Path) -> None:
    """tuner.fit(), with what Ray and Tune say of failing trials (their tracebacks, the raylet's
    notices of dead workers and nodes) in the log at `log_path` and, unless verbose, not on the terminal,
    where the progress line says each failure in one line (progress.py). Tune's other messages
    reach the terminal from ERROR up unless verbose (e.g. not "failed to fetch metrics" for the
    per-trial logs turned off), and the log from WARNING up."""
    tune_logger = logging.getLogger("ray.tune")
    saved = tune_logger.level, tune_logger.propagate
    log = logging.FileHandler(log_path, encoding="utf-8", delay=True)  # no file until there is something
    log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    if not verbose:
        console.setLevel(logging.ERROR)
        console.addFilter(lambda record: not record.getMessage().startswith(TRIAL_FAILED))
    if not verbose:
        tune_logger.setLevel(logging.WARNING)
    tune_logger.propagate = False  # Ray's own handler on "ray" would print it all again
    tune_logger.addHandler(log)
    tune_logger.addHandler(console)
    # Tune puts in its own SIGINT handler for the fit and leaves it there after a fit that was not
    # interrupted: the next Ctrl-C (in a notebook, the next cell's) would only be logged
    main = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main else None
    try:
        with contextlib.redirect_stdout(Diverted(sys.stdout, log_path, verbose)):
            tuner.fit()
    finally:
        if main and sigint is not None:
            signal.signal(signal.SIGINT, sigint)
        tune_logger.removeHandler(log)
        tune_logger.removeHandler(console)
        log.close()
        tune_logger.setLevel(saved[0])
        tune_logger.propagate = saved[1]


# How Tune's controller begins its message for a trial that failed (the traceback follows).
TRIAL_FAILED = "Trial task failed"
# How Ray marks what a raylet says to the driver (a worker died, a node was marked dead, the
# raylet's own state dump when it is killed), which the driver prints on stdout whatever the
# logging settings (ray._private.worker.listen_error_messages, print_worker_logs).
RAYLET = "(raylet)"


class Diverted:
    """stdout, but for what raylets say of dead workers and nodes, which goes to the log (and,
    when verbose, to stdout as well)."""

    def __init__(self, stream, log_path: Path, verbose: bool):
        self._stream, self._log_path, self._verbose = stream, log_path, verbose

    def write(self, text: str) -> int:
        if RAYLET in text:
            with open(self._log_path, "a", encoding="utf-8") as log:
                log.write(text if text.endswith("\n") else text + "\n")
            if not self._verbose:
                return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Silent(ProgressReporter):
    """No report from Tune itself: the progress line (progress.py) says what is going on."""

    def should_report(self, trials, done: bool = False) -> bool:
        return False

    def report(self, trials, done: bool, *sys_info) -> None:
        pass
