"""The Ray Tune trainable: one configuration trained epoch by epoch, reported and checkpointed.

Leaves out scheduling and result files (scheduler.py, callbacks.py). Reads no file: the arrays arrive
through the object store (tune.with_parameters), so a trial can run on any node. Imports only
NumPy, threadpoolctl, Ray, mlp_core and the run folder's names (results.columns): what a
cluster's node needs besides Python.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from mlp_core.files import FULL, DiskFull
from mlp_core.model import UNREADABLE, read_state
from mlp_core.train import DIVERGED, EPOCH, VAL_ACCURACY, TrainConfig, Trainer, train
from results.columns import BLAS_THREADS, ENDED_AT, NODE_ID, STATE_FILE

from .ray_api import ray, tune


@dataclass(frozen=True)
class Shared:
    """What every trial of a sweep shares, sent once through tune.with_parameters rather than in
    each trial's config: Tune copies a trial's config into every result it keeps in memory and
    in its snapshots (BENCHMARKS.md, "Per-trial overhead"). A trial's config is its grid point alone."""
    train: dict  # TrainConfig's fields set by the sweep's settings (settings.train_values)
    cpus: int = 1  # CPUs, and so BLAS threads, per trial
    # Fractions of the first epoch at which a trial also reports (the rungs below one epoch).
    report_fractions: tuple = ()
    # True: a report inside the first epoch validates on the same fraction of the validation set.
    scaled_partial_val: bool = False
    top: tuple = (EPOCH, VAL_ACCURACY)  # the report's keys Tune sees as numbers (packed)
    storage: str = ""  # the experiment's folder, where Tune keeps the checkpoints: named when full


# A report holds what the scheduler reads as it is (VAL_ACCURACY; also EPOCH for Ray's ASHA, its
# time attribute) and everything else as one JSON text under DETAILS, which the driver unpacks
# (`unpacked`): Tune keeps, for every trial and every numeric key of its reports, a running
# analysis (min, max, mean, the last 5 and 10 values) in memory and in each experiment snapshot,
# which at many trials is most of the driver's memory (BENCHMARKS.md, "Per-trial overhead").
DETAILS = "details"
# A detail of the first report after a resume whose checkpoint could not be read: what happened.
RESTORE_NOTE = "restore_note"
# A report holding only this detail: the trial could not write its checkpoint, the disk is full.
DISK_FULL = "disk_full"
# A detail of the report a restored trial replays: its reports before that one, kept in each
# checkpoint. A driver that died before it wrote them to its tables (SIGKILL, or Ray's processes
# ended under it) would otherwise lose them: the trial restarts from its newest checkpoint only.
EARLIER = "earlier"


def packed(metrics: dict, top: tuple = (EPOCH, VAL_ACCURACY)) -> dict:
    """A report for Tune: the keys `top` as they are, the rest as JSON text under DETAILS."""
    return {**{k: metrics[k] for k in top},
            DETAILS: json.dumps({k: v for k, v in metrics.items() if k not in top})}


def unpacked(result: dict) -> dict:
    """A report as the trial made it (Tune's own keys kept alongside)."""
    if DETAILS not in result:
        return result
    return {**result, **json.loads(result[DETAILS])}


def blas_threads() -> int:
    """The largest thread count any loaded BLAS/OpenMP pool would use right now."""
    return max((p["num_threads"] for p in threadpool_info()), default=1)


def restore(checkpoint, config: TrainConfig) -> tuple[Trainer | None, dict | None, list, str | None]:
    """The trainer saved in a trial's Tune checkpoint (tune.get_checkpoint()), the metrics of
    its last report and those before it, and a note when that checkpoint could not be read (cut
    short, or another file in its place): the trial then goes on from its newest readable earlier
    checkpoint, or starts afresh. Training is seeded, so either way it reports what it would have."""
    if checkpoint is None:
        return None, None, [], None
    with checkpoint.as_directory() as d:
        path = os.path.join(d, STATE_FILE)
        if not os.path.lexists(path):  # weights dropped when the trial finished: start afresh
            return None, None, [], None
        try:
            return (*_load_state(config, path), None)
        except UNREADABLE as e:
            note = f"its checkpoint {os.path.basename(checkpoint.path)} could not be read ({_reason(e)})"
    for earlier in _earlier_checkpoints(checkpoint):
        try:
            return (*_load_state(config, os.path.join(earlier, STATE_FILE)), f"{note}; went on "
                    f"from {os.path.basename(earlier)}")
        except UNREADABLE:
            continue
    return None, None, [], f"{note}; started again from scratch"


def save_state(path: str, trainer: Trainer, metrics: dict, earlier: list = ()) -> None:
    """A checkpoint's state file: the trainer's state, the report it was saved with and the
    trial's reports before that one."""
    np.savez(path, **trainer.state_dict(), last_metrics=np.array(json.dumps(metrics)),
             earlier_metrics=np.array(json.dumps(list(earlier))))


def _load_state(config: TrainConfig, path: str) -> tuple[Trainer, dict | None, list]:
    state = read_state(path)
    h, d, c = config.hidden_size, config.n_inputs, config.n_classes
    for name, shape in (("W1", (d, h)), ("b1", (h,)), ("W2", (h, c)), ("b2", (c,))):
        if state[name].shape != shape:
            raise ValueError(f"{name} has shape {state[name].shape}, not this trial's {shape}")
    last = json.loads(str(state["last_metrics"])) if "last_metrics" in state else None
    earlier = json.loads(str(state["earlier_metrics"])) if "earlier_metrics" in state else []
    return Trainer.from_state(config, state), last, earlier


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _earlier_checkpoints(checkpoint) -> list[str]:
    """The trial's earlier checkpoint folders, newest first: Tune keeps every one while the trial
    runs. Local storage only (elsewhere Tune hands over the newest alone)."""
    if getattr(checkpoint.filesystem, "type_name", "") != "local":
        return []
    folder, name = os.path.split(checkpoint.path)
    siblings = [n for n in os.listdir(folder) if re.fullmatch(r"checkpoint_\d+", n) and n < name]
    return [os.path.join(folder, n) for n in sorted(siblings, reverse=True)]


def _report(metrics: dict, trainer: Trainer, top: tuple, storage: str, earlier: list = ()) -> None:
    """Report `metrics` with a checkpoint of `trainer` (mid-epoch state included, so a trial
    paused at a rung inside its first epoch continues that epoch exactly). A checkpoint that a
    full disk cannot take is not a failure of the trial (which would spend its retries and end
    as an error): the trial says so instead, and waits for the driver to stop the sweep."""
    nbytes, where = 0, tempfile.gettempdir()
    try:
        with tempfile.TemporaryDirectory(prefix="mlp-ckpt-") as d:
            path = os.path.join(d, STATE_FILE)
            save_state(path, trainer, metrics, earlier)
            nbytes, where = os.path.getsize(path), storage  # Tune copies it there
            tune.report(packed(metrics, top), checkpoint=tune.Checkpoint.from_directory(d))
    except OSError as e:
        if e.errno not in FULL:
            raise
        _wait_for_the_stop(DiskFull(where, nbytes, e.errno))


def _wait_for_the_stop(error: DiskFull, patience_s: float = 300.0) -> None:
    """Tell the driver (a report of DISK_FULL alone, which no scheduler reads) and wait for it to
    stop the sweep; raise only if it never does."""
    tune.report({DETAILS: json.dumps({DISK_FULL: error.fields()})})
    time.sleep(patience_s)
    raise error


def train_mlp(config: dict, X_train=None, y_train=None, X_val=None, y_val=None,
              finished: frozenset = frozenset(), shared: Shared = Shared({})) -> None:
    """Train one configuration, reporting one metrics dict and one checkpoint per epoch and at
    each of the first epoch's partial points.

    A trial restored from a checkpoint (resumed after a pause at a rung, or after the driver
    died) first reports that checkpoint's metrics again, so the scheduler judges it at that
    point before it trains on: the value is the one it had, and a decision taken while the
    driver was down still applies.

    `finished` holds the ids of trials already recorded as done in the run's tables: on a resume
    Ray may restart such a trial from an older experiment snapshot, and it returns at once."""
    if tune.get_context().get_trial_id() in finished:
        return
    cfg = TrainConfig.from_dict({**config, **shared.train})  # (older sweeps' configs hold both)
    node_id = ray.get_runtime_context().get_node_id()
    # Ray's CPU count is bookkeeping; BLAS would otherwise start a thread per core in every trial.
    with threadpool_limits(limits=shared.cpus):
        threads = blas_threads()
        trainer, last, earlier, note = restore(tune.get_checkpoint(), cfg)
        if last is not None:
            # the reports before it replayed with it (EARLIER), for a driver that lost them
            _report({**last, EARLIER: earlier, **({RESTORE_NOTE: note} if note else {})}, trainer,
                    shared.top, shared.storage, earlier)
            if trainer.epochs_done >= cfg.epochs or last.get(DIVERGED):
                return  # restored from its final checkpoint: its end now reaches the tables
            note, earlier = None, [*earlier, {k: v for k, v in last.items() if k != RESTORE_NOTE}]
        trainer = trainer or Trainer(cfg)
        for metrics in train(cfg, X_train, y_train, X_val, y_val, trainer=trainer,
                             fractions=shared.report_fractions,
                             scaled_partial_val=shared.scaled_partial_val):
            metrics[NODE_ID] = node_id
            metrics[BLAS_THREADS] = threads
            metrics[ENDED_AT] = time.time()
            if note:  # said once, with the first report
                metrics[RESTORE_NOTE], note = note, None
            _report(metrics, trainer, shared.top, shared.storage, earlier)
            earlier = [*earlier, {k: v for k, v in metrics.items() if k != RESTORE_NOTE}]
