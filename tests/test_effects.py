"""results.views.effects: the point every trial reached, the accuracies there, and the variance
decomposition checked against hand-worked grids."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from results.views import effects


def grid_values(f, hidden=(64, 128), lr=(0.01, 0.1), l2=(0.001, 0.01)) -> pd.DataFrame:
    rows = [{"trial_id": f"t{i}", "hidden_size": h, "learning_rate": a, "l2": r,
             "val_accuracy": f(h, a, r), "diverged": False}
            for i, (h, a, r) in enumerate(itertools.product(hidden, lr, l2))]
    return pd.DataFrame(rows)


def shares(values) -> dict:
    return dict(zip(*effects.importance(values)[["source", "share"]].to_numpy().T, strict=False))


def test_a_learning_rate_alone_explains_everything():
    s = shares(grid_values(lambda h, a, r: 0.5 + (0.3 if a == 0.1 else 0.0)))
    assert s["learning_rate"] == pytest.approx(1.0)
    assert sum(v for k, v in s.items() if k != "learning_rate") == pytest.approx(0.0, abs=1e-12)


def test_additive_effects_split_by_their_variances_worked_by_hand():
    # accuracy = 0.5 + 0.2 [lr high] + 0.1 [hidden large]: main effects +-0.1 and +-0.05, so
    # variances 0.01 and 0.0025 of a total 0.0125: 80% and 20%, nothing else.
    s = shares(grid_values(lambda h, a, r: 0.5 + 0.2 * (a == 0.1) + 0.1 * (h == 128)))
    assert s["learning_rate"] == pytest.approx(0.8)
    assert s["hidden_size"] == pytest.approx(0.2)
    assert s["l2"] == pytest.approx(0.0, abs=1e-12)
    assert s["hidden_size x learning_rate"] == pytest.approx(0.0, abs=1e-12)


def test_a_pure_interaction_is_the_pairs_and_the_shares_add_up_to_one():
    # an exclusive-or of lr and L2: no main effect at all, all of it the pair's
    s = shares(grid_values(lambda h, a, r: 0.5 + 0.1 * ((a == 0.1) != (r == 0.01))))
    assert s["learning_rate x l2"] == pytest.approx(1.0)
    assert s["learning_rate"] == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    noisy = grid_values(lambda h, a, r: rng.random(), hidden=(16, 32, 64), lr=(0.1, 0.2, 0.3))
    assert sum(shares(noisy).values()) == pytest.approx(1.0)
    assert all(v >= -1e-12 for v in shares(noisy).values())


def test_a_diverged_trial_counts_at_chance_and_an_incomplete_grid_is_not_decomposed():
    v = grid_values(lambda h, a, r: 0.9)
    v.loc[0, "val_accuracy"] = np.nan
    v.loc[0, "diverged"] = True
    s = shares(v)  # one cell at 0.1 among 0.9s: all three main effects and pairs share it
    assert sum(s.values()) == pytest.approx(1.0) and s["hidden_size"] == pytest.approx(1 / 7)
    assert effects.importance(v.iloc[1:]) is None
    assert effects.importance(grid_values(lambda h, a, r: 0.7)) is None  # nothing varies


def test_the_common_point_and_the_accuracies_there():
    results = pd.DataFrame({"trial_id": ["a", "b", "c"], "hidden_size": [16, 16, 32],
                            "learning_rate": [0.1, 0.01, 0.1], "l2": [0.0, 0.0, 0.0],
                            "status": ["completed", "stopped_early", "diverged"],
                            "epochs": [3, 0.25, 0.25]})
    partial = pd.DataFrame({"trial_id": ["a", "b", "c"], "epoch": [0.25] * 3,
                            "val_accuracy": [0.5, 0.4, np.nan]})
    history = pd.DataFrame({"trial_id": ["a"] * 3, "epoch": [1, 2, 3], "val_accuracy": [0.7, 0.8, 0.9]})
    assert effects.common_point(results) == 0.25
    at = effects.accuracy_at(results, history, partial, 0.25)
    assert at["val_accuracy"].tolist()[:2] == [0.5, 0.4] and np.isnan(at["val_accuracy"].iloc[2])
    assert at["diverged"].tolist() == [False, False, True]
    full = results.assign(status="completed", epochs=3)
    assert effects.common_point(full) == 3
