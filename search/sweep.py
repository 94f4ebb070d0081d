"""The sweep: its scheduler, and the Tune experiment run (or resumed) into the run folder.

Leaves out the settings and the run folder (results/sweep/spec.py, results/folder/runfolder.py), Ray start-up
and the cluster checks (cluster.py), argument parsing (run_search.py) and everything after the
sweep (results/).
"""
from __future__ import annotations

import contextlib
import functools
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlp_core.data import DATASETS, locate_files
from mlp_core.files import DiskFull
from mlp_core.tabular import BadData, Labelled
from mlp_core.train import EPOCH, VAL_ACCURACY
from results.folder.runfolder import absolute_storage, check_run_folder, tune_location
from results.sweep import edges, settings, space
from results.sweep.edges import describe, rung_log
from results.sweep.spec import SweepSpec

from .background import Background
from .callbacks import RunRecorder
from .checkpoints import PausedCheckpoints
from .cluster import (
    check_cluster_code,
    check_storage,
    cluster_address,
    cluster_node_ips,
    interrupts_kept,
    local_cpus,
    searcher_limit,
    slots,
    start_ray,
    stop_ray,
)
from .errors import MAX_FAILURES, SweepError
from .fitting import Silent, fit_retrying
from .prepare import claim_run_folder, load_checked_data
from .progress import AtTail, Progress
from .queues import QueuedASHA, QueuedFIFO
from .ray_api import BasicVariantGenerator, ray, tune
from .scheduler import HalvingScheduler
from .session import SweepSession
from .trainable import Shared, train_mlp


def make_scheduler(spec: SweepSpec, n_trials: int, run_dir: Path | None = None, round_: int = 0):
    """The spec's early stopping: deterministic successive halving (its decisions logged in the
    run folder for a resume), Ray's own ASHA (rungs: the first of --rungs times powers of the
    reduction factor; timing-dependent, see README), or none."""
    if spec.scheduler == "none":
        return QueuedFIFO()
    if spec.scheduler == "asha":
        return QueuedASHA(time_attr=EPOCH, max_t=spec.epochs, grace_period=min(spec.rungs[0], spec.epochs),
                             reduction_factor=spec.reduction_factor)
    return HalvingScheduler(n_trials, spec.rungs, spec.epochs, spec.reduction_factor,
                            log_path=run_dir / rung_log(round_) if run_dir else None)


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    run_dir: Path
    total: int
    finished: int
    interrupted: bool
    seconds: float
    # The most trials paused at a rung at once, and the bytes of the checkpoints they held then
    # (0 when the checkpoints are not on a local path).
    peak_paused: tuple = (0, 0)
    # The driver's locks on its folders: held while this outcome lives (the post-sweep work runs
    # under them), released when it is dropped or the process ends.
    locks: list = field(default_factory=list, repr=False)
    # Ray's stop, left to the caller (run_sweep's `stop_later`) when the sweep started Ray and
    # finished: the work after the sweep runs while Ray stops.
    stop_ray: Callable[[], None] | None = None
    # Trial failures (each said as it happened) and restores of the experiment (search/faults.py).
    faults: tuple = (0, 0)


def run_sweep(spec: SweepSpec, run_dir: Path, resume: bool = False, verbose: bool = False,
              stream=None, stop_later: bool = False, at_tail: Callable[[], None] | None = None,
              given: Labelled | None = None) -> SweepOutcome:
    """Run (or resume) the sweep into run_dir; returns when every trial has finished or the sweep
    was stopped (Ctrl-C). `at_tail` is called once fewer trials are left than slots (a core
    idles from then on); with `stop_later`, a finished sweep leaves a Ray it started running,
    for the caller to stop (SweepOutcome.stop_ray). `given`: the data as arrays (from Python),
    kept in the run folder."""
    # the progress line takes the stream as given: none, in a Jupyter kernel, is a display of its own
    progress_stream = stream
    stream = stream or sys.stderr
    t0 = time.monotonic()
    configs = checked_before_start(spec, run_dir, resume, arrays=given is not None)
    storage_path, tune_name = tune_location(run_dir, spec.storage)
    # The data is read, checked and split while Ray starts (BENCHMARKS.md, "The time around the trials").
    loading = Background(load_checked_data, spec, resume, given)
    with interrupts_kept() as interrupted:
        started = start_ray(spec.address, verbose, local_cpus(spec))
    handed_over = False
    try:
        if interrupted:  # a Ctrl-C that Python dropped while Ray started: stop before writing
            raise KeyboardInterrupt
        data = loading.result()
        check_where(spec, storage_path, stream)  # before anything is written
        locks = claim_run_folder(spec, run_dir, resume, storage_path, tune_name, given)
        recorder = RunRecorder(run_dir, spec.epochs, spec.storage, rounds=spec.extend_edges > 0)
        n_slots = slots(spec, started)
        print(f"sweep {run_dir}: {len(configs)} trials, ≤{spec.epochs} epochs each, "
              f"scheduler {spec.scheduler}, {describe_data(data)}, "
              f"{n_slots} trial{'s' if n_slots != 1 else ''} at a time"
              + (f" (resuming: {len(recorder.rows)} done)" if resume else ""), file=stream, flush=True)
        session = SweepSession(spec, run_dir, resume, recorder, PausedCheckpoints(run_dir), data=data,
                               searcher_max=searcher_limit(spec, started), verbose=verbose, stream=stream)
        data = None  # the session's only: fit_rounds drops it once no round needs it
        session.progress = progress = Progress(recorder, 0, progress_stream, paused=session.paused)
        session.tail = AtTail(recorder, 0, n_slots, at_tail)
        with session:
            disk_full, total, complete = fit_rounds(session, configs)
        handed_over = started and stop_later and complete and disk_full is None
    finally:
        if started and not handed_over:
            stop_ray()
    if disk_full is not None:
        with contextlib.suppress(DiskFull):  # atomic: the tables as they were, or brought up to date
            recorder.write()
        recorder.close()
        raise disk_full
    recorder.write()
    recorder.close()
    finished = len(recorder.rows)
    return SweepOutcome(run_dir, total, finished, not complete, time.monotonic() - t0,
                        session.paused.peak, locks, stop_ray if handed_over else None,
                        (progress.failures, progress.restores))


def describe_data(data) -> str:
    """The sweep's data in its opening line: 6400 training images, or rows, inputs and classes."""
    if data.scaling is None:  # MNIST's IDX files
        return f"{len(data.X_train)} training images"
    return (f"{data.source}: {len(data.X_train)} training rows of {data.n_inputs} features, "
            f"{data.n_classes} classes")


def checked_before_start(spec: SweepSpec, run_dir: Path, resume: bool, arrays: bool = False) -> list[dict]:
    """The sweep's grid points in its seeded order, once what can fail on bad input has failed,
    before the run folder or Ray exist (but for the data's contents, read while Ray starts)."""
    spec.validate()
    spec.storage = absolute_storage(spec.storage)
    check_run_folder(run_dir, resume, spec.storage)
    if spec.max_concurrent and spec.scheduler == "halving" and (cluster_address(spec.address) or ray.is_initialized()):
        raise SweepError("--max-concurrent: with --scheduler halving it applies to a Ray this sweep "
                         "starts itself; on an existing cluster the trials use the CPUs it offers")
    # The data's files are found (or downloaded) first, so that a wrong --data-dir or --data fails
    # before Ray starts
    if spec.dataset in DATASETS:
        locate_files(spec.dataset, spec.data_dir)
    elif spec.data and not arrays and not Path(spec.data).is_file():  # (arrays: written into the run folder)
        raise BadData(f"{spec.data}: file not found")
    return space.shuffled(spec.configs(), spec.seed)


def fit_rounds(session: SweepSession, configs: list[dict]):
    """Fit the grid's trials, then (--extend-edges) each round that extends it, one Tune
    experiment each, skipping those a resume finds complete. The session's data is dropped once
    it is in Ray's object store and no round will need it again. Returns (a full disk or None,
    the trials of the rounds run, whether every one finished)."""
    spec, recorder, progress = session.spec, session.recorder, session.progress
    round_, total, disk_full = 0, 0, None  # (one progress line for every round)
    while True:
        if round_:
            planned = plan_round(session, round_)
            if planned is None:
                break
            added, configs = planned
            print(f"round {round_} of --extend-edges: {describe(added)}: {len(configs)} more trials",
                  file=session.stream, flush=True)
        total = session.add_trials(len(configs))
        if not all_finished(configs, recorder):
            recorder.start_round(round_)
            storage_path, tune_name = tune_location(session.run_dir, spec.storage, round_)
            tune_path = f"{storage_path}/{tune_name}"
            again = session.resume if round_ == 0 else tune.Tuner.can_restore(tune_path)
            build = functools.partial(build_tuner, session, configs, tune_path, round_=round_)
            tuner = build(resume=again)
            if not spec.extend_edges:
                session.data = None  # in Ray's object store now: the driver's own copy is not needed
            disk_full = fit_retrying(tuner, functools.partial(build, resume=True), recorder, progress,
                                     session.verbose)
            gc.collect()  # the fit's trials and results, many in reference cycles (fit_retrying)
            if disk_full is not None or not all_finished(configs, recorder):
                return disk_full, total, False
        round_ += 1
        if round_ > spec.extend_edges:
            break
    return None, total, True


def all_finished(configs: list[dict], recorder: RunRecorder) -> bool:
    """Whether every one of these grid points has its row in the tables."""
    done = {settings.grid_key(r) for r in recorder.rows.values()}
    return all(settings.grid_key(c) in done for c in configs)


def plan_round(session: SweepSession, round_: int):
    """Round `round_`'s values and new grid points (edges.plan_round), from the best finished
    trial so far (the one the recorder keeps the weights of), in the sweep's seeded order."""
    recorder, spec = session.recorder, session.spec
    kept = recorder.best_weights.kept
    if kept is None:  # no trial with a finite value: no edge to follow
        return None
    best = recorder.rows[kept[1]]
    axes = {s.name: list(getattr(spec, s.name)) for s in settings.AXES}
    planned = edges.plan_round(session.run_dir, axes, round_, best, spec.max_hidden)
    return planned and (planned[0], space.shuffled(planned[1], spec.seed))


def check_where(spec: SweepSpec, storage_path: str, stream) -> None:
    """The checks that need the cluster's nodes, so come after Ray's start: storage every node
    can reach, and (on a cluster, now that the nodes have the code) nodes that can run it."""
    check_storage(storage_path, cluster_node_ips(), "--storage" if spec.storage else "--out")
    if cluster_address(spec.address):
        nodes, sources = check_cluster_code("--address")
        print(f"cluster: {nodes} node(s) with CPUs, each running this project's sources "
              f"{sources}", file=stream, flush=True)


def build_tuner(session: SweepSession, configs: list[dict], tune_path: str, resume: bool,
                round_: int = 0):
    """Tune's Tuner for the sweep, or the interrupted one restored from `tune_path`. The data
    and what every trial shares go once into Ray's object store (with_parameters); a trial's
    config is its grid point alone, one of a BasicVariantGenerator's, in the sweep's order.
    Where the driver no longer holds the data (a restore in the same process), it is read again,
    as --resume reads it."""
    spec = session.spec
    data = session.data if session.data is not None else load_checked_data(spec, True)
    shape = {"n_inputs": data.n_inputs, "n_classes": data.n_classes}  # the model follows the data
    shared = Shared({**spec.train_values(), **shape}, spec.cpus_per_trial, spec.report_fractions(),
                    spec.partial_val == "scaled",
                    # Ray's ASHA reads the epoch as its time attribute; ours read it unpacked
                    top=(EPOCH, VAL_ACCURACY) if spec.scheduler == "asha" else (VAL_ACCURACY,),
                    storage=tune_path)
    trainable = tune.with_parameters(
        tune.with_resources(train_mlp, {"cpu": spec.cpus_per_trial}),
        X_train=data.X_train, y_train=data.y_train, X_val=data.X_val, y_val=data.y_val,
        finished=session.recorder.finished, shared=shared)
    del data
    if resume:
        return tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True)
    storage_path, _, tune_name = tune_path.rpartition("/")
    run_config = tune.RunConfig(
        name=tune_name, storage_path=storage_path,
        # every checkpoint kept while a trial runs; its weights dropped when it ends
        # (checkpoints.drop_checkpoint_weights says why)
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        callbacks=session.callbacks(), verbose=2 if session.verbose else 0,
        # Tune's own reporter, in a Jupyter kernel, clears the cell's output as it starts (which
        # would take the progress line with it) and leaves an empty table there
        progress_reporter=None if session.verbose else Silent())
    return tune.Tuner(
        trainable,
        param_space={s.column: tune.choice(list(getattr(spec, s.name))) for s in settings.AXES},
        tune_config=tune.TuneConfig(
            metric=VAL_ACCURACY, mode="max", scheduler=make_scheduler(spec, len(configs), session.run_dir, round_),
            search_alg=BasicVariantGenerator(points_to_evaluate=configs,
                                             max_concurrent=session.searcher_max),
            num_samples=len(configs), reuse_actors=True),
        run_config=run_config)
