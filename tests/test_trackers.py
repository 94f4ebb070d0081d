"""The trackers: a real MLflow tracking server on 127.0.0.1 (SQLite, a temporary folder) read back
with MlflowClient (one parent run, one nested run per trial whose metrics are its rows of
history.csv and partial_epochs.csv, the exported model's SHA-256 those of model.json), the same
with the server stopped mid-sweep (a warning, the sweep completes, `mlflow` later fills the gap
without copies), and TensorBoard's event files read back with TensorBoard's own reader."""
from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from helpers import cli, start
from results.folder import table as T

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboardX")

GRID = ("--hidden", "16,64", "--lr", "0.05,0.1", "--l2", "0.001,0.01", "--epochs", "3", "--batch-size", "64")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` on 127.0.0.1 with a SQLite store and its artifacts in `folder`."""

    def __init__(self, folder, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
             "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"],
            cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        pytest.fail("mlflow server did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc):
        self.stop()


def runs_of(uri: str, run_dir):
    """(the parent run, the trials' runs by trial id) of a run folder, as MLflow has them."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("mlp-sweep")
    parents = client.search_runs([exp.experiment_id], f"tags.mlp_sweep_run_dir = '{run_dir}'")
    assert len(parents) == 1
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'",
                                  max_results=5000)
    by_trial = {}
    for c in children:
        tid = c.data.tags["mlp_sweep_trial_id"]
        assert tid not in by_trial, f"trial {tid} logged twice"
        by_trial[tid] = c
    return client, parents[0], by_trial


def check_metrics(client, child, epochs, partial) -> None:
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, key))
        expected = [(int(r.epoch), r[key]) for _, r in epochs.iterrows() if np.isfinite(r[key])]
        assert np.allclose([v for _, v in logged], [v for _, v in expected]) and \
            [s for s, _ in logged] == [s for s, _ in expected], key
        inside = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, key + "_in_epoch_1"))
        expected = [(round(r.epoch * 100), r[key]) for _, r in partial.iterrows() if np.isfinite(r[key])]
        assert [s for s, _ in inside] == [s for s, _ in expected]
        assert np.allclose([v for _, v in inside], [v for _, v in expected])


def test_a_sweep_logged_live_to_a_tracking_server_reads_back_as_its_tables(tmp_path, small_data_dir):
    with Server(tmp_path) as server:
        r = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "s", "--mlflow", server.uri,
                "--tensorboard", *GRID)
        assert r.returncode == 0, r.stderr
        run_dir = (tmp_path / "s").resolve()
        assert "mlflow: 8 trial runs under the parent run" in r.stderr
        client, parent, children = runs_of(server.uri, run_dir)
        results, history, partial = T.load_results(run_dir), T.load_history(run_dir), T.load_partial(run_dir)
        assert set(children) == set(results[T.TRIAL_ID])
        for tid, child in children.items():
            row = results[results[T.TRIAL_ID] == tid].iloc[0]
            assert child.data.params["hidden_size"] == str(row.hidden_size)
            assert child.data.tags["status"] == row.status and child.info.status == "FINISHED"
            check_metrics(client, child, history[history[T.TRIAL_ID] == tid], partial[partial[T.TRIAL_ID] == tid])
        assert parent.data.params["dataset"] == "mnist" and parent.data.params["hidden"] == "16,64"
        meta = __import__("json").loads((run_dir / "best" / "model.json").read_text())
        for name, key in (("model.npz", "model_npz_sha256"), ("model.onnx", "model_onnx_sha256")):
            local = client.download_artifacts(parent.info.run_id, f"best/{name}", str(tmp_path))
            assert hashlib.sha256(open(local, "rb").read()).hexdigest() == meta[key]
        parent = client.get_run(parent.info.run_id)
        assert parent.info.status == "FINISHED" and parent.data.tags["chosen_trial"] == meta["trial_id"]
        assert parent.data.metrics["model_test_accuracy"] == pytest.approx(meta["test_accuracy"])
        if _pyfunc_onnx():  # the MLflow model: mlflow.onnx and mlflow.pyfunc load it
            import mlflow.onnx
            local = client.download_artifacts(parent.info.run_id, "model", str(tmp_path / "mlflow-model"))
            assert [i.name for i in mlflow.onnx.load_model(local).graph.input] == ["pixels"]
            x = np.zeros((2, 784), np.float32)
            out = mlflow.pyfunc.load_model(local).predict({"pixels": x})
            assert np.asarray(out["probabilities"]).shape == (2, 10)
        # logged again (the `mlflow` command): no second copy
        again = cli("mlflow", run_dir, "--uri", server.uri)
        assert again.returncode == 0 and "0 trial runs logged now, 8 in all" in again.stdout
        assert len(runs_of(server.uri, run_dir)[2]) == 8
    check_tensorboard(run_dir, results, history)


def _pyfunc_onnx() -> bool:
    try:
        import onnxruntime  # noqa: F401
        return True
    except ImportError:
        return False


def check_tensorboard(run_dir, results, history) -> None:
    """Every trial's scalars by epoch and its HParams summary, read by TensorBoard's reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for row in results.itertuples():
        ea = EventAccumulator(str(run_dir / "tensorboard" / row.trial_id), size_guidance={"scalars": 0})
        ea.Reload()
        epochs = history[history[T.TRIAL_ID] == row.trial_id]
        if len(epochs):
            logged = [(e.step, e.value) for e in ea.Scalars("val_accuracy")]
            assert [s for s, _ in logged] == [int(e) for e in epochs.epoch]
            assert np.allclose([v for _, v in logged], epochs.val_accuracy)
        content = ea.PluginTagToContent("hparams")
        start_info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hp = start_info.session_start_info.hparams
        assert hp["hidden_size"].number_value == row.hidden_size and hp["l2"].number_value == pytest.approx(row.l2)
        best = ea.Scalars("hparams/best_val_accuracy")[0].value
        assert best == pytest.approx(row.val_accuracy, nan_ok=True)


def test_a_server_stopped_mid_sweep_costs_a_warning_and_the_mlflow_command_fills_the_gap(tmp_path, small_data_dir):
    port = free_port()
    server = Server(tmp_path, port).__enter__()
    driver = start(["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "s", "--mlflow",
                    server.uri, "--no-retrain", "--epochs", "4"])
    run_dir = (tmp_path / "s").resolve()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:  # the first trials logged: stop it
            try:
                if runs_of(server.uri, run_dir)[2]:
                    break
            except (AssertionError, AttributeError, mlflow.exceptions.MlflowException):
                pass
            time.sleep(1)
        server.stop()
        out, err = driver.communicate(timeout=600)
    finally:
        server.stop()
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err
    assert err.count("warning: mlflow: MLflow at") == 1 and "cannot reach the tracking server" in err
    assert f"log it with: mlp-sweep mlflow {run_dir} --uri {server.uri}" in err
    with Server(tmp_path, port) as again:  # the same store: what was logged is kept
        r = cli("mlflow", run_dir, "--uri", again.uri)
        assert r.returncode == 0, r.stderr
        n = len(T.load_results(run_dir))
        assert "in all" in r.stdout and len(runs_of(again.uri, run_dir)[2]) == n
