"""What each hyperparameter did in a sweep: every trial's validation accuracy at the furthest point
all of them reached, and how much of its variance each hyperparameter and each pair explains.

Leaves out drawing (plots.py). Reads the run's tables only; no Ray.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from mlp_core.train import EPOCH, VAL_ACCURACY

from ..folder.table import EPOCHS, HYPERPARAMETERS, STATUS, TRIAL_ID, Status, epoch_value

# A diverged model predicts no better than guessing: that is its accuracy in the decomposition.
CHANCE = 0.1


def common_point(results: pd.DataFrame) -> float:
    """The furthest point (in epochs) every trial that did not diverge reached: where early-
    stopped and completed trials can be compared on the same footing."""
    ran = results.loc[results[STATUS] != Status.DIVERGED, EPOCHS].astype(float)
    return epoch_value(ran.min() if len(ran) else results[EPOCHS].astype(float).max())


def accuracy_at(results: pd.DataFrame, history: pd.DataFrame, partial: pd.DataFrame,
                point: float) -> pd.DataFrame:
    """One row per trial: its hyperparameters and `val_accuracy` at `point` (NaN for a trial
    that diverged before it), plus `diverged`."""
    reports = pd.concat([partial, history])
    at = reports[reports[EPOCH].astype(float) == float(point)].set_index(TRIAL_ID)[VAL_ACCURACY]
    out = results[[TRIAL_ID, *HYPERPARAMETERS]].copy()
    out[VAL_ACCURACY] = out[TRIAL_ID].map(at).astype(float)
    out["diverged"] = (results[STATUS] == Status.DIVERGED).to_numpy()
    return out


def importance_at_common_point(results: pd.DataFrame, history: pd.DataFrame,
                               partial: pd.DataFrame) -> tuple[float, pd.DataFrame | None]:
    """The furthest point every trial reached, and importance() of the accuracies there."""
    point = common_point(results)
    return point, importance(accuracy_at(results, history, partial, point))


def in_percent(shares: pd.DataFrame) -> pd.DataFrame:
    """importance()'s table as shown to people: each share as a percentage with one decimal."""
    return shares.assign(share=(100 * shares["share"]).map(lambda v: f"{v:.1f}%"))


def importance(values: pd.DataFrame) -> pd.DataFrame | None:
    """The share of the variance of `val_accuracy` over the grid explained by each
    hyperparameter (main effect) and each pair (interaction), the rest being the three-way
    interaction: the functional ANOVA of a full factorial, exact because every combination was
    run once. A trial with no finite value there (it diverged) counts at chance accuracy.
    None when the grid is not complete (a sweep still running) or nothing varies."""
    axes = [sorted(values[h].unique()) for h in HYPERPARAMETERS]
    if len(values) != np.prod([len(a) for a in axes]):
        return None
    cube = np.full([len(a) for a in axes], np.nan)
    index = [values[h].map({v: i for i, v in enumerate(a)}).to_numpy()
             for h, a in zip(HYPERPARAMETERS, axes, strict=True)]
    acc = values[VAL_ACCURACY].to_numpy(dtype=float)
    cube[tuple(index)] = np.where(np.isfinite(acc), acc, CHANCE)
    if np.isnan(cube).any():
        return None
    total = float(((cube - cube.mean()) ** 2).mean())
    if total == 0:
        return None
    n = cube.ndim
    effects = {}
    for k in (1, 2):
        for dims in itertools.combinations(range(n), k):
            other = tuple(d for d in range(n) if d not in dims)
            effect = cube.mean(axis=other, keepdims=True) - cube.mean()
            for sub in itertools.chain.from_iterable(itertools.combinations(dims, j) for j in range(1, k)):
                effect = effect - effects[sub]
            effects[dims] = effect
    rows = [{"source": " x ".join(HYPERPARAMETERS[d] for d in dims),
             "share": float((np.broadcast_to(e, cube.shape) ** 2).mean()) / total}
            for dims, e in effects.items()]
    rows.append({"source": "all three together", "share": 1 - sum(r["share"] for r in rows)})
    return pd.DataFrame(rows)
