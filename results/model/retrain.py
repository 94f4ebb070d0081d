"""After the sweep: the chosen configuration (or --trial) trained again from scratch, with its own
seed and BLAS threads (so its epochs come out as the trial reported them), its best validation
epoch exported (export.py); with --seeds, more seeds measured beside it (best/seeds.csv).

Leaves out exporting a trial's own weights (from_checkpoints.py). Reads the run folder's files
and the dataset; no Ray.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlp_core.model import Params, evaluate
from mlp_core.train import EPOCH, TEST_ACCURACY, TEST_LOSS, VAL_ACCURACY, TrainConfig, Trainer, train

from ..columns import BEST_DIR
from ..folder import table as T
from ..folder.dataset import dataset_for_run
from ..folder.writer import write_frame
from ..sweep import settings
from .export import BEST_HISTORY_COLUMNS, ExportedModel, Weights, write_export


def choose_trial(results: pd.DataFrame, trial_id: str | None) -> pd.Series:
    if trial_id is None:
        return T.best_trial(results)
    match = results[results[T.TRIAL_ID] == trial_id]
    if match.empty:
        raise T.RunError(f"--trial: no trial {trial_id!r} in results.csv")
    return match.iloc[0]


def _train_keep_best(cfg: TrainConfig, data) -> tuple[list[dict], Params | None, int]:
    trainer = Trainer(cfg)
    history, best, best_epoch, best_val = [], None, 0, -math.inf
    for m in train(cfg, data.X_train, data.y_train, data.X_val, data.y_val,
                   data.X_test, data.y_test, trainer=trainer):
        history.append(m)
        if not m["diverged"] and m[VAL_ACCURACY] > best_val:
            best_val, best, best_epoch = m[VAL_ACCURACY], trainer.params.copy(), m[EPOCH]
    return history, best, best_epoch


def trial_threads(row: pd.Series) -> int | None:
    """The BLAS threads the trial trained with (results.csv), so that training or measuring its
    weights here gives its figures to the bit; None (no limit) for a run that did not record it."""
    threads = row.get(T.BLAS_THREADS)
    return int(threads) if threads is not None and np.isfinite(float(threads)) else None


def retrain(run_dir: str | Path, trial_id: str | None = None, seeds: int = 1,
            data_dir: str | None = None, log=print) -> ExportedModel:
    """Retrain for the full epoch budget, write best/history.csv, export best/model.*; with
    seeds > 1 also train seeds seed+1.. and write best/seeds.csv. With the trial's own seed and
    BLAS threads, a trial's epochs come out as it reported them, to the bit."""
    run_dir = Path(run_dir)
    if seeds < 1:
        raise T.RunError(f"--seeds: {seeds} must be a positive integer")
    sweep = T.load_sweep(run_dir)
    row = choose_trial(T.load_results(run_dir), trial_id)
    config = {s.column: s.kind.item(row[s.column]) for s in settings.AXES}
    data = dataset_for_run(sweep, data_dir)
    base_seed = int(sweep["seed"])
    per_seed, exported = [], None
    with threadpool_limits(limits=trial_threads(row)):
        for k in range(seeds):
            cfg = TrainConfig(**{**settings.train_values(sweep), **config, "seed": base_seed + k,
                                 "n_inputs": data.n_inputs, "n_classes": data.n_classes})
            log(f"retraining {row[T.TRIAL_ID]} with seed {cfg.seed} for {cfg.epochs} epochs ...")
            history, best, best_epoch = _train_keep_best(cfg, data)
            if best is None:
                raise T.RunError(f"trial {row[T.TRIAL_ID]} diverged on retraining (seed {cfg.seed}); "
                                 f"choose another with --trial")
            test_loss, test_acc = evaluate(best, data.X_test, data.y_test)
            val_loss, val_acc = evaluate(best, data.X_val, data.y_val)
            per_seed.append({"seed": cfg.seed, "best_epoch": best_epoch, VAL_ACCURACY: val_acc,
                             TEST_ACCURACY: test_acc, TEST_LOSS: test_loss})
            if k == 0:
                exported = write_export(run_dir, row, sweep, Weights(
                    best, best_epoch, (val_loss, val_acc), (test_loss, test_acc), cfg.seed,
                    pd.DataFrame(history)[BEST_HISTORY_COLUMNS]), data)
    if seeds > 1:
        write_frame(pd.DataFrame(per_seed), run_dir / BEST_DIR / "seeds.csv")
    exported.seed_test_accuracies = [s[TEST_ACCURACY] for s in per_seed]
    return exported
