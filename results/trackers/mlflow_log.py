"""A run folder in MLflow: one parent run per sweep (its settings, the data's SHA-256, the run
folder, the chosen trial and its figures, the report, the plots and the exported model as
artifacts, the model also as an MLflow model mlflow.onnx and mlflow.pyfunc load) and one nested
run per finished trial (its hyperparameters; its epochs' and the first epoch's rungs' losses
and accuracies as metrics with their step; its status, epochs, rung and node).

Everything is read from the run folder's tables, so logging a folder live (search/tracking.py,
beside the sweep), after a resume, or later (`mlp-sweep mlflow RUN`) gives the same runs: the
parent is found again by its tag (the run folder's path), each trial's run by its trial id, and
a trial's run is complete once it is ended (FINISHED, or FAILED for a trial that failed for
good), its last call: one still RUNNING was cut short and is logged again.
Nothing here touches the sweep. Needs the mlflow extra (pip install -e '.[mlflow]').

Leaves out when it is called (search/tracking.py, run_search.py's `mlflow` command).
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlp_core.train import EPOCH, TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS

from ..columns import BEST_DIR, MODEL_JSON, MODEL_NPZ, MODEL_ONNX, PLOTS_DIR, SWEEP_FILE
from ..folder import table as T

EXPERIMENT = "mlp-sweep"
RUN_DIR_TAG, TRIAL_TAG = "mlp_sweep_run_dir", "mlp_sweep_trial_id"
PARENT_TAG = "mlflow.parentRunId"
EPOCH_METRICS = (TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY)
IN_EPOCH_1 = "_in_epoch_1"  # a rung inside the first epoch: its metrics, step = percent of the epoch
# A tracking server that does not answer fails a call quickly instead of after MLflow's minutes
# of retries: the sweep goes on and says so (its own settings win where the user set them)
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class TrackerError(Exception):
    """The tracking server could not be reached or refused a call: what was not logged is
    logged by the next sync, or by `mlp-sweep mlflow RUN` later."""


@dataclass
class Logged:
    parent: str  # the parent run's id
    trials: int  # trials logged by this call
    total: int  # trials in MLflow now, of those finished in the tables
    uri: str
    artifacts: bool = False
    skipped: list[str] = field(default_factory=list)


def client_for(uri: str | None):
    """An MlflowClient for `uri` ($MLFLOW_TRACKING_URI, else MLflow's own default)."""
    for k, v in CLIENT_ENV.items():
        os.environ.setdefault(k, v)
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackerError("--mlflow needs MLflow: pip install -e '.[mlflow]'") from None
    uri = uri or mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri), uri


def log_run(run_dir: str | Path, uri: str | None = None, final: bool = True) -> Logged:
    """Log the run folder's finished trials not yet in MLflow (and, `final`, the sweep's outcome
    and its artifacts). Raises TrackerError naming what failed."""
    run_dir = Path(run_dir).resolve()
    client, uri = client_for(uri)
    try:
        return _log(client, uri, run_dir, final)
    except TrackerError:
        raise
    except Exception as e:  # noqa: BLE001 - MLflow's and requests' errors: one line, and go on
        raise TrackerError(f"MLflow at {uri}: {_reason(e)}") from e


def _log(client, uri: str, run_dir: Path, final: bool) -> Logged:
    from mlflow.entities import RunStatus

    sweep = T.load_sweep(run_dir)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    parent = _parent(client, experiment_id, run_dir, sweep)
    complete, cut_short = _children(client, experiment_id, parent)
    for run_id in cut_short:  # left by an earlier call that stopped midway: its trial is logged again, whole
        client.delete_run(run_id)
    results, by_trial, partial_by = tables_by_trial(run_dir)
    logged = 0
    for row in results.to_dict("records"):
        tid = str(row[T.TRIAL_ID])
        if tid in complete:
            continue
        _log_trial(client, experiment_id, parent, row, by_trial.get(tid), partial_by.get(tid))
        logged += 1
    total = len(complete & set(results[T.TRIAL_ID].astype(str))) + logged
    outcome = Logged(parent, logged, total, uri)
    if final:
        _log_outcome(client, parent, run_dir, results)
        outcome.artifacts = True
        client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
    return outcome


def tables_by_trial(run_dir: Path):
    """results.csv, and each trial's rows of history.csv and of partial_epochs.csv."""
    history, partial = T.load_history(run_dir), T.load_partial(run_dir)
    return (T.load_results(run_dir), {tid: rows for tid, rows in history.groupby(T.TRIAL_ID)},
            {tid: rows for tid, rows in partial.groupby(T.TRIAL_ID)} if len(partial) else {})


def _parent(client, experiment_id: str, run_dir: Path, sweep: dict) -> str:
    """The sweep's parent run: found by the run folder's tag (a resume, a later `mlflow`
    command), or created with the sweep's settings as its params."""
    from mlflow.entities import Param

    found = client.search_runs([experiment_id], f"tags.{RUN_DIR_TAG} = '{_quoted(str(run_dir))}'",
                               max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(experiment_id, run_name=run_dir.name,
                            tags={RUN_DIR_TAG: str(run_dir), "mlp_sweep_kind": "sweep"})
    params = {k: _text(v) for k, v in sweep.items() if k not in ("dataset_files", "data_facts", "created")}
    for role, f in (sweep.get("dataset_files") or {}).items():
        params[f"{role}_sha256"] = f.get("sha256", "")
    params["run_dir"] = str(run_dir)
    items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


def _children(client, experiment_id: str, parent: str) -> tuple[set[str], list[str]]:
    """(the trial ids whose runs are complete, the run ids of runs still RUNNING: cut short)."""
    complete, cut_short, token = set(), [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent}'", max_results=1000,
                                  page_token=token)
        for run in page:
            tid = run.data.tags.get(TRIAL_TAG)
            if tid is None:
                continue
            if run.info.status in ("FINISHED", "FAILED"):
                complete.add(tid)
            else:
                cut_short.append(run.info.run_id)
        token = page.token
        if not token:
            return complete, cut_short


def _log_trial(client, experiment_id: str, parent: str, row: dict, epochs, partial) -> None:
    from mlflow.entities import Metric, Param, RunStatus, RunTag

    tid = str(row[T.TRIAL_ID])
    config = ", ".join(f"{h}={row[h]:g}" for h in T.HYPERPARAMETERS)
    run = client.create_run(experiment_id, run_name=f"{tid} ({config})",
                            tags={PARENT_TAG: parent, TRIAL_TAG: tid})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = []
    for r in ([] if epochs is None else epochs.to_dict("records")):
        stamp = _stamp(r, now)
        metrics += [Metric(k, float(r[k]), stamp, int(r[EPOCH])) for k in EPOCH_METRICS if finite(r.get(k))]
    for r in ([] if partial is None else partial.to_dict("records")):
        stamp, step = _stamp(r, now), int(round(float(r[EPOCH]) * 100))
        metrics += [Metric(k + IN_EPOCH_1, float(r[k]), stamp, step) for k in EPOCH_METRICS if finite(r.get(k))]
    metrics.append(Metric("epochs_run", float(row[T.EPOCHS]), now, 0))
    params = [Param(h, _text(row[h])) for h in T.HYPERPARAMETERS]
    tags = [RunTag("status", str(row[T.STATUS])), RunTag("epochs", _text(row[T.EPOCHS])),
            RunTag("node_id", _text(row.get(T.NODE_ID))), RunTag("stopped_at_rung", _text(row.get(T.STOPPED_AT_RUNG)))]
    # three calls a trial (each a commit of the store): created, logged in one batch, ended
    for i in range(0, max(len(metrics), 1), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000], params=params if i == 0 else (),
                         tags=tags if i == 0 else ())
    failed = row[T.STATUS] == T.Status.ERROR
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))


def _log_outcome(client, parent: str, run_dir: Path, results) -> None:
    """The chosen trial and its figures, the report, the plots, the exported model."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    best = T.best_trial(results)
    tags = [RunTag("chosen_trial", str(best[T.TRIAL_ID]))]
    metrics = [Metric("trials", float(len(results)), now, 0)]
    if finite(best.get(VAL_ACCURACY)):
        metrics.append(Metric("best_val_accuracy", float(best[VAL_ACCURACY]), now, 0))
    model_json = run_dir / BEST_DIR / MODEL_JSON
    if model_json.is_file():
        from ..model.load import read_model_json
        meta = read_model_json(model_json)
        for k in ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "best_epoch"):
            if finite(meta.get(k)):
                metrics.append(Metric(f"model_{k}", float(meta[k]), now, 0))
        tags.append(RunTag("model_trial", str(meta.get("trial_id"))))
    client.log_batch(parent, metrics=metrics, tags=tags)
    for name in ("report.html", SWEEP_FILE, T.RESULTS_FILE):
        if (run_dir / name).is_file():
            client.log_artifact(parent, str(run_dir / name))
    if (run_dir / PLOTS_DIR).is_dir():
        client.log_artifacts(parent, str(run_dir / PLOTS_DIR), PLOTS_DIR)
    model_dir = run_dir / BEST_DIR
    for name in (MODEL_NPZ, MODEL_ONNX, MODEL_JSON, "history.csv"):
        if (model_dir / name).is_file():
            client.log_artifact(parent, str(model_dir / name), BEST_DIR)
    if (model_dir / MODEL_ONNX).is_file():
        _log_mlflow_model(client, parent, model_dir / MODEL_ONNX)


def _log_mlflow_model(client, parent: str, onnx_path: Path) -> None:
    """best/model.onnx as an MLflow model (artifact path "model"): mlflow.onnx.load_model and
    mlflow.pyfunc.load_model read it (where the installed MLflow and onnx allow)."""
    try:
        import mlflow.onnx
        import onnx
    except ImportError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.onnx.save_model(onnx.load(str(onnx_path)), str(Path(tmp) / "model"))
        client.log_artifacts(parent, str(Path(tmp) / "model"), "model")


def _reason(e: Exception) -> str:
    """An MLflow or HTTP error in a short line: a refused or dropped connection said as such."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    for words in ("Connection refused", "RemoteDisconnected", "timed out", "Name or service not known"):
        if words in text:
            return f"cannot reach the tracking server ({words})"
    return text[:200]


def _stamp(row: dict, now: int) -> int:
    ended = row.get(T.ENDED_AT)
    return int(float(ended) * 1000) if finite(ended) else now


def finite(v) -> bool:
    """A number that is not NaN or infinite (a table's cell may be empty, text or NaN)."""
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
