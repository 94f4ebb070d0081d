"""A run folder as TensorBoard event files (RUN/tensorboard/): one folder per finished trial with
its scalars by epoch (train and validation loss and accuracy; the first epoch's rungs as
fractions of it under in_epoch_1/), and the HParams summaries, so that `tensorboard --logdir
RUN/tensorboard` shows the sweep in its HParams dashboard: hidden_size, learning_rate and l2
against each trial's best validation accuracy and loss.

Read from the tables, so it is written after the sweep, after a resume (only the trials new
since) or later, the same each time. Needs tensorboardX (pip install -e '.[tensorboard]').

Leaves out when it is called (search/api.py, run_search.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from mlp_core.train import EPOCH, TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS

from ..folder import table as T
from .mlflow_log import TrackerError, finite, tables_by_trial

TENSORBOARD_DIR = "tensorboard"
SCALARS = (TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY)
# The HParams dashboard's metrics: each trial's best validation figures (its results.csv row)
METRICS = {"hparams/best_val_accuracy": VAL_ACCURACY, "hparams/best_val_loss": VAL_LOSS}
DONE = ".complete"  # in a trial's folder once all of it is written


def write_events(run_dir: str | Path) -> tuple[Path, int]:
    """Event files for the finished trials not written yet; returns (the folder, how many)."""
    try:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams
    except ImportError:
        raise TrackerError("--tensorboard needs tensorboardX: pip install -e '.[tensorboard]'") from None
    run_dir = Path(run_dir)
    out = run_dir / TENSORBOARD_DIR
    results, epochs, firsts = tables_by_trial(run_dir)
    written = 0
    for row in results.to_dict("records"):
        tid = str(row[T.TRIAL_ID])
        folder = out / tid
        if (folder / DONE).is_file():
            continue
        shutil.rmtree(folder, ignore_errors=True)  # cut short by an earlier call: written again
        with SummaryWriter(str(folder)) as w:
            for r in ([] if tid not in epochs else epochs[tid].to_dict("records")):
                for k in SCALARS:
                    if finite(r.get(k)):
                        w.add_scalar(k, float(r[k]), int(r[EPOCH]), walltime=_walltime(r))
            for r in ([] if tid not in firsts else firsts[tid].to_dict("records")):
                for k in SCALARS:
                    if finite(r.get(k)):
                        w.add_scalar(f"in_epoch_1/{k}", float(r[k]), int(round(float(r[EPOCH]) * 100)),
                                     walltime=_walltime(r))
            config = {h: _value(row[h]) for h in T.HYPERPARAMETERS}
            metrics = {name: float(row[col]) if finite(row.get(col)) else float("nan")
                       for name, col in METRICS.items()}
            experiment, start, end = hparams(config, metrics)
            for summary in (experiment, start, end):
                w.file_writer.add_summary(summary)
            for name, value in metrics.items():
                w.add_scalar(name, value, 0)
            w.add_text("status", f"{row[T.STATUS]}, {_text(row[T.EPOCHS])} epochs", 0)
        (folder / DONE).write_text(tid + "\n")
        written += 1
    return out, written


def _value(v):
    f = float(v)
    return int(f) if f.is_integer() and abs(f) >= 1 else f


def _walltime(row: dict) -> float | None:
    return float(row[T.ENDED_AT]) if finite(row.get(T.ENDED_AT)) else None


def _text(v) -> str:
    return f"{float(v):g}" if finite(v) else str(v)
