"""Sweeps from Python, for scripts and notebooks: settings checked exactly as the command line
checks them, the sweep run into the same run folder, and the finished run handed back with its
tables as pandas DataFrames (results.run.Run). The command line is a thin layer over this.

Leaves out argument parsing (run_search.py) and what a finished run holds (results/run.py).
"""
from __future__ import annotations

import numbers
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlp_core.files import size_text
from mlp_core.tabular import Labelled, flat_features
from results.columns import DATA_FILE, RAY_LOG
from results.errors import SweepError
from results.folder.runfolder import absolute_storage, default_name, run_folder
from results.folder.table import RESULTS_FILE, SWEEP_FILE, RunError, load_sweep
from results.model.plot_process import PlotProcess
from results.sweep.settings import BY_NAME, FROM_FILE, PLACEMENT, SWEEP, shown_value
from results.sweep.settings import DEFAULTS as DECLARED_DEFAULTS
from results.sweep.spec import SweepSpec

from . import rayenv
from .background import Background
from .errors import MAX_FAILURES, SweepStalled  # noqa: F401 (SweepStalled: part of this module's API)

if TYPE_CHECKING:
    from results.run import Run

# The settings a sweep is made of, with their defaults, and those of where and how it runs (not
# part of what a resumed sweep must match): declared in settings.py, named as the command-line
# flags (--batch-size is batch_size).
DEFAULTS = {k: DECLARED_DEFAULTS[k] for k in SWEEP}
# (PLACEMENT, imported above, is part of this module's API too)


class SweepInterrupted(Exception):
    """The sweep stopped before every trial finished (Ctrl-C); `run` holds what was done."""

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run


def _plain(value):
    """NumPy scalars, arrays and lists as Python's, so that sweep.json can be written (and
    compared)."""
    if hasattr(value, "ndim") and value.ndim > 0:  # a NumPy array or a pandas Series
        value = list(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _data_source(values: dict) -> dict:
    """--data as the settings it stands for: a folder is --data-dir (IDX files); a file is
    --dataset file with its absolute path. Checked: a file or folder that is there, and no
    other data named beside it."""
    data = values.get("data")
    if data is None:
        return values
    path = Path(data).expanduser()
    if path.is_dir():
        if "data_dir" in values:
            raise SweepError(f"--data: {data} is a folder, as --data-dir: give one of them")
        return {**{k: v for k, v in values.items() if k != "data"}, "data_dir": str(path)}
    if not path.is_file():
        raise SweepError(f"--data: {data}: no such file or folder")
    if values.get("dataset", FROM_FILE) != FROM_FILE:
        raise SweepError(f"--data: {data} names the data; --dataset {values['dataset']} names other "
                         f"data: give one of them")
    return {**values, "dataset": FROM_FILE, "data": str(path.resolve())}


def settings(out: str | Path = "runs", name: str | None = None, resume: bool = False,
             **values) -> tuple[SweepSpec, Path]:
    """The sweep's settings and its run folder OUT/NAME, every value checked: SweepError naming
    the flag (e.g. "--lr: 0 must be positive"). Values are those of DEFAULTS and PLACEMENT;
    grid values are lists of numbers. With `resume`, the settings are those the sweep in OUT/NAME
    started with, and a value given must equal its own."""
    unknown = sorted(set(values) - set(DEFAULTS) - set(PLACEMENT))
    if unknown:
        raise SweepError(f"unknown setting(s) {', '.join(unknown)}; choose from "
                         f"{', '.join([*DEFAULTS, *PLACEMENT])}")
    values = _data_source({k: _plain(v) for k, v in values.items() if v is not None})
    if resume and not name:
        raise SweepError("--resume needs --name: the run folder OUT/NAME to continue")
    run_dir = run_folder(str(out), name or default_name())
    given = {k: v for k, v in values.items() if k in DEFAULTS}
    if resume:
        try:
            spec = SweepSpec.from_json(load_sweep(run_dir))
        except RunError as e:
            raise SweepError(f"--resume: {e}") from None
        for k, v in given.items():
            if getattr(spec, k) != v:
                raise SweepError(f"{BY_NAME[k].flag}: {shown_value(v)} differs from the "
                                 f"sweep being resumed ({shown_value(getattr(spec, k))}); "
                                 f"leave it out to resume")
        storage = absolute_storage(values.get("storage"))
        if storage and storage != spec.storage:
            raise SweepError(f"--storage: {values['storage']} differs from the sweep being resumed "
                             f"({spec.storage}); leave it out to resume")
        for k in PLACEMENT:
            if k in values and k != "storage":
                setattr(spec, k, values[k])
    else:
        spec = SweepSpec(**{**DEFAULTS, **values})
    spec.validate()
    return spec, run_dir


def run(out: str | Path = "runs", name: str | None = None, resume: bool = False,
        retrain: bool = True, verbose: bool = False, stream=None, log=None, *, X=None, y=None,
        X_test=None, y_test=None, mlflow: str | bool | None = None, tensorboard: bool = False,
        **values) -> Run:
    """Run (or resume) a sweep, then draw its search plots, export its best trial (unless
    `retrain` is False) and write its report; returns the finished run, whose `results` is the
    table as a DataFrame. Raises SweepError for a bad setting (nothing started or written)
    and SweepInterrupted when the sweep stopped early (Ctrl-C), SweepStalled when it could not
    go on (no trial could run, even after restoring it); resume either with `resume=True`.
    Progress goes to `stream` (default stderr) as one line, updated in place in a terminal and
    in a Jupyter cell; `log` (default: nothing) gets the retraining's messages.
    The data: `dataset`/`data` (as the command line's), or arrays: X (N, D) features (uint8
    images (N, H, W) too) and y (N,) labels of any kind, optionally X_test and y_test; they
    are kept in the run folder (data.npz), so a resume or `retrain` needs only the folder.
    Trackers: `mlflow` (True, or a tracking URI: logged live, beside the sweep; True uses
    $MLFLOW_TRACKING_URI or MLflow's own default) and `tensorboard` (event files under the run
    folder), README's "Experiment trackers"."""
    given = _given_arrays(X, y, X_test, y_test, values, resume)
    spec, run_dir = settings(out, name, resume, **values)
    trackers = Trackers.check(mlflow, tensorboard, run_dir)
    if given is not None:
        spec.dataset, spec.data = FROM_FILE, str(run_dir / DATA_FILE)  # written there before sweep.json
    # Ray reads its environment when it is imported (search/ray_api.py): set for this sweep's
    # address (a local run's, or a cluster's) before the sweep, and so Ray, is imported.
    try:
        rayenv.configure(spec.address)
    except rayenv.WrongRayEnvironment as e:
        raise SweepError(f"--address: {e}") from None
    def say(message: str) -> None:
        print(message, file=stream or sys.stderr, flush=True)

    with PlotProcess() as plots:  # started at the sweep's tail, on the core it leaves idle
        trackers.start(say)
        complete = False
        try:
            done = _run(spec, run_dir, resume, retrain, verbose, stream, log, plots, given)
            complete = True
            return done
        finally:
            trackers.end(say, complete)


class Trackers:
    """The experiment trackers a sweep logs to (search/tracking.py, results/trackers/)."""

    def __init__(self, mlflow_uri: str | None, mlflow: bool, tensorboard: bool, run_dir: Path):
        self.mlflow_uri, self.mlflow, self.tensorboard, self.run_dir = mlflow_uri, mlflow, tensorboard, run_dir
        self.sync = None

    @classmethod
    def check(cls, mlflow, tensorboard: bool, run_dir: Path) -> Trackers:
        """Checked before anything starts: the packages they need are there."""
        import importlib.util
        if mlflow and importlib.util.find_spec("mlflow") is None:
            raise SweepError("--mlflow needs MLflow: pip install -e '.[mlflow]'")
        if tensorboard and importlib.util.find_spec("tensorboardX") is None:
            raise SweepError("--tensorboard needs tensorboardX: pip install -e '.[tensorboard]'")
        uri = mlflow if isinstance(mlflow, str) else None
        return cls(uri, bool(mlflow), bool(tensorboard), run_dir)

    def later(self) -> str:
        return f"mlp-sweep mlflow {self.run_dir}" + (f" --uri {self.mlflow_uri}" if self.mlflow_uri else "")

    def start(self, say) -> None:
        if self.mlflow:
            from .tracking import MlflowSync
            self.sync = MlflowSync(self.run_dir, self.mlflow_uri, say, self.later()).start()

    def end(self, say, complete: bool) -> None:
        """The closing lines: what was logged where. An interrupted sweep logs no more (a
        Ctrl-C should stop at once): the command that logs it later is said instead."""
        if self.sync is not None and complete:
            say(self.sync.finish())
        elif self.sync is not None:  # no thread left behind, in a notebook's kernel either
            self.sync.stop(wait_s=15)
            say(f"mlflow: the finished trials so far are logged by: {self.later()}")
        if self.tensorboard and (self.run_dir / SWEEP_FILE).is_file():
            from results.trackers.mlflow_log import TrackerError
            from results.trackers.tensorboard_log import write_events
            try:
                out, n = write_events(self.run_dir)
                say(f"tensorboard: {n} new trial{'s' if n != 1 else ''} in {out}: tensorboard --logdir {out}")
            except (TrackerError, OSError) as e:
                say(f"warning: tensorboard: {e}")


def _given_arrays(X, y, X_test, y_test, values: dict, resume: bool) -> Labelled | None:
    """Arrays handed to run() as the data (None: the settings name it)."""
    if X is None and y is None and X_test is None and y_test is None:
        return None
    if resume:
        raise SweepError("X, y: a resumed sweep reads the arrays it was given from its run folder; leave them out")
    if X is None or y is None:
        raise SweepError("X and y: give both, the features and their labels")
    if (X_test is None) != (y_test is None):
        raise SweepError("X_test and y_test: give both or neither")
    for k in ("data", "data_dir", "label", "features", "drop"):
        if values.get(k):
            raise SweepError(f"X, y: the data is given as arrays; leave out {BY_NAME[k].flag}")
    if values.get("dataset", FROM_FILE) != FROM_FILE:
        raise SweepError(f"X, y: the data is given as arrays; leave out --dataset {values['dataset']}")
    source = "arrays given to api.run"
    arrays = [np.asarray(a) for a in (X, y, X_test, y_test) if a is not None]
    arrays = [a.astype(str) if a.dtype == object else a for a in arrays]  # text labels, never pickled
    X, y, *test = arrays
    return Labelled(flat_features(X, f"{source}: X"), y, source,
                    flat_features(test[0], f"{source}: X_test") if test else None, test[1] if test else None,
                    [f"x{j}" for j in range(X.reshape(len(X), -1).shape[1])])


def _run(spec: SweepSpec, run_dir: Path, resume: bool, retrain: bool, verbose: bool, stream, log,
         plots: PlotProcess, given: Labelled | None = None) -> Run:
    # Imported here, not above: matplotlib and Pillow are not needed while the sweep runs.
    from results.run import CHECKPOINTS, Run, finish

    from .sweep import run_sweep

    try:
        outcome = run_sweep(spec, run_dir, resume=resume, verbose=verbose, stream=stream,
                            stop_later=True, at_tail=plots.start, given=given)
    except KeyboardInterrupt:
        if not (run_dir / SWEEP_FILE).is_file():
            raise  # nothing was written: nothing to resume
        raise SweepInterrupted(f"interrupted; results so far are in {run_dir}", Run(run_dir)) from None
    if outcome.interrupted:
        raise SweepInterrupted(f"stopped with {outcome.finished} of {outcome.total} trials "
                               f"finished; results so far are in {run_dir}", Run(run_dir))
    say = stream or sys.stderr
    print(f"sweep finished in {outcome.seconds:.1f} s: {run_dir / RESULTS_FILE}", file=say)
    failures, restores = outcome.faults
    if failures:
        print(f"{failures} trial failure{'s' if failures != 1 else ''} (a worker's or node's death, or an error); "
              f"a trial is retried up to {MAX_FAILURES} failures as Tune counts them"
              + (f"; the experiment was restored {restores} time{'s' if restores != 1 else ''}" if restores else "")
              + f"; Ray's own reports are in {run_dir / RAY_LOG}", file=say)
    paused, held = outcome.peak_paused
    if paused:  # early stopping's barriers: what they cost in checkpoints
        print(f"at most {paused} trials waited paused at a rung at once"
              + (f", holding {size_text(held)} of checkpoints" if held else ""), file=say, flush=True)
    done = Run(run_dir)
    # the chosen trial's own weights, not a second training (results/model/from_checkpoints.py),
    # exported while Ray stops
    finishing = Background(finish, run_dir, CHECKPOINTS if retrain else None, log=log, plots=plots)
    if outcome.stop_ray:
        outcome.stop_ray()
    done.report, done.exported = finishing.result()
    return done
