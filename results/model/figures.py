"""The run folder's PNGs: the search's, drawn from its tables (in a second process while the model
is exported: plot_process.py), and the exported model's curves and weights.

Leaves out how each figure looks (plots.py).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlp_core.model import Params

from ..columns import PLOTS_DIR
from ..folder import table as T
from ..views import effects
from . import plots


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
