"""Your own data, measured (BENCHMARKS.md, "Your own data"):

    python -m benchmarks.own_data halving-digits      # scikit-learn's HalvingGridSearchCV on digits
    python -m benchmarks.own_data choices RUN FULL SKLEARN_JSON   # both choices on one yardstick
    python -m benchmarks.own_data fashion-npz IDX_DIR OUT.npz     # Fashion-MNIST as an .npz
    python -m benchmarks.own_data csv-load PATH [--rows N --cols D]   # a big CSV's load: time, peak

halving-digits is a whole process a user would run instead of `run_search.py run --dataset
digits --batch-size 32`: the same split (this tool's stratified 20% test share and 20% of the
rest for validation, seed 0), the same standardised inputs, the same grid (alpha = l2 x batch,
as scikit-learn's penalty is alpha / 2 / batch), epochs, batch and reduction factor, on both
cores; it prints JSON. Needs scikit-learn (the datasets extra).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

BATCH = 32


def digits_split():
    from mlp_core.tabular import bundled, make_labelled_dataset
    return make_labelled_dataset(bundled("digits"), "digits", 0.2, 0.2, 0)


def halving_digits() -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV, PredefinedSplit
    from sklearn.neural_network import MLPClassifier

    from results.sweep.settings import DEFAULTS

    t0 = time.perf_counter()
    ds = digits_split()
    X, y = np.concatenate([ds.X_train, ds.X_val]), np.concatenate([ds.y_train, ds.y_val])
    split = PredefinedSplit(np.r_[np.full(len(ds.X_train), -1), np.zeros(len(ds.X_val), int)])
    grid = {"hidden_layer_sizes": [(h,) for h in DEFAULTS["hidden"]], "learning_rate_init": list(DEFAULTS["lr"]),
            "alpha": [l2 * BATCH for l2 in DEFAULTS["l2"]]}
    estimator = MLPClassifier(solver="sgd", batch_size=BATCH, momentum=0.0, nesterovs_momentum=False,
                              learning_rate="constant", max_iter=10, n_iter_no_change=1000, tol=0.0,
                              random_state=0)
    search = HalvingGridSearchCV(estimator, grid, cv=split, factor=4, resource="max_iter", max_resources=10,
                                 min_resources=1, n_jobs=os.cpu_count(), refit=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
        p = search.best_params_
        final = estimator.set_params(**p).fit(ds.X_train, ds.y_train)
    return {"chose": [p["hidden_layer_sizes"][0], p["learning_rate_init"], p["alpha"] / BATCH],
            "its_validation_accuracy": float(search.best_score_),
            "test_accuracy": float(final.score(ds.X_test, ds.y_test)),
            "fits": int(sum(search.n_candidates_)), "seconds": time.perf_counter() - t0}


def choices(run: str, full: str, sklearn_json: str) -> dict:
    """The tool's choice (the best of RUN) and scikit-learn's, each looked up in FULL, this
    tool's full grid on the same split (--scheduler none): their validation accuracy there."""
    from results.folder import table as T

    grid = T.load_results(full)
    key = lambda c: (int(c[0]), round(float(c[1]), 12), round(float(c[2]), 12))  # noqa: E731
    by_config = {key((r.hidden_size, r.learning_rate, r.l2)): r.val_accuracy for r in grid.itertuples()}
    best = T.best_trial(T.load_results(run))
    ours = (best["hidden_size"], best["learning_rate"], best["l2"])
    theirs = json.loads(Path(sklearn_json).read_text())["chose"]
    ranked = sorted(by_config.values(), reverse=True)
    return {"tool": {"chose": list(map(float, ours)), "full_grid_val_accuracy": by_config[key(ours)],
                     "rank": ranked.index(by_config[key(ours)]) + 1},
            "halving_grid_search_cv": {"chose": theirs, "full_grid_val_accuracy": by_config[key(theirs)],
                                       "rank": ranked.index(by_config[key(theirs)]) + 1},
            "full_grid_best": ranked[0]}


def fashion_npz(idx_dir: str, out: str) -> None:
    from mlp_core.data import locate_files, read_idx_pair
    paths = locate_files("fashion-mnist", idx_dir, download=False)
    X, y = read_idx_pair(paths["train_images"], paths["train_labels"])
    X_test, y_test = read_idx_pair(paths["test_images"], paths["test_labels"])
    np.savez(out, X=X, y=y, X_test=X_test, y_test=y_test)


def csv_load(path: str, rows: int, cols: int) -> dict:
    """Write the CSV if it is not there (seeded random floats, a text label), then load it in a
    fresh process as a sweep does (mlp_core.tabular.read_source): its seconds and peak memory."""
    path = Path(path)
    if not path.exists():
        rng = np.random.default_rng(0)
        with open(path, "w") as f:
            f.write(",".join([f"f{j}" for j in range(cols)] + ["label"]) + "\n")
            for start in range(0, rows, 100_000):
                block = rng.normal(size=(min(100_000, rows - start), cols)).astype(np.float32)
                labels = np.where(block[:, 0] > 0, "up", "down")
                lines = (",".join(f"{v:.6g}" for v in r) + f",{lab}\n" for r, lab in zip(block, labels, strict=True))
                f.writelines(lines)
    code = ("import resource, time, json\n"
            "t0 = time.perf_counter()\n"
            "from mlp_core.tabular import read_source\n"
            f"d = read_source({str(path)!r})\n"
            "print(json.dumps({'seconds': time.perf_counter() - t0, 'shape': list(d.X.shape),\n"
            "                  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    base = ("import resource, json, numpy, pandas\n"
            "print(json.dumps({'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True, env=env).stdout)
    idle = json.loads(subprocess.run([sys.executable, "-c", base], capture_output=True, text=True,
                                     check=True, env=env).stdout)
    array_mb = rows * cols * 4 / 2**20
    return {**loaded, "file_mb": path.stat().st_size / 2**20, "float32_array_mb": array_mb,
            "interpreter_with_numpy_pandas_mb": idle["peak_mb"],
            "peak_over_array": loaded["peak_mb"] / array_mb,
            "peak_above_interpreter_over_array": (loaded["peak_mb"] - idle["peak_mb"]) / array_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("halving-digits")
    c = sub.add_parser("choices")
    c.add_argument("run")
    c.add_argument("full")
    c.add_argument("sklearn_json")
    f = sub.add_parser("fashion-npz")
    f.add_argument("idx_dir")
    f.add_argument("out")
    m = sub.add_parser("csv-load")
    m.add_argument("path")
    m.add_argument("--rows", type=int, default=1_000_000)
    m.add_argument("--cols", type=int, default=50)
    args = ap.parse_args()
    if args.what == "halving-digits":
        print(json.dumps(halving_digits()))
    elif args.what == "choices":
        print(json.dumps(choices(args.run, args.full, args.sklearn_json), indent=1))
    elif args.what == "fashion-npz":
        fashion_npz(args.idx_dir, args.out)
    else:
        print(json.dumps(csv_load(args.path, args.rows, args.cols), indent=1))


if __name__ == "__main__":
    main()
