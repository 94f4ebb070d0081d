"""A run folder from Python: its tables as pandas DataFrames, its settings, its early stopping
per rung, what explained its accuracy, and its exported model; and the work after a sweep
(search plots, retraining the best, the report), which the command line calls too.

Leaves out running the sweep (search/api.py). Reads files only: works long after the driver.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from mlp_core.model import Params

from .columns import BEST_DIR
from .folder import table as T
from .model.export import ExportedModel
from .model.figures import draw_search_plots
from .model.from_checkpoints import export_from_checkpoints
from .model.load import load_model
from .model.plot_process import PlotProcess
from .model.report import write_report
from .model.retrain import retrain
from .views import effects, rounds
from .views.rungs import rungs_frame


class Run:
    """A finished (or interrupted) sweep's folder. Each table is read once, when first used."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # set by search.api.run, which has just made them: report.html and the exported model
        self.report: Path | None = None
        self.exported: ExportedModel | None = None
        if not (self.path / T.SWEEP_FILE).is_file():
            raise T.RunError(f"{self.path}: not a run folder ({T.SWEEP_FILE} not found)")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @cached_property
    def settings(self) -> dict:
        """sweep.json: the settings the sweep ran with and its dataset files' SHA-256."""
        return T.load_sweep(self.path)

    @cached_property
    def results(self) -> pd.DataFrame:
        """results.csv: one row per trial, best first (as `show` ranks them)."""
        return T.ranked(T.load_results(self.path))

    @cached_property
    def history(self) -> pd.DataFrame:
        """history.csv: one row per trial per whole epoch."""
        return T.load_history(self.path)

    @cached_property
    def partial(self) -> pd.DataFrame:
        """partial_epochs.csv: the reports from inside the first epoch (empty if none)."""
        return T.load_partial(self.path)

    @property
    def best(self) -> pd.Series:
        """The row of the trial with the best validation accuracy."""
        return T.best_trial(self.results)

    def rungs(self) -> pd.DataFrame:
        """Per rung of early stopping: trials entered, went on, stopped there, and the cutoff."""
        return rungs_frame(self.path, self.settings, self.results, self.history, self.partial)

    def rounds(self) -> pd.DataFrame:
        """Per round of --extend-edges (0: the grid given): the values it added, its trials and
        trial-epochs, and the best validation accuracy after it, with its configuration."""
        return rounds.rounds_frame(self.path, self.results)

    def importance(self) -> pd.DataFrame | None:
        """The share of the variance of validation accuracy, at the furthest point every trial
        reached, explained by each hyperparameter and each pair (None for an incomplete grid)."""
        return effects.importance_at_common_point(self.results, self.history, self.partial)[1]

    def model(self) -> tuple[Params, dict]:
        """The exported model's weights (float32 W1, b1, W2, b2) and model.json."""
        return load_model(self.path / BEST_DIR)


# How finish gets the model it exports: the chosen trial's own weights, or trained again
CHECKPOINTS, RETRAIN = "checkpoints", "retrain"


def finish(run_dir: str | Path, model: str | None = RETRAIN, log=None, trial: str | None = None,
           seeds: int = 1, data_dir: str | None = None, plots: PlotProcess | None = None
           ) -> tuple[Path, ExportedModel | None]:
    """After a sweep, or for `retrain`: draw its search plots, export a model, and write
    report.html. The model: with CHECKPOINTS, the best trial's own weights read from its
    checkpoints (trained again only where they are gone); with RETRAIN, its best configuration
    (or `trial`, with `seeds` seeds) trained again; with None, none. With `plots`, the search
    plots are drawn in that process while the model is exported. Returns the report's path and
    the exported model."""
    if model not in (CHECKPOINTS, RETRAIN, None):
        raise ValueError(f"model: {model!r}; choose {CHECKPOINTS!r}, {RETRAIN!r} or None")
    run_dir = Path(run_dir)
    log = log or (lambda message: None)
    if plots is None:
        draw_search_plots(run_dir)
    wait_for_plots = plots.search_plots(run_dir) if plots else None
    if model == RETRAIN:
        exported = retrain(run_dir, trial, seeds, data_dir, log=log)
    elif model == CHECKPOINTS:
        exported = export_from_checkpoints(run_dir, log=log)
    else:
        exported = None
    if wait_for_plots:
        wait_for_plots()
    return write_report(run_dir), exported
