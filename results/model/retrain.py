"""After the sweep: retrain the chosen configuration from scratch, keep its best validation epoch,
export it, and draw the plots of the search and of the retrained model.

Leaves out the sweep itself and using the exported model (inference.py). Reads the run folder's
files and the dataset; no Ray.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlp_core.data import DataError, load_dataset, locate_files, read_idx_pair, sha256_file, to_features
from mlp_core.model import Params, evaluate
from mlp_core.train import (
    EPOCH,
    TEST_ACCURACY,
    TEST_LOSS,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VAL_ACCURACY,
    VAL_LOSS,
    TrainConfig,
    Trainer,
    train,
)

from ..folder import table as T
from ..folder.writer import write_frame
from ..sweep import settings
from ..sweep.spec import changed_files
from ..views import effects
from . import plots
from .export import export_model

BEST_DIR = "best"
PLOTS_DIR = "plots"
BEST_HISTORY_COLUMNS = [EPOCH, TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY, TEST_LOSS,
                        TEST_ACCURACY]


@dataclass
class RetrainOutcome:
    trial_id: str
    config: dict
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    seed_test_accuracies: list[float]
    model_dir: Path
    how: str = "retrained"  # or "exported": the trial's own weights, read from its checkpoints
    note: str | None = None  # why best/model.onnx was not written

    def summary(self) -> str:
        cfg = ", ".join(f"{k}={self.config[k]:g}" if isinstance(self.config[k], float)
                        else f"{k}={self.config[k]}" for k in T.HYPERPARAMETERS)
        text = (f"{self.how} trial {self.trial_id} ({cfg}): best epoch {self.best_epoch}, "
                f"val_accuracy {self.val_accuracy:.4f}, test_accuracy {self.test_accuracy:.4f}")
        accs = self.seed_test_accuracies
        if len(accs) > 1:
            text += (f"; over {len(accs)} seeds test_accuracy {np.mean(accs):.4f} "
                     f"± {np.std(accs, ddof=1):.4f} (mean ± sample std)")
        return text + f"\nmodel: {self.model_dir}" + (f"\nnote: {self.note}" if self.note else "")


def choose_trial(results: pd.DataFrame, trial_id: str | None) -> pd.Series:
    if trial_id is None:
        return T.best_trial(results)
    match = results[results[T.TRIAL_ID] == trial_id]
    if match.empty:
        raise T.RunError(f"--trial: no trial {trial_id!r} in results.csv")
    return match.iloc[0]


def dataset_for_run(sweep: dict, data_dir: str | None = None):
    """The same data and the same train/validation split the sweep used; data whose files
    differ from the sweep's (by SHA-256) is refused, naming the file."""
    data = load_dataset(sweep["dataset"], data_dir or sweep["data_dir"], sweep["val_fraction"],
                        sweep["seed"])
    _check_files(sweep, data.files)
    return data


def held_out_test_set(sweep: dict) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's test images and labels alone (all an export of its trained weights needs),
    checked against the SHA-256 sweep.json records."""
    paths = locate_files(sweep["dataset"], sweep["data_dir"], download=False,
                         roles=("test_images", "test_labels"))
    _check_files(sweep, {r: {"path": str(p), "sha256": sha256_file(p)} for r, p in paths.items()})
    images, labels = read_idx_pair(paths["test_images"], paths["test_labels"])
    return to_features(images), labels.astype(np.int64)


def _check_files(sweep: dict, files: dict) -> None:
    changed = changed_files(sweep.get("dataset_files") or {}, files)
    if changed:
        raise DataError(f"{', '.join(changed)}: not the file the sweep trained on (another SHA-256 "
                        f"than sweep.json records); point --data-dir at the sweep's data")


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
            data_dir: str | None = None, log=print) -> RetrainOutcome:
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
            cfg = TrainConfig(**{**settings.train_values(sweep), **config, "seed": base_seed + k})
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
                exported = export_best(run_dir, row, sweep, data.files, best, best_epoch,
                                       pd.DataFrame(history)[BEST_HISTORY_COLUMNS],
                                       (val_loss, val_acc), (test_loss, test_acc), cfg.seed)
    if seeds > 1:
        write_frame(pd.DataFrame(per_seed), run_dir / BEST_DIR / "seeds.csv")
    exported.seed_test_accuracies = [s[TEST_ACCURACY] for s in per_seed]
    return exported


def export_best(run_dir: Path, row: pd.Series, sweep: dict, files: dict, params: Params,
                best_epoch: int, history: pd.DataFrame, val: tuple, test: tuple, seed: int
                ) -> RetrainOutcome:
    """Write the chosen weights (their epoch `best_epoch`, their (loss, accuracy) on the
    validation and test sets; `files` the dataset's, path and SHA-256 by role) as
    best/model.npz and model.json, their run's curves as best/history.csv, and the plots."""
    model_dir = run_dir / BEST_DIR
    config = {s.column: s.kind.item(row[s.column]) for s in settings.AXES}
    (val_loss, val_acc), (test_loss, test_acc) = val, test
    model_dir.mkdir(parents=True, exist_ok=True)
    write_frame(history, model_dir / "history.csv")
    note = export_model(model_dir, params, {
        "trial_id": str(row[T.TRIAL_ID]), "hyperparameters": config,
        **settings.train_values(sweep), "seed": seed, "best_epoch": best_epoch,
        "test_accuracy": test_acc, "test_loss": test_loss,
        "val_accuracy": val_acc, "val_loss": val_loss,
        "dataset": {"name": sweep["dataset"], "val_fraction": sweep["val_fraction"],
                    "split_seed": int(sweep["seed"]),
                    "files": {r: {"name": Path(f["path"]).name, "sha256": f["sha256"]}
                              for r, f in files.items()}},
    })
    draw_best_plots(run_dir, history, params)
    return RetrainOutcome(str(row[T.TRIAL_ID]), config, best_epoch, val_acc, test_acc, test_loss,
                          [test_acc], model_dir, note=note)


def draw_best_plots(run_dir: Path, history: pd.DataFrame, params: Params) -> None:
    out = Path(run_dir) / PLOTS_DIR
    plots.save_figure(plots.plot_loss(history), out / "loss.png")
    plots.save_figure(plots.plot_accuracy(history), out / "accuracy.png")
    plots.save_figure(plots.plot_weights(params, 1), out / "weights_fc1.png")
    plots.save_figure(plots.plot_weights(params, 2), out / "weights_fc2.png")


def draw_search_plots(run_dir: str | Path) -> None:
    run_dir = Path(run_dir)
    results, history = T.load_results(run_dir), T.load_history(run_dir)
    partial = T.load_partial(run_dir)
    sweep = T.load_sweep(run_dir)
    out = run_dir / PLOTS_DIR
    plots.save_figure(plots.plot_search_heatmap(results), out / "search_heatmap.png")
    # the reports from inside the first epoch start the curves
    curves = pd.concat([partial, history], ignore_index=True) if len(partial) else history
    plots.save_figure(plots.plot_search_curves(curves, results, sweep["epochs"]),
                      out / "search_curves.png")
    point = effects.common_point(results)
    values = effects.accuracy_at(results, history, partial, point)
    chosen = T.best_trial(results)
    plots.save_figure(plots.plot_search_effects(values, point, {h: chosen[h] for h in T.HYPERPARAMETERS}),
                      out / "search_effects.png")
    shares = effects.importance(values)
    if shares is not None:
        plots.save_figure(plots.plot_importance(shares, point), out / "search_importance.png")
