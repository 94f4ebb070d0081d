"""scikit-learn's HalvingGridSearchCV over this tool's grid, as a whole process a user would run
instead of `run_search.py run`: load the data, search on both cores, refit the chosen
configuration on the training split, print what it chose and its test accuracy.

Leaves out timing (time it from outside, against the run command, back to back). Usage:
    python -m benchmarks.sklearn_halving --data-dir /tmp/small
Needs the bench extra (scikit-learn). The estimator, the grid's mapping (alpha = l2 * 256) and
the validation split are bench_peers.py's.
"""
from __future__ import annotations

import argparse

from .bench_peers import grid_subset, sklearn_peer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", required=True)
    args = ap.parse_args()
    from mlp_core.data import load_dataset

    ds = load_dataset(args.dataset, args.data_dir, 0.2, 0, download=False)
    configs, _ = grid_subset(None, None)
    row = sklearn_peer(ds, configs, 1.0, halving=True)
    print(f"HalvingGridSearchCV: chose (H, lr, L2) = {tuple(row['best'])}, validation "
          f"{100 * row['best_val_accuracy']:.2f}%, test {100 * row['test_accuracy']:.2f}%, "
          f"{row['trial_epochs']:.0f} trial-epochs; search {row['search_s']:.1f} s, refit "
          f"{row['retrain_s']:.1f} s")


if __name__ == "__main__":
    main()
