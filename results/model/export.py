"""The chosen model written as the run's best/ folder: model.npz (float32 W1, b1, W2, b2), model.onnx
(onnx_export.py), model.json (what it is, how it scored, on which data, with which libraries),
history.csv (its epochs) and its plots; whether its weights were read from the trial's
checkpoints (from_checkpoints.py) or trained again (retrain.py).

Leaves out training and reading the model back (load.py).
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from mlp_core.data import Dataset, sha256_file
from mlp_core.model import Params, save_params
from mlp_core.train import EPOCH, TEST_ACCURACY, TEST_LOSS, TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS

from ..columns import BEST_DIR, MODEL_JSON, MODEL_NPZ
from ..folder import table as T
from ..folder.table import write_json_atomic
from ..folder.writer import write_frame
from ..sweep import settings
from .figures import draw_best_plots
from .onnx_export import write_onnx

BEST_HISTORY = "history.csv"  # in best/: the exported model's epochs
BEST_HISTORY_COLUMNS = [EPOCH, TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY, TEST_LOSS,
                        TEST_ACCURACY]
INPUT_FORMAT = ("28x28 image flattened row-major to 784 values, pixels / 255 as float32 "
                "(white digit on black, as in MNIST); logits = relu(x @ W1 + b1) @ W2 + b2")
MLP = "logits = relu(x @ W1 + b1) @ W2 + b2"


def input_format(data: Dataset, params: Params) -> str:
    """What model.json says the model takes, for data other than MNIST's IDX files."""
    D = params.n_inputs
    kind = data.scaling.kind
    if kind == "pixels":
        return f"{D} pixel values (an image flattened row-major), / 255 as float32; {MLP}"
    order = f"the {D} features in the order of dataset.feature_names"
    if kind == "standard":
        return (f"{order}, raw, as float32: the model standardises them, x = (raw - x_mean) / x_std "
                f"(model.npz, and inside model.onnx); {MLP}")
    return f"{order}, as float32, as given; {MLP}"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "pandas", "matplotlib", "ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def export_model(model_dir: str | Path, params: Params, meta: dict) -> str | None:
    """Write model.npz, model.onnx (onnx_export.py) and model.json into model_dir (each
    atomically); returns why model.onnx was not written, or None."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    save_params(model_dir / MODEL_NPZ, params)
    onnx_sha256, no_onnx = write_onnx(model_dir, params)
    doc = {"format": "mlp-sweep model v1", "input": INPUT_FORMAT,
           # the weights this file describes: a crash between the two writes, or a model.npz
           # copied from elsewhere, is caught on loading instead of mislabelled
           "model_npz_sha256": sha256_file(model_dir / MODEL_NPZ),
           **({"model_onnx_sha256": onnx_sha256} if onnx_sha256 else {}),
           "arrays": {"W1": [params.n_inputs, params.hidden_size], "b1": [params.hidden_size],
                      "W2": [params.hidden_size, params.n_classes], "b2": [params.n_classes],
                      **({"x_mean": [params.n_inputs], "x_std": [params.n_inputs]} if params.scaling else {})},
           "libraries": library_versions(),
           "exported_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           **meta}
    write_json_atomic(doc, model_dir / MODEL_JSON)
    return no_onnx



@dataclass
class ExportedModel:
    trial_id: str
    config: dict
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    seed_test_accuracies: list[float]
    model_dir: Path
    # "retrained": trained again from scratch (retrain.py); "checkpoints": the trial's own weights
    # as the sweep trained them, read from its checkpoints (from_checkpoints.py)
    source: str = "retrained"
    note: str | None = None  # why best/model.onnx was not written

    def summary(self) -> str:
        cfg = ", ".join(f"{k}={self.config[k]:g}" if isinstance(self.config[k], float)
                        else f"{k}={self.config[k]}" for k in T.HYPERPARAMETERS)
        done = "retrained" if self.source == "retrained" else "exported"
        text = (f"{done} trial {self.trial_id} ({cfg}): best epoch {self.best_epoch}, "
                f"val_accuracy {self.val_accuracy:.4f}, test_accuracy {self.test_accuracy:.4f}")
        accs = self.seed_test_accuracies
        if len(accs) > 1:
            text += (f"; over {len(accs)} seeds test_accuracy {np.mean(accs):.4f} "
                     f"± {np.std(accs, ddof=1):.4f} (mean ± sample std)")
        return text + f"\nmodel: {self.model_dir}" + (f"\nnote: {self.note}" if self.note else "")


@dataclass
class Weights:
    """The weights to export and what they were measured at: their epoch, (loss, accuracy) on
    the validation and test sets, the seed they were trained with, and their run's epochs
    (BEST_HISTORY_COLUMNS)."""
    params: Params
    best_epoch: int
    val: tuple[float, float]
    test: tuple[float, float]
    seed: int
    history: pd.DataFrame


def write_export(run_dir: Path, row: pd.Series, sweep: dict, weights: Weights, data: Dataset) -> ExportedModel:
    """Write trial `row`'s chosen weights as best/model.npz, model.onnx and model.json, their
    run's epochs as best/history.csv, and their plots. `data`: the sweep's (its files, path and
    SHA-256 by role; of data other than MNIST's, its classes and scaling, which the model keeps:
    it then takes raw features)."""
    model_dir = run_dir / BEST_DIR
    config = {s.column: s.kind.item(row[s.column]) for s in settings.AXES}
    (val_loss, val_acc), (test_loss, test_acc) = weights.val, weights.test
    best_epoch, params, files = weights.best_epoch, weights.params, data.files
    own = {}  # what model.json says of data other than MNIST's IDX files
    if data.scaling is not None:
        if data.scaling.kind == "standard":
            params = replace(params, scaling=(data.scaling.mean, data.scaling.std))
        own = {"input": input_format(data, params), "classes": list(data.classes)}
    model_dir.mkdir(parents=True, exist_ok=True)
    write_frame(weights.history, model_dir / BEST_HISTORY)
    note = export_model(model_dir, params, {
        **own,
        "trial_id": str(row[T.TRIAL_ID]), "hyperparameters": config,
        **settings.train_values(sweep), "seed": weights.seed, "best_epoch": best_epoch,
        "test_accuracy": test_acc, "test_loss": test_loss,
        "val_accuracy": val_acc, "val_loss": val_loss,
        "dataset": {"name": sweep["dataset"], "val_fraction": sweep["val_fraction"],
                    "split_seed": int(sweep["seed"]),
                    "files": {r: {"name": Path(f["path"]).name, "sha256": f["sha256"]}
                              for r, f in files.items()},
                    **(data.facts() if own else {})},
    })
    draw_best_plots(run_dir, weights.history, params)
    return ExportedModel(str(row[T.TRIAL_ID]), config, best_epoch, val_acc, test_acc, test_loss,
                         [test_acc], model_dir, note=note)
