"""The sweep: its scheduler, and the Tune experiment run (or resumed) into the run folder.

Leaves out the settings and the run folder (results/spec.py, results/runfolder.py), Ray start-up
and the cluster checks (cluster.py), argument parsing (run_search.py) and everything after the
sweep (results/).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlp_core.data import N_CLASSES, load_dataset, resolve_data_dir
from mlp_core.files import FULL, DiskFull
from mlp_core.train import EPOCH, VAL_ACCURACY
from results import settings, space
from results import table as T
from results.halving import RUNG_LOG
from results.runfolder import (LOCK_FILE, absolute_storage, check_run_folder,
                               create_run_folder, take_folders, tune_location)
from results.spec import SweepSpec

from .callbacks import RunRecorder
from .cluster import (check_cluster_code, check_storage, cluster_address, cluster_node_ips,
                      interrupts_kept, start_ray, stop_ray)
from .errors import SweepError, SweepHalted
from .progress import Progress
from .ray_api import BasicVariantGenerator, ray, tune
from .queues import QueuedASHA, QueuedFIFO
from .scheduler import HalvingScheduler
from .trainable import Shared, train_mlp


def local_cpus(spec: SweepSpec) -> int | None:
    """The CPUs a local Ray offers: all of them, or just enough for --max-concurrent trials, so
    that Ray itself never runs more (a limit on the trials Tune creates would deadlock a halving
    barrier: the paused trials count as created)."""
    if not spec.max_concurrent:
        return None
    return min(os.cpu_count() or 1, spec.max_concurrent * spec.cpus_per_trial)


def searcher_limit(spec: SweepSpec, started: bool) -> int:
    """--max-concurrent on a Ray this sweep did not start, as the searcher's limit on the trials
    alive at once (0: none): right for schedulers that never pause a trial."""
    return 0 if started or spec.scheduler == "halving" else spec.max_concurrent


def make_scheduler(spec: SweepSpec, n_trials: int, run_dir: Path | None = None):
    """The spec's early stopping: deterministic successive halving (its decisions logged in the
    run folder for a resume), Ray's own ASHA (rungs: the first of --rungs times powers of the
    reduction factor; timing-dependent, see README), or none."""
    if spec.scheduler == "none":
        return QueuedFIFO()
    if spec.scheduler == "asha":
        return QueuedASHA(time_attr=EPOCH, max_t=spec.epochs, grace_period=min(spec.rungs[0], spec.epochs),
                             reduction_factor=spec.reduction_factor)
    return HalvingScheduler(n_trials, spec.rungs, spec.epochs, spec.reduction_factor,
                            log_path=run_dir / RUNG_LOG if run_dir else None)


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


def run_sweep(spec: SweepSpec, run_dir: Path, resume: bool = False, verbose: bool = False,
              stream=None) -> SweepOutcome:
    """Run (or resume) the sweep into run_dir; returns when every trial has finished or the sweep
    was stopped (Ctrl-C)."""
    stream = stream or sys.stderr
    t0 = time.monotonic()
    # Everything that can fail on bad input fails here, before the run folder or Ray exist.
    spec.validate()
    spec.storage = absolute_storage(spec.storage)
    check_run_folder(run_dir, resume, spec.storage)
    data = load_checked_data(spec, resume)
    configs = space.shuffled(spec.configs(), spec.seed)
    storage_path, tune_name = tune_location(run_dir, spec.storage)
    if spec.max_concurrent and spec.scheduler == "halving" and (cluster_address(spec.address) or ray.is_initialized()):
        raise SweepError("--max-concurrent: with --scheduler halving it applies to a Ray this sweep "
                         "starts itself; on an existing cluster the trials use the CPUs it offers")
    with interrupts_kept() as interrupted:
        started = start_ray(spec.address, verbose, local_cpus(spec))
    try:
        if interrupted:  # a Ctrl-C that Python dropped while Ray started: stop before writing
            raise KeyboardInterrupt
        check_where(spec, storage_path, stream)  # before anything is written
        locks = claim_run_folder(spec, run_dir, resume, storage_path, tune_name)
        recorder = RunRecorder(run_dir, spec.epochs, spec.storage)
        progress = Progress(recorder, len(configs), stream=stream)
        print(f"sweep {run_dir}: {len(configs)} trials, ≤{spec.epochs} epochs each, "
              f"scheduler {spec.scheduler}, {len(data.X_train)} training images, "
              f"{at_a_time(spec, started)}" + (f" (resuming: {len(recorder.rows)} done)" if resume else ""),
              file=stream, flush=True)
        tuner = build_tuner(spec, data, configs, run_dir, f"{storage_path}/{tune_name}", resume,
                            [recorder, progress], searcher_limit(spec, started), verbose)
        del data  # in Ray's object store now: the driver's own copy is not needed while it runs
        disk_full = fit_until_full(tuner, verbose)
        # Tune's trials and their kept results are garbage now, much of it in reference cycles
        # that Python's collector would reach only later: freed here, the work after the sweep
        # (tables, plots, report) reuses their memory instead of adding to the driver's peak.
        del tuner
        gc.collect()
    finally:
        if started:
            stop_ray()
    if disk_full is not None:
        with contextlib.suppress(DiskFull):  # atomic: the tables as they were, or brought up to date
            recorder.write()
        recorder.close()
        raise disk_full
    recorder.write()
    recorder.close()
    finished = len(recorder.rows)
    return SweepOutcome(run_dir, len(configs), finished, finished < len(configs),
                        time.monotonic() - t0, recorder.peak_paused, locks)


def check_where(spec: SweepSpec, storage_path: str, stream) -> None:
    """The checks that need the cluster's nodes, so come after Ray's start: storage every node
    can reach, and (on a cluster, now that the nodes have the code) nodes that can run it."""
    check_storage(storage_path, cluster_node_ips(), "--storage" if spec.storage else "--out")
    if cluster_address(spec.address):
        nodes, sources = check_cluster_code("--address")
        print(f"cluster: {nodes} node(s) with CPUs, each running this project's sources "
              f"{sources}", file=stream, flush=True)


def at_a_time(spec: SweepSpec, started: bool) -> str:
    """"N trials at a time": the slots the cluster's CPUs give, within --max-concurrent."""
    slots = int(ray.cluster_resources().get("CPU", 0) // spec.cpus_per_trial)
    if spec.max_concurrent and not started:
        slots = min(slots, spec.max_concurrent)
    return f"{slots} trial{'s' if slots != 1 else ''} at a time"


def fit_until_full(tuner, verbose: bool) -> DiskFull | None:
    """tuner.fit(); a full disk stops it as a crash of the driver would (Tune's last experiment
    snapshot, the tables and the journal are each whole, so --resume goes on from there), and
    is returned."""
    try:
        fit_quietly(tuner, verbose)
    except SweepHalted as e:  # our callbacks' or scheduler's writes
        return e.cause
    except Exception as e:  # Tune's own writes: its experiment snapshot
        full = disk_full_in(e)
        if full is None:
            raise
        return full
    return None


def disk_full_in(e: BaseException) -> DiskFull | None:
    """The DiskFull that `e` is or wraps (its causes and contexts), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, DiskFull):
            return e
        if isinstance(e, OSError) and e.errno in FULL:
            return DiskFull(e.filename or "Ray Tune's experiment state", 0, e.errno)
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def load_checked_data(spec: SweepSpec, resume: bool):
    """The sweep's dataset, split by its seed; SweepError when the split leaves too few
    validation images, the batch outgrows the training set, or a resume finds other data.
    Records the data's folder and files' SHA-256 in `spec` for sweep.json."""
    data = load_dataset(spec.dataset, spec.data_dir, spec.val_fraction, spec.seed)
    if len(data.X_val) < N_CLASSES:
        raise SweepError(f"--val-fraction: {spec.val_fraction} holds out {len(data.X_val)} of "
                         f"{len(data.X_train) + len(data.X_val)} training images, fewer than the "
                         f"{N_CLASSES} classes: validation accuracy would mean nothing")
    if spec.batch_size > len(data.X_train):
        raise SweepError(f"--batch-size: {spec.batch_size} is larger than the training set "
                         f"({len(data.X_train)} images)")
    if resume and spec.dataset_files:
        changed = [r for r, f in data.files.items()
                   if spec.dataset_files.get(r, {}).get("sha256") != f["sha256"]]
        if changed:
            raise SweepError(f"--resume: the dataset differs from the one the sweep started with "
                             f"({', '.join(data.files[r]['path'] for r in changed)})")
    spec.data_dir = str(resolve_data_dir(spec.dataset, spec.data_dir))
    spec.dataset_files = data.files
    return data


def claim_run_folder(spec: SweepSpec, run_dir: Path, resume: bool, storage_path: str,
                     tune_name: str) -> list:
    """Create the run folder (a new sweep), take this driver's locks, write sweep.json (a new
    sweep); a new folder is removed again when its lock cannot be had. Returns the locks."""
    if not resume:
        create_run_folder(run_dir)
    try:
        locks = take_folders(run_dir, storage_path, tune_name, resume)
    except SweepError:
        if not resume:  # the folder this call just made, holding only the lock file
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()
        raise
    if not resume:
        T.write_json_atomic({**spec.to_json(), "created": _dt.datetime.now().isoformat(timespec="seconds")},
                            run_dir / T.SWEEP_FILE)
    return locks


def build_tuner(spec: SweepSpec, data, configs: list[dict], run_dir: Path, tune_path: str,
                resume: bool, callbacks: list, searcher_max: int, verbose: bool):
    """Tune's Tuner for the sweep, or the interrupted one restored from `tune_path`. The data
    and what every trial shares go once into Ray's object store (with_parameters); a trial's
    config is its grid point alone, one of a BasicVariantGenerator's, in the sweep's order."""
    shared = Shared(spec.train_values(), spec.cpus_per_trial, spec.report_fractions(),
                    spec.partial_val == "scaled",
                    # Ray's ASHA reads the epoch as its time attribute; ours read it unpacked
                    top=(EPOCH, VAL_ACCURACY) if spec.scheduler == "asha" else (VAL_ACCURACY,),
                    storage=tune_path)
    trainable = tune.with_parameters(
        tune.with_resources(train_mlp, {"cpu": spec.cpus_per_trial}),
        X_train=data.X_train, y_train=data.y_train, X_val=data.X_val, y_val=data.y_val,
        finished=callbacks[0].finished, shared=shared)
    if resume:
        return tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True)
    storage_path, _, tune_name = tune_path.rpartition("/")
    run_config = tune.RunConfig(
        name=tune_name, storage_path=storage_path,
        # every checkpoint kept while a trial runs; its weights dropped when it ends
        # (callbacks.drop_checkpoint_weights says why)
        failure_config=tune.FailureConfig(max_failures=3),
        callbacks=callbacks, verbose=2 if verbose else 0)
    return tune.Tuner(
        trainable,
        param_space={s.column: tune.choice(list(getattr(spec, s.name))) for s in settings.AXES},
        tune_config=tune.TuneConfig(
            metric=VAL_ACCURACY, mode="max", scheduler=make_scheduler(spec, len(configs), run_dir),
            search_alg=BasicVariantGenerator(points_to_evaluate=configs,
                                             max_concurrent=searcher_max),
            num_samples=len(configs), reuse_actors=True),
        run_config=run_config)


def fit_quietly(tuner, verbose: bool) -> None:
    """tuner.fit(), with Tune's logger at ERROR unless verbose (e.g. "failed to fetch metrics"
    for the per-trial logs turned off)."""
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    if not verbose:
        tune_logger.setLevel(logging.ERROR)
    try:
        tuner.fit()
    finally:
        tune_logger.setLevel(level)
