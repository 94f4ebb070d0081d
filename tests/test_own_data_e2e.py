"""Your own data end to end, on real data shipped in a package (scikit-learn's breast cancer set,
written as a CSV with text labels, and its handwritten digits given as arrays from Python): the
sweep, the exported model with its class names, evaluate and predict on raw rows, the ONNX graph
against NumPy, retrain and resume from the run folder alone, and bad data refused before
anything is written."""
from __future__ import annotations

import json
import signal

import numpy as np
import pandas as pd
import pytest

from helpers import cli
from mlp_core.model import predict_proba, raw_inputs
from results.model.load import load_model
from results.run import Run

pytestmark = pytest.mark.slow
sklearn_datasets = pytest.importorskip("sklearn.datasets")

SMALL = ("--hidden", "16,64", "--lr", "0.01,0.1", "--l2", "0.001", "--epochs", "3", "--batch-size", "32")


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """A finished sweep of the breast cancer CSV (labels benign / malignant)."""
    d = sklearn_datasets.load_breast_cancer()
    folder = tmp_path_factory.mktemp("cancer")
    frame = pd.DataFrame(d.data, columns=[c.replace(" ", "_") for c in d.feature_names])
    frame.insert(0, "diagnosis", np.asarray(d.target_names)[d.target])
    frame.to_csv(folder / "cancer.csv", index=False)
    r = cli("run", "--data", folder / "cancer.csv", "--label", "diagnosis", "--out", folder, "--name", "s", *SMALL)
    assert r.returncode == 0, r.stderr
    return folder, r


def test_a_csv_sweep_exports_a_model_of_its_classes_that_takes_raw_rows(cancer):
    folder, r = cancer
    run_dir = folder / "s"
    assert "cancer.csv: 365 training rows of 30 features, 2 classes" in r.stderr
    run = Run(run_dir)
    assert len(run.results) == 4 and run.settings["dataset"] == "file"
    assert run.settings["data_facts"]["rows"] == {"train": 365, "validation": 91, "test": 113}
    params, meta = run.model()
    assert meta["classes"] == ["benign", "malignant"] and params.W1.shape[0] == 30 and params.n_classes == 2
    assert "x_mean" in meta["arrays"] and meta["dataset"]["feature_names"][0] == "mean_radius"
    # evaluate reads the run's test rows raw, and the model scales them: the export's own figure
    e = cli("evaluate", run_dir / "best")
    assert e.returncode == 0, e.stderr
    assert f"113 rows: accuracy {meta['test_accuracy']:.4f}" in e.stdout and "malignant" in e.stdout
    report = (run_dir / "report.html").read_text()
    assert "cancer.csv: 365 training, 91 validation and 113 test rows of 30 features (standard)" in report
    assert "2 classes: benign 63%, malignant 37%" in report


def test_predict_names_the_class_of_each_raw_row_and_onnx_agrees_with_numpy(cancer, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    folder, _ = cancer
    model_dir = folder / "s" / "best"
    rows = pd.read_csv(folder / "cancer.csv").iloc[[0, 19, 100]]  # malignant, benign, malignant
    rows[["diagnosis", *rows.columns[1:][::-1]]].to_csv(tmp_path / "rows.csv", index=False)  # any order
    p = cli("predict", model_dir, tmp_path / "rows.csv", "--out", tmp_path / "pred.csv")
    assert p.returncode == 0, p.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    params, meta = load_model(model_dir)
    raw = rows.drop(columns="diagnosis").to_numpy(np.float32)
    expected = predict_proba(params, raw_inputs(params, raw))
    assert list(pred["class"]) == [meta["classes"][k] for k in expected.argmax(axis=1)]
    assert np.allclose(pred["probability"], expected.max(axis=1), atol=1e-6)
    assert (pred["class"] == rows["diagnosis"].to_numpy()).sum() >= 2
    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    logits, proba = session.run(None, {"features": raw})
    assert logits.shape == (3, 2) and np.allclose(proba, expected, atol=1e-5)
    shown = cli("predict", model_dir, tmp_path / "rows.csv")
    assert f"rows.csv:1: {pred['class'][0]} (probability" in shown.stdout


def test_retrain_and_a_changed_file_under_resume(cancer):
    folder, _ = cancer
    run_dir = folder / "s"
    before = json.loads((run_dir / "best" / "model.json").read_text())
    r = cli("retrain", run_dir)
    assert r.returncode == 0, r.stderr
    after = json.loads((run_dir / "best" / "model.json").read_text())
    # retrained with the trial's seed and threads: the same weights as the trial's own export
    assert after["test_accuracy"] == before["test_accuracy"] and after["model_npz_sha256"] == before["model_npz_sha256"]
    changed = folder / "cancer.csv"
    changed.write_text(changed.read_text().replace("malignant", "Malignant", 1))
    r = cli("run", "--out", folder, "--name", "s", "--resume")
    assert r.returncode == 2 and "--resume: the dataset differs" in r.stderr and "cancer.csv" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_data_stops_in_one_line_with_exit_2_and_writes_nothing(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0, "x"], "label": [0, 1, 0]}).to_csv(tmp_path / "bad.csv", index=False)
    r = cli("run", "--data", tmp_path / "bad.csv", "--out", tmp_path / "o", *SMALL)
    assert r.returncode == 2, r.stderr
    assert "bad.csv: column 'a', row 3 (line 4): 'x' is not a number" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()
    r = cli("run", "--data", tmp_path / "bad.csv", "--dataset", "digits", "--out", tmp_path / "o")
    assert r.returncode == 2 and "give one of them" in r.stderr


def test_arrays_from_python_are_kept_in_the_run_folder_for_resume_and_retrain(tmp_path):
    """api.run(X=..., y=...) on the handwritten digits (text labels, to show names kept)."""
    from search import api

    d = sklearn_datasets.load_digits()
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    sigint = signal.getsignal(signal.SIGINT)
    run = api.run(tmp_path, "digits", X=d.data, y=names[d.target], hidden=[32], lr=[0.1], l2=[0.0001],
                  epochs=3, batch_size=32)
    assert signal.getsignal(signal.SIGINT) is sigint  # not Tune's, left behind: a notebook's next Ctrl-C works
    assert (tmp_path / "digits" / "data.npz").is_file()
    assert run.settings["data"] == str(tmp_path / "digits" / "data.npz")
    params, meta = run.model()
    assert meta["classes"] == sorted(names.tolist()) and params.W1.shape == (64, 32)
    assert run.exported.test_accuracy > 0.9
    again = api.run(tmp_path, "digits", resume=True)  # from the folder alone: nothing to run
    assert again.results.equals(run.results)
    with pytest.raises(api.SweepError, match="X, y: a resumed sweep reads the arrays"):
        api.run(tmp_path, "digits", resume=True, X=d.data, y=d.target)
