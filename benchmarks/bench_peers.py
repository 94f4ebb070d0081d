"""This tool against what a user would pick instead, on the same data, grid, epochs, batch and
validation split, with all cores, in one run: wall time, trial-epochs, best validation
accuracy, test accuracy of the retrained best, and each peer's time as a ratio to this tool's.

Leaves out correctness (the tests). Usage:
    python -m benchmarks.bench_peers --dataset mnist-small            # every peer on the full grid
    python -m benchmarks.bench_peers --dataset fashion-mnist --subset 2
    python -m benchmarks.bench_peers --dataset fashion-mnist --subset 2 --peers 1,4 --best-pair 0.1,0.001
Peers: (1) this tool, defaults (successive halving, the chosen trial exported as trained); (2) this
tool, --scheduler none; (3) the original
exercise, float64 NumPy, one trial after another (original_exercise.py); (4) scikit-learn
GridSearchCV over MLPClassifier(solver="sgd", batch_size=256, momentum=0); (5) scikit-learn
HalvingGridSearchCV with the same estimator. Needs the bench extra (scikit-learn).

Honest mapping to scikit-learn: learning_rate_init = learning rate, learning_rate="constant";
alpha = l2 * 256, because scikit-learn divides the L2 gradient alpha * W by the batch size while
this tool adds l2 * W to the batch-mean gradient (identical steps except the epoch's last, shorter
batch); max_iter=10 with n_iter_no_change above it, so exactly 10 epochs; float32 input; the
validation split as a PredefinedSplit; the chosen configuration retrained on the training split
only, like this tool's retrain. With --subset K, peers (3) and (4) train, for every hidden size,
K (learning rate, L2) pairs drawn with seed 0 plus the pair of the full grid's best as found by
peer (2) (so the subset can only flatter their accuracy), and their time and trial-epochs are
scaled by 35 / (number of pairs per hidden size): every hidden size keeps its share of the work.

With --accuracy-seeds N, after every peer has been timed, each peer's chosen configuration is
retrained with seeds 0 .. N-1 (this tool: `retrain --seeds N`, best epoch by validation as the
tool exports it; the original: its final epoch, as it does; scikit-learn: random_state) and a
second table gives the test accuracy's mean, standard error and range over those seeds, and each
peer's mean minus this tool's with the standard error of that difference. One seed's test
accuracy moves by about as much as the peers differ (±0.35 pp is one standard error on 10,000
test images), so "equal or better test accuracy" is judged on the means. Not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .common import write_small_mnist
from .original_exercise import Float64MLP, search

OURS = "1 this tool (default)"


def data_for(name: str, tmp: Path) -> tuple[str, str]:
    """(dataset, data_dir) for the tool, writing the 8,000 / 2,000 MNIST split if asked."""
    if name == "fashion-mnist":
        return "fashion-mnist", "/usr/share/datasets/fashion-mnist"
    d = write_small_mnist(tmp / "mnist-small")
    return "mnist", str(d)


def this_tool(dataset, data_dir, out: Path, name: str, scheduler: str) -> dict:
    from results.folder import table as T
    from results.folder.runfolder import run_folder
    from results.model.from_checkpoints import export_from_checkpoints
    from results.model.retrain import retrain
    from search.sweep import SweepSpec, run_sweep
    run_dir = run_folder(str(out), name)
    spec = SweepSpec(dataset=dataset, data_dir=data_dir, scheduler=scheduler)
    t0 = time.perf_counter()
    run_sweep(spec, run_dir, stream=open(os.devnull, "w"))
    sweep_s = time.perf_counter() - t0
    t1 = time.perf_counter()  # the export `run` does: no second training where the checkpoints are
    outcome = (export_from_checkpoints if scheduler == "halving" else retrain)(run_dir, log=lambda m: None)
    retrain_s = time.perf_counter() - t1
    results = T.load_results(run_dir)
    best = T.best_trial(results)
    return {"search_s": sweep_s, "retrain_s": retrain_s, "trial_epochs": float(results["epochs"].sum()),
            "best_val_accuracy": float(best["val_accuracy"]),
            "best": [int(best["hidden_size"]), float(best["learning_rate"]), float(best["l2"])],
            "test_accuracy": outcome.test_accuracy, "scaled": False, "run_dir": str(run_dir)}


def grid_subset(k: int | None, best_pair: tuple[float, float] | None):
    from results.sweep.settings import DEFAULTS
    pairs = [(lr, l2) for lr in DEFAULTS["lr"] for l2 in DEFAULTS["l2"]]
    if k is None:
        chosen = pairs
    else:
        order = np.random.default_rng(0).permutation(len(pairs))
        chosen = [pairs[i] for i in order[:k]]
        if best_pair is not None and best_pair not in chosen:
            chosen.append(best_pair)
    configs = [{"hidden_size": h, "learning_rate": lr, "l2": l2}
               for h in DEFAULTS["hidden"] for lr, l2 in chosen]
    return configs, len(pairs) / len(chosen)


def original(ds, configs, scale) -> dict:
    t0 = time.perf_counter()
    rows = search(configs, ds.X_train.astype(np.float64), ds.y_train, ds.X_val.astype(np.float64), ds.y_val)
    search_s = time.perf_counter() - t0
    best = max(rows, key=lambda r: r["val_accuracy"])
    t1 = time.perf_counter()
    test = original_retrain_accuracy(ds, best["hidden_size"], best["learning_rate"], best["l2"], seed=0)
    return {"search_s": search_s * scale, "retrain_s": time.perf_counter() - t1,
            "trial_epochs": 10.0 * len(configs) * scale, "best_val_accuracy": best["val_accuracy"],
            "best": [best["hidden_size"], best["learning_rate"], best["l2"]], "test_accuracy": test,
            "scaled": scale != 1.0}


def original_retrain_accuracy(ds, hidden: int, lr: float, l2: float, seed: int) -> float:
    """The original exercise's retrain of one configuration: float64, its last epoch, then the
    test accuracy."""
    model = Float64MLP(hidden, seed)
    model.fit(ds.X_train.astype(np.float64), ds.y_train, lr, l2)
    return model.accuracy(ds.X_test.astype(np.float64), ds.y_test)


def seed_test_accuracies(name: str, row: dict, ds, seeds: int) -> list[float]:
    """Test accuracy of the peer's chosen configuration retrained with seeds 0 .. seeds-1, each
    the way that peer retrains."""
    H, lr, l2 = row["best"]
    if name.startswith(("1 ", "2 ")):
        from results.model.retrain import retrain
        return list(retrain(row["run_dir"], seeds=seeds, log=lambda m: None).seed_test_accuracies)
    if name.startswith("3 "):
        return [original_retrain_accuracy(ds, H, lr, l2, seed) for seed in range(seeds)]
    return [float(sklearn_retrain(ds, sklearn_params(H, lr, l2), seed).score(ds.X_test, ds.y_test))
            for seed in range(seeds)]


def sklearn_params(hidden: int, lr: float, l2: float) -> dict:
    """MLPClassifier's parameters for one configuration (alpha = l2 x 256: see the docstring)."""
    return {"hidden_layer_sizes": (hidden,), "learning_rate_init": lr, "alpha": l2 * 256}


def sklearn_retrain(ds, params: dict, seed: int = 0):
    """The chosen configuration fitted on the training split only, as this tool retrains."""
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return sklearn_estimator().set_params(**params, random_state=seed).fit(ds.X_train, ds.y_train)


def sklearn_estimator():
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(activation="relu", solver="sgd", batch_size=256, momentum=0.0,
                         nesterovs_momentum=False, learning_rate="constant", max_iter=10,
                         n_iter_no_change=1000, tol=0.0, shuffle=True, early_stopping=False,
                         random_state=0)


def sklearn_peer(ds, configs, scale, halving: bool) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    X = np.concatenate([ds.X_train, ds.X_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    split = PredefinedSplit(np.r_[np.full(len(ds.X_train), -1), np.zeros(len(ds.X_val), int)])
    grid = [{k: [v] for k, v in sklearn_params(c["hidden_size"], c["learning_rate"], c["l2"]).items()}
            for c in configs]
    if halving:
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV
        search_cv = HalvingGridSearchCV(sklearn_estimator(), grid, cv=split, factor=3, n_jobs=os.cpu_count(),
                                        refit=False, random_state=0)
    else:
        search_cv = GridSearchCV(sklearn_estimator(), grid, cv=split, n_jobs=os.cpu_count(), refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        search_cv.fit(X, y)
        search_s = time.perf_counter() - t0
        p = search_cv.best_params_
        t1 = time.perf_counter()
        est = sklearn_retrain(ds, p)
        retrain_s = time.perf_counter() - t1
    res = search_cv.cv_results_
    if halving:  # full-data epoch equivalents: each fit trains 10 epochs on n_resources samples
        epochs = float(np.sum(np.asarray(res["n_resources"]) * 10) / len(ds.X_train))
    else:
        epochs = 10.0 * len(res["params"])
    return {"search_s": search_s * scale, "retrain_s": retrain_s, "trial_epochs": epochs * scale,
            "best_val_accuracy": float(search_cv.best_score_),
            "best": [p["hidden_layer_sizes"][0], p["learning_rate_init"], p["alpha"] / 256],
            "test_accuracy": float(est.score(ds.X_test, ds.y_test)), "scaled": scale != 1.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["mnist-small", "fashion-mnist"], default="mnist-small")
    ap.add_argument("--subset", type=int, default=None,
                    help="(lr, l2) pairs per hidden size for peers 3 and 4 (default: all 35)")
    ap.add_argument("--peers", default="1,2,3,4,5",
                    help="which peers to run, comma-separated (default: all five; peer 1 is the reference)")
    ap.add_argument("--best-pair", help="LR,L2 to include in the --subset when peer 2 is not run "
                                        "(the full grid's best pair from an earlier run)")
    ap.add_argument("--accuracy-seeds", type=int, default=0, metavar="N",
                    help="also retrain each peer's chosen configuration with seeds 0..N-1 and "
                         "compare mean test accuracies (not timed; N >= 2)")
    ap.add_argument("--json", help="write the table here too")
    args = ap.parse_args()
    peers = {int(p) for p in args.peers.split(",")}
    if 1 not in peers or not peers <= {1, 2, 3, 4, 5}:
        ap.error("--peers: a subset of 1,2,3,4,5 that includes 1")
    if args.accuracy_seeds == 1 or args.accuracy_seeds < 0:
        ap.error("--accuracy-seeds: at least 2 seeds (a standard error needs two)")
    if args.subset and 2 not in peers and not args.best_pair and peers & {3, 4}:
        ap.error("--subset without peer 2 needs --best-pair LR,L2")
    from mlp_core.data import load_dataset

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset, data_dir = data_for(args.dataset, tmp)
        ds = load_dataset(dataset, data_dir, 0.2, 0)
        print(f"{args.dataset}: {len(ds.X_train)} train / {len(ds.X_val)} validation / {len(ds.X_test)} test",
              flush=True)
        rows[OURS] = this_tool(dataset, data_dir, tmp, "default", "halving")
        print(rows, flush=True)
        best_pair = tuple(float(v) for v in args.best_pair.split(",")) if args.best_pair else None
        if 2 in peers:
            rows["2 this tool, full grid"] = full = this_tool(dataset, data_dir, tmp, "full", "none")
            print(rows, flush=True)
            best_pair = tuple(full["best"][1:])
        configs, scale = grid_subset(args.subset, best_pair if args.subset else None)
        if 3 in peers:
            rows["3 original: float64, sequential"] = original(ds, configs, scale)
            print(rows, flush=True)
        if 4 in peers:
            rows["4 GridSearchCV"] = sklearn_peer(ds, configs, scale, halving=False)
            print(rows, flush=True)
        if 5 in peers:
            full_configs, _ = grid_subset(None, None)
            rows["5 HalvingGridSearchCV"] = sklearn_peer(ds, full_configs, 1.0, halving=True)
        if args.accuracy_seeds:
            for name, row in rows.items():
                row["seed_test_accuracies"] = seed_test_accuracies(name, row, ds, args.accuracy_seeds)
                print(name, row["seed_test_accuracies"], flush=True)
    ours = rows[OURS]["search_s"] + rows[OURS]["retrain_s"]
    print("\n| peer | search s | retrain s | total s | × this tool | trial-epochs | best val. acc. "
          "| chosen (H, lr, L2) | test acc. of retrained best |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        total = r["search_s"] + r["retrain_s"]
        mark = " (scaled)" if r["scaled"] else ""
        print(f"| {name} | {r['search_s']:.0f}{mark} | {r['retrain_s']:.0f} | {total:.0f} | {total / ours:.1f} "
              f"| {r['trial_epochs']:.0f}{mark} | {100 * r['best_val_accuracy']:.2f}% "
              f"| {r['best'][0]}, {r['best'][1]:g}, {r['best'][2]:g} | {100 * r['test_accuracy']:.2f}% |")
    if args.accuracy_seeds:
        print_seed_table(rows, args.accuracy_seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def print_seed_table(rows: dict, seeds: int) -> None:
    def percent(row):
        return 100 * np.asarray(row["seed_test_accuracies"])

    def stats(a):
        return a.mean(), a.std(ddof=1) / np.sqrt(len(a))

    ours_mean, ours_se = stats(percent(rows[OURS]))
    print(f"\n| peer | chosen (H, lr, L2) | test acc., mean of seeds 0-{seeds - 1} | standard error "
          f"| min, max | mean − this tool's, pp (± SE) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        a = percent(r)
        mean, se = stats(a)
        diff = "—" if name.startswith("1 ") else f"{mean - ours_mean:+.2f} (± {np.hypot(se, ours_se):.2f})"
        print(f"| {name} | {r['best'][0]}, {r['best'][1]:g}, {r['best'][2]:g} | {mean:.2f}% | {se:.2f} pp "
              f"| {a.min():.2f}%, {a.max():.2f}% | {diff} |")


if __name__ == "__main__":
    main()
