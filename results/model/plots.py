"""Figures of a run: learning curves, weight histograms, the search heatmap and trial curves,
and a confusion matrix. Each function takes data and returns a matplotlib Figure.

Leaves out saving policy: the caller saves (save_figure draws with the Agg canvas; no pyplot,
no global state).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from mlp_core.files import atomic_write
from mlp_core.model import Params

from ..folder.table import (
    EPOCHS,
    HIDDEN_SIZE,
    HYPERPARAMETERS,
    L2,
    LEARNING_RATE,
    STATUS,
    TRIAL_ID,
    VAL_ACCURACY,
    Status,
    best_trial,
    pivot,
)

SPLITS = (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:green"))
SPLIT_LABEL = {"train": "train", "val": "validation", "test": "test"}


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Draw `fig` as a PNG at `path`, atomically (a link planted there is replaced, not followed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with atomic_write(path) as f:
        fig.savefig(f, dpi=dpi, format="png")
    return path


def _curves(history: pd.DataFrame, metric: str, title: str, ylabel: str) -> Figure:
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for split, color in SPLITS:
        col = f"{split}_{metric}"
        if col in history and history[col].notna().any():
            ax.plot(history["epoch"], history[col], marker="o", ms=3, color=color,
                    label=SPLIT_LABEL[split])
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_loss(history: pd.DataFrame, title: str = "Cross-entropy loss per epoch") -> Figure:
    return _curves(history, "loss", title, "mean cross-entropy")


def plot_accuracy(history: pd.DataFrame, title: str = "Accuracy per epoch") -> Figure:
    return _curves(history, "accuracy", title, "accuracy")


def plot_weights(params: Params, layer: int) -> Figure:
    """Histograms of one layer's weights and biases (layer 1: W1, b1; layer 2: W2, b2)."""
    W, b = (params.W1, params.b1) if layer == 1 else (params.W2, params.b2)
    fig = Figure(figsize=(8.8, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, arr, name, color in ((axes[0], W, f"W{layer}", "tab:blue"), (axes[1], b, f"b{layer}", "tab:red")):
        ax.hist(arr.ravel(), bins=min(80, max(10, arr.size // 4)), color=color, alpha=0.8,
                label=f"{name} {tuple(arr.shape)}\nmean {arr.mean():.3g}, std {arr.std():.3g}")
        ax.set_title(f"{name}: {'weights' if name.startswith('W') else 'biases'}")
        ax.set_xlabel("value")
        ax.set_ylabel("count")
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    fig.suptitle(f"Layer fc{layer} parameters")
    return fig


# A grid up to this many learning rates x L2 values gets its values written in the cells; a
# larger one is drawn in colour alone, at a size that stays a picture (a 50 x 50 grid with
# numbers in its cells was an 85-inch-wide PNG that took half a GB to draw).
CELLS_WITH_VALUES = (30, 15)


def plot_search_heatmap(results: pd.DataFrame) -> Figure:
    """Best validation accuracy over learning rate x L2, one panel per hidden size, values written
    in the cells (in %) while they fit; cells of trials whose loss blew up say "diverged" (grey
    in a grid too large for words). A trial stopped early is hatched, and its cell says how many
    epochs it ran: its value is the accuracy at the point it reached, not after the full budget.
    The best trial's cell is framed in red."""
    tables = pivot(results)
    sizes = sorted(tables)
    lrs = sorted(results[LEARNING_RATE].unique())
    l2s = sorted(results[L2].unique())
    n = len(sizes)
    words = len(lrs) <= CELLS_WITH_VALUES[0] and len(l2s) <= CELLS_WITH_VALUES[1]
    # at most three panels a row, so that a cell stays legible on a laptop's screen
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    width = max(3.6, 0.8 * len(l2s) + 1.4) if words else min(0.8 * len(l2s) + 1.4, 7.0)
    height = 0.42 * len(lrs) + 1.5 if words else min(0.42 * len(lrs) + 1.5, 7.0)
    fig = Figure(figsize=(width * ncols + 1.0, height * nrows + 0.6), layout="constrained")
    grid_axes = np.atleast_2d(fig.subplots(nrows, ncols, sharey=True, squeeze=False))
    for ax in grid_axes.ravel()[n:]:
        ax.set_visible(False)
    axes = grid_axes.ravel()[:n]
    finite = results[VAL_ACCURACY][np.isfinite(results[VAL_ACCURACY].astype(float))]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    chosen = best_trial(results) if len(finite) else None
    diverged = set(map(tuple, results.loc[results[STATUS] == Status.DIVERGED, [HIDDEN_SIZE, LEARNING_RATE, L2]]
                       .itertuples(index=False)))
    early = results[results[STATUS] == Status.STOPPED_EARLY]
    stopped = {(h, lr, l2): e
               for h, lr, l2, e in early[[HIDDEN_SIZE, LEARNING_RATE, L2, EPOCHS]].itertuples(index=False)}
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgray")
    image = None
    for ax, h in zip(axes, sizes, strict=True):
        grid = tables[h].reindex(index=lrs, columns=l2s).to_numpy(dtype=float)
        image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        for (sh, lr, l2), _ in stopped.items():
            if sh == h:
                ax.add_patch(Rectangle((l2s.index(l2) - 0.5, lrs.index(lr) - 0.5), 1, 1, fill=False,
                                       hatch="///", edgecolor="white", linewidth=0, alpha=0.35))
        if words:
            _write_cells(ax, grid, h, lrs, l2s, vmin, vmax, diverged, chosen, stopped)
        if chosen is not None and chosen[HIDDEN_SIZE] == h:
            i, j = lrs.index(chosen[LEARNING_RATE]), l2s.index(chosen[L2])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        step_x, step_y = (1, 1) if words else (-(-len(l2s) // 12), -(-len(lrs) // 20))
        ax.set_xticks(range(0, len(l2s), step_x), [f"{v:g}" for v in l2s[::step_x]], rotation=45)
        ax.set_yticks(range(0, len(lrs), step_y), [f"{v:g}" for v in lrs[::step_y]])
        ax.set_title(f"hidden_size = {h}")
        ax.set_xlabel("l2")
    for row in grid_axes:
        row[0].set_ylabel("learning_rate")
    cbar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    cbar.set_label("best validation accuracy")
    fig.suptitle("Validation accuracy (%) at the point each trial reached: its best epoch; hatched, stopped "
                 "early after the epochs written (ep)" if words else
                 "Validation accuracy at the point each trial reached (hatched: stopped early; grey: "
                 "diverged; red: the best)")
    return fig


def _write_cells(ax, grid, h, lrs, l2s, vmin, vmax, diverged, chosen, stopped) -> None:
    best = chosen[VAL_ACCURACY] if chosen is not None else None
    for i in range(len(lrs)):
        for j in range(len(l2s)):
            v = grid[i, j]
            if np.isfinite(v):
                color = "black" if v > vmin + 0.6 * (vmax - vmin) else "white"
                weight = "bold" if best is not None and v == best else "normal"
                ran = stopped.get((h, lrs[i], l2s[j]))
                ax.text(j, i, f"{100 * v:.1f}" + (f"\n{ran:g} ep" if ran is not None else ""),
                        ha="center", va="center", fontsize=8 if ran is None else 6.5, color=color,
                        weight=weight, linespacing=0.9)
            elif (h, lrs[i], l2s[j]) in diverged:
                ax.text(j, i, "diverged", ha="center", va="center", fontsize=7, color="dimgray")


def plot_search_curves(history: pd.DataFrame, results: pd.DataFrame, epochs: int | None = None) -> Figure:
    """Every trial's validation accuracy per epoch (and at any report inside the first epoch,
    such as 0.25), coloured by hidden size; trials stopped early end in a cross, so where early
    stopping cut them off shows at a glance."""
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    sizes = sorted(results[HIDDEN_SIZE].unique())
    cmap = {h: c for h, c in zip(sizes, ["tab:blue", "tab:orange", "tab:green", "tab:red",
                                         "tab:purple", "tab:brown", "tab:pink", "tab:gray"] * 4, strict=False)}
    status = dict(zip(results[TRIAL_ID], results[STATUS], strict=True))
    hidden = dict(zip(results[TRIAL_ID], results[HIDDEN_SIZE], strict=True))
    for tid, part in history.groupby(TRIAL_ID):
        if tid not in hidden:
            continue
        part = part.sort_values("epoch")
        c = cmap[hidden[tid]]
        ax.plot(part["epoch"], part[VAL_ACCURACY], color=c, alpha=0.45, lw=1)
        if status.get(tid) == Status.STOPPED_EARLY and len(part):
            ax.plot(part["epoch"].iloc[-1], part[VAL_ACCURACY].iloc[-1], "x", color=c, ms=5)
    for h in sizes:
        ax.plot([], [], color=cmap[h], label=f"hidden_size {h}")
    ax.plot([], [], "x", color="black", label="stopped early")
    n_stopped = int((results[STATUS] == Status.STOPPED_EARLY).sum())
    ax.set_title(f"Validation accuracy of all {len(results)} trials ({n_stopped} stopped early)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    if epochs:
        first = float(history["epoch"].min()) if len(history) else 1.0
        ax.set_xlim(min(0.8, first - 0.15), epochs + 0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_confusion(cm: np.ndarray, title: str = "Confusion matrix", classes=None) -> Figure:
    """Counts of true (rows) against predicted (columns) classes, named by `classes`."""
    fig = Figure(figsize=(7.2, 6.2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    k = cm.shape[0]
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > threshold else "black")
    labels = list(classes) if classes is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right"
                  if max(map(len, labels)) > 2 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="images")
    return fig



LOG_AXES = (LEARNING_RATE, L2)  # spaced by factors, so drawn on a log axis


def plot_search_effects(values: pd.DataFrame, point, chosen: dict | None = None) -> Figure:
    """One panel per hyperparameter: every trial's validation accuracy at `point` (the furthest
    point all trials reached) against that hyperparameter's value, the best per value joined by
    a line; learning rate and L2 on log axes. Diverged trials are left out and counted. Where the
    `chosen` configuration (the sweep's best) takes the grid's first or last value, the panel
    says so: the optimum may lie beyond the grid."""
    fig = Figure(figsize=(12.0, 4.0), layout="constrained")
    axes = fig.subplots(1, len(HYPERPARAMETERS), sharey=True)
    ok = values[np.isfinite(values[VAL_ACCURACY].astype(float))]
    rng = np.random.default_rng(0)  # a fixed jitter, so that points of one value do not hide each other
    for ax, hp in zip(axes, HYPERPARAMETERS, strict=True):
        x = ok[hp].astype(float).to_numpy()
        spread = np.exp(rng.uniform(-0.08, 0.08, len(x))) if hp in LOG_AXES or hp == HIDDEN_SIZE else 1.0
        ax.scatter(x * spread, ok[VAL_ACCURACY], s=12, alpha=0.45, color="tab:blue", lw=0,
                   label="a trial")
        best = ok.groupby(hp)[VAL_ACCURACY].max()
        ax.plot(best.index.astype(float), best.to_numpy(), "-o", color="tab:red", ms=4, lw=1.5,
                label="best per value")
        edge = [i for i in (0, len(best) - 1) if chosen and len(best) > 1 and best.index[i] == chosen[hp]]
        for i in edge:
            ax.annotate(f"chosen {hp}: the grid's {'last' if i else 'first'} value",
                        (float(best.index[i]), float(best.iloc[i])), xytext=(0, 14),
                        textcoords="offset points", ha="right" if i else "left", fontsize=8,
                        color="tab:red")
        ax.set_xscale("log", base=2 if hp == HIDDEN_SIZE else 10)
        ax.set_xticks(best.index.astype(float), [f"{v:g}" for v in best.index], rotation=45)
        ax.minorticks_off()
        ax.set_xlabel(hp)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"validation accuracy at epoch {point:g}")
    axes[0].legend(fontsize=8, loc="lower right")
    n_div = int(values["diverged"].sum())
    fig.suptitle(f"Each hyperparameter's effect at epoch {point:g}, the furthest point all "
                 f"{len(values)} trials reached" + (f" ({n_div} diverged, not shown)" if n_div else ""))
    return fig


def plot_importance(shares: pd.DataFrame, point) -> Figure:
    """A bar per source (each hyperparameter, each pair, all three together): its share of the
    variance of validation accuracy at `point` across the grid."""
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    order = shares.iloc[::-1]
    bars = ax.barh(order["source"], 100 * order["share"], color="tab:blue")
    for bar, v in zip(bars, order["share"], strict=True):
        ax.text(bar.get_width() + 0.8, bar.get_y() + bar.get_height() / 2, f"{100 * v:.1f}%",
                va="center", fontsize=8)
    ax.set_xlim(0, max(100.0, 100 * float(order["share"].max()) + 10))
    ax.set_xlabel("share of the variance of validation accuracy (%)")
    ax.set_title(f"What explains validation accuracy at epoch {point:g}\n"
                 "(an exact decomposition of the variance over the full grid)")
    ax.grid(axis="x", alpha=0.3)
    return fig
