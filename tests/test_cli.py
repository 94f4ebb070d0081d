"""run_search.py end to end, as a user runs it: a small real sweep with retrain, plots, export
and report; show / retrain / evaluate / predict on it; the exported model checked by an
independent reimplementation; bad input refused in one line."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import MNIST_DIR, cli, read_idx_raw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_data_dir):
    out = tmp_path_factory.mktemp("runs")
    r = cli("run", "--data-dir", small_data_dir, "--out", out, "--name", "e2e",
            "--hidden", "32,64", "--lr", "0.01,0.1", "--l2", "0.001,0.01", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    return out / "e2e", r


def test_run_writes_every_artefact(run):
    run_dir, r = run
    for name in ("results.csv", "history.csv", "sweep.json", "report.html", "best/model.npz", "best/model.onnx",
                 "best/model.json", "best/history.csv", "plots/loss.png", "plots/accuracy.png",
                 "plots/weights_fc1.png", "plots/weights_fc2.png", "plots/search_heatmap.png",
                 "plots/search_curves.png", "plots/search_effects.png", "plots/search_importance.png"):
        assert (run_dir / name).is_file(), name
    results = pd.read_csv(run_dir / "results.csv")
    assert list(results.columns[:12]) == ["trial_id", "hidden_size", "learning_rate", "l2", "status",
                                          "epochs", "val_accuracy", "val_loss", "train_loss",
                                          "train_accuracy", "time_s", "node_id"]
    assert len(results) == 8 and results["trial_id"].is_unique
    assert "round" not in results.columns and not (run_dir / "rounds.jsonl").exists()  # no --extend-edges
    hist = pd.read_csv(run_dir / "best/history.csv")
    assert list(hist.columns) == ["epoch", "train_loss", "train_accuracy", "val_loss",
                                  "val_accuracy", "test_loss", "test_accuracy"]
    assert list(hist["epoch"]) == [1, 2, 3]
    sweep = json.loads((run_dir / "sweep.json").read_text())
    assert sweep["rungs"] == [0.25, 1, 2, 4] and sweep["reduction_factor"] == 4  # the defaults
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 8 and "<table" in html
    assert "trials 8/8 done" in r.stderr  # the compact progress line
    assert "Trial status" not in r.stderr and "╭" not in r.stderr  # not Ray's tables


def test_exported_model_recomputed_independently(run, small_data_dir):
    run_dir, _ = run
    meta = json.loads((run_dir / "best/model.json").read_text())
    with np.load(run_dir / "best/model.npz", allow_pickle=False) as z:
        W1, b1, W2, b2 = z["W1"], z["b1"], z["W2"], z["b2"]
    assert W1.dtype == np.float32 and W1.shape == (784, meta["hyperparameters"]["hidden_size"])
    # the test set as written in the data folder, read here without the project's reader
    X = read_idx_raw(small_data_dir / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    y = read_idx_raw(small_data_dir / "t10k-labels-idx1-ubyte.gz", 8)
    x = X.astype(np.float32) / np.float32(255)
    logits = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    assert len(y) == 2000
    assert np.mean(logits.argmax(1) == y) == meta["test_accuracy"]
    assert meta["test_accuracy"] > 0.85
    for key in ("hyperparameters", "seed", "epochs", "test_loss", "val_accuracy", "libraries",
                "exported_at", "dataset"):
        assert key in meta
    assert meta["dataset"]["name"] == "mnist" and len(meta["dataset"]["files"]["test_images"]["sha256"]) == 64
    assert {"numpy", "ray", "pandas", "matplotlib", "python"} <= set(meta["libraries"])


def test_resume_refuses_a_different_schedule(run):
    run_dir, _ = run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    for flag, value, shown in (("--rungs", "1,3", "1,3"), ("--rungs", "0.5,1,2,4", "0.5,1,2,4"),
                               ("--hidden", "16", "16"),
                               ("--reduction-factor", "3", "3")):
        r = cli("run", "--out", run_dir.parent, "--name", run_dir.name, "--resume", flag, value,
                timeout=60)
        assert r.returncode == 2, r.stderr
        assert f"{flag}: {shown} differs from the sweep being resumed" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


def test_show_formats(run):
    run_dir, _ = run
    r = cli("show", run_dir, "--top", "3")
    assert r.returncode == 0 and "trial_id" in r.stdout and len(r.stdout.strip().splitlines()) >= 4
    r = cli("show", run_dir, "--format", "csv", "--sort", "val_loss", "--top", "8")
    df = pd.read_csv(pd.io.common.StringIO(r.stdout))
    assert len(df) == 8 and df["val_loss"].is_monotonic_increasing
    r = cli("show", run_dir, "--format", "json", "--top", "2")
    rows = json.loads(r.stdout)
    assert len(rows) == 2 and rows[0]["val_accuracy"] >= rows[1]["val_accuracy"]
    r = cli("show", run_dir, "--format", "markdown")
    assert r.stdout.startswith("| trial_id |")
    r = cli("show", run_dir, "--pivot")
    assert "hidden_size = 32" in r.stdout and "hidden_size = 64" in r.stdout
    # every cell with four decimals, learning rates as the grid gives them
    cells = [ln.split()[1:] for ln in r.stdout.splitlines() if ln.split()[:1] in (["0.01"], ["0.1"])]
    assert len(cells) == 4 and all(re.fullmatch(r"\d\.\d{4}", c) for row in cells for c in row), r.stdout
    r = cli("show", run_dir, "--pivot", "--format", "json")
    assert set(json.loads(r.stdout)) == {"32", "64"}
    r = cli("show", run_dir)  # what explained the accuracy, under the ranking
    assert "explained by:" in r.stdout and "learning_rate x l2" in r.stdout
    r = cli("show", run_dir, "--rungs")
    assert r.returncode == 0 and r.stdout.split()[:5] == ["rung", "entered", "went_on", "stopped", "cutoff"]
    r = cli("show", run_dir, "--sort", "nope")
    assert r.returncode == 2 and "no column 'nope'" in r.stderr


def test_show_names_the_grid_edge(run):
    run_dir, _ = run
    best = pd.read_csv(run_dir / "results.csv").sort_values("val_accuracy").iloc[-1]
    assert best["learning_rate"] == 0.1  # 3 epochs at 0.01 are far behind: the edge of --lr
    r = cli("show", run_dir)
    assert "learning_rate (0.1) is the largest value searched" in r.stdout
    assert "--lr upward (e.g. 1)" in r.stdout


def _best_files(run_dir) -> tuple[bytes, pd.DataFrame, dict]:
    return ((run_dir / "best/model.npz").read_bytes(), pd.read_csv(run_dir / "best/history.csv"),
            json.loads((run_dir / "best/model.json").read_text()))


def test_the_exported_model_is_the_chosen_trial_as_it_trained(run, tmp_path):
    """`run` exports the best trial's own best-epoch weights (no second training): model.json's
    validation figures are its results.csv row's, best/history.csv its history.csv rows, and only
    that trial kept weights in its checkpoints. `retrain` (the trial's seed and BLAS threads)
    gives the same bytes; so does the export when those checkpoints are gone (it trains again)."""
    from results.run import CHECKPOINTS, finish

    run_dir, r = run
    results = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    best = results.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    npz, hist, meta = _best_files(run_dir)
    assert "exported trial " + best["trial_id"] in r.stdout and "retraining" not in r.stderr
    assert meta["trial_id"] == best["trial_id"] and meta["best_epoch"] == best["best_epoch"]
    assert (meta["val_accuracy"], meta["val_loss"]) == (best["val_accuracy"], best["val_loss"])
    own = pd.read_csv(run_dir / "history.csv", dtype={"trial_id": str})
    own = own[own["trial_id"] == best["trial_id"]].sort_values("epoch").reset_index(drop=True)
    columns = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(hist[columns], own[columns], check_exact=True)
    assert hist.loc[hist["epoch"] == meta["best_epoch"], "test_accuracy"].item() == meta["test_accuracy"]
    kept = sorted((run_dir / "tune").glob("*/checkpoint_*/state.npz"))
    assert {p.parent.parent.name.split("_")[3] for p in kept} == {best["trial_id"].split("_")[1]}
    assert len(kept) == len(own)  # one state per whole epoch

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for state in copy.glob("tune/*/checkpoint_*/state.npz"):
        state.unlink()
    said = []
    finish(copy, CHECKPOINTS, log=said.append)
    assert any("training it again" in s for s in said)
    again = _best_files(copy)
    assert again[0] == npz
    pd.testing.assert_frame_equal(again[1], hist, check_exact=True)

    r = cli("retrain", run_dir)
    assert r.returncode == 0, r.stderr
    retrained = _best_files(run_dir)
    assert retrained[0] == npz and retrained[2]["test_accuracy"] == meta["test_accuracy"]
    pd.testing.assert_frame_equal(retrained[1], hist, check_exact=True)


def test_the_plot_process_draws_the_drivers_figures_and_falls_back_when_it_dies(run, tmp_path):
    """The search plots drawn in the second process (as `run` draws them, beside the export) are
    byte for byte the ones the driver draws itself; when that process dies, the driver draws
    them; an error in it reaches the caller as itself, naming the file."""
    import multiprocessing

    from results.folder.table import RunError
    from results.model.figures import draw_search_plots
    from results.model.plot_process import PlotProcess

    run_dir, _ = run
    here, there, orphan = (tmp_path / n for n in ("here", "there", "orphan"))
    for d in (here, there, orphan):
        shutil.copytree(run_dir, d)
        shutil.rmtree(d / "plots")
    draw_search_plots(here)
    with PlotProcess() as plots:
        plots.start()
        plots.search_plots(there)()
        names = sorted(p.name for p in (here / "plots").glob("search_*.png"))
        assert len(names) == 4 and names == sorted(p.name for p in (there / "plots").glob("*.png"))
        for name in names:
            assert (here / "plots" / name).read_bytes() == (there / "plots" / name).read_bytes(), name
            assert (run_dir / "plots" / name).read_bytes() == (here / "plots" / name).read_bytes(), name
        (orphan / "results.csv").unlink()
        with pytest.raises(RunError, match="results.csv"):
            plots.search_plots(orphan)()
        for killed_while_drawing in (True, False):  # the process dies at its task, or before
            shutil.rmtree(there / "plots")
            if killed_while_drawing:
                drawn = plots.search_plots(there)
            for child in multiprocessing.active_children():
                child.kill()
                child.join()
            if not killed_while_drawing:
                drawn = plots.search_plots(there)
            drawn()  # in this process, where the other could not finish
            for name in names:
                assert (there / "plots" / name).read_bytes() == (here / "plots" / name).read_bytes(), name


def test_retrain_with_seeds(run):
    run_dir, _ = run
    r = cli("retrain", run_dir, "--seeds", "2")
    assert r.returncode == 0, r.stderr
    assert "over 2 seeds test_accuracy" in r.stdout and "±" in r.stdout
    seeds = pd.read_csv(run_dir / "best/seeds.csv")
    assert list(seeds["seed"]) == [0, 1]
    first = json.loads((run_dir / "best/model.json").read_text())
    assert seeds["test_accuracy"].iloc[0] == first["test_accuracy"]


def test_retrain_a_chosen_trial(run):
    run_dir, _ = run
    results = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    worst = results.sort_values("val_accuracy").iloc[0]
    r = cli("retrain", run_dir, "--trial", worst["trial_id"])
    assert r.returncode == 0, r.stderr
    meta = json.loads((run_dir / "best/model.json").read_text())
    assert meta["trial_id"] == worst["trial_id"]
    r = cli("retrain", run_dir, "--trial", "nope")
    assert r.returncode != 0 and "no trial 'nope'" in r.stderr
    cli("retrain", run_dir)  # back to the best for the tests that follow


def test_evaluate_and_predict(run, small_data_dir, tmp_path):
    run_dir, _ = run
    model = run_dir / "best"
    meta = json.loads((model / "model.json").read_text())
    r = cli("evaluate", model, "--data-dir", small_data_dir)
    assert r.returncode == 0, r.stderr
    assert f"accuracy {meta['test_accuracy']:.4f}" in r.stdout
    assert "per-class accuracy" in r.stdout and "confusion matrix" in r.stdout
    assert (model / "confusion_matrix.png").is_file()
    X = read_idx_raw(MNIST_DIR / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y = read_idx_raw(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", 8)
    png, npy = tmp_path / "digit.png", tmp_path / "digit.npy"
    Image.fromarray(X[0]).save(png)
    np.save(npy, X[1])
    r = cli("predict", model, png, npy)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith(f"{png}: {y[0]} (probability")
    assert lines[1].startswith(f"{npy}: {y[1]} (probability")
    # the same model judged as if on Fashion-MNIST: its classes are named, not numbered
    r = cli("evaluate", model, "--data-dir", small_data_dir, "--dataset", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert "per-class accuracy: T-shirt/top: " in r.stdout and " Ankle boot " in r.stdout
    assert r.stdout.splitlines()[-2].lstrip().startswith("Ankle boot")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")
    r = cli("predict", model, tmp_path / "big.png")
    assert r.returncode == 1 and "expected 28x28" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--lr", "abc"], "argument --lr: 'abc' is not a number"),
    (["--lr", "nan"], "argument --lr: 'nan' must be finite"),
    (["--lr", "inf"], "argument --lr: 'inf' must be finite"),
    (["--lr", "0"], "argument --lr: 0 must be positive"),
    (["--l2", "-0.1"], "argument --l2: -0.1 must be non-negative"),
    (["--hidden", "0"], "argument --hidden: 0 must be a positive integer"),
    (["--hidden", "12.5"], "argument --hidden: '12.5' is not a whole number"),
    (["--hidden", ""], "argument --hidden: empty list"),
    (["--epochs", "0"], "argument --epochs: 0 must be a positive integer"),
    (["--batch-size", "-3"], "argument --batch-size: -3 must be a positive integer"),
    (["--name", "../x"], "--name: '../x' is not allowed"),
    (["--name", "/x"], "--name: '/x' is not allowed"),
    (["--scheduler", "hyperband"], "argument --scheduler: invalid choice"),
    (["--rungs", "2,2"], "argument --rungs: 2,2: rungs must be increasing"),
    (["--rungs", "1,0"], "argument --rungs: 1,0: 0 is not a positive number of epochs"),
    (["--rungs", "0.5,1.5"], "argument --rungs: 0.5,1.5: 1.5 is neither a whole number of epochs"),
    (["--rungs", "1,x"], "argument --rungs: 'x' is not a number"),
    (["--resume"], "--resume needs --name"),
])
def test_bad_flags_exit_2_in_one_line(args, message, tmp_path):
    r = cli("run", "--out", tmp_path, *args, timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_data_and_output_exit_nonzero_in_one_line(tmp_path, small_data_dir):
    r = cli("run", "--data-dir", tmp_path / "nowhere", "--out", tmp_path / "o", timeout=60)
    assert r.returncode == 1 and "missing from" in r.stderr and "t10k-images-idx3-ubyte.gz" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = cli("run", "--data-dir", small_data_dir, "--out", blocker, "--hidden", "8", "--lr", "0.1",
            "--l2", "0.001", "--epochs", "1", timeout=60)
    assert r.returncode == 2 and "--out: cannot write to" in r.stderr
    r = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--batch-size", "7000", timeout=60)
    assert r.returncode == 2 and "larger than the training set (6400 images)" in r.stderr


def test_the_installed_command_names_itself_and_run_search_py_keeps_its_name():
    """`mlp-sweep` (pip's console script) says mlp-sweep in its help, its errors and the commands
    it suggests; `python run_search.py` says run_search.py."""
    installed = Path(sys.executable).with_name("mlp-sweep")
    if not installed.exists():
        pytest.skip("mlp-sweep is not installed in this environment (pip install -e .)")
    env = {**os.environ, "MLP_SWEEP_MIRRORS": "http://127.0.0.1:9/"}
    usage = subprocess.run([str(installed), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: mlp-sweep "), usage.stdout
    bad = subprocess.run([str(installed), "run", "--epochs", "0"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("mlp-sweep: error: argument --epochs: 0 must be a positive integer "
                                  "(see 'mlp-sweep run --help')")
    missing = subprocess.run([str(installed), "show", "/nonexistent-run"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("mlp-sweep: error: "), missing.stderr
    again = cli("run", "--epochs", "0")
    assert again.stderr.startswith("run_search.py: error: argument --epochs: 0"), again.stderr
