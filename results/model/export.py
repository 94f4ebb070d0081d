"""The exported model: model.npz (float32 W1, b1, W2, b2) beside model.json (what it is, how it
scored, on which data, with which libraries).

Leaves out training. Loading never unpickles and checks names, shapes, dtypes and finiteness.
"""
from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from pathlib import Path

from mlp_core.data import sha256_file
from mlp_core.model import ModelFileError, Params, load_params, save_params

from ..folder.schema import MODEL_FIELDS, read_json
from ..folder.table import write_json_atomic
from .onnx_export import write_onnx

MODEL_NPZ = "model.npz"
MODEL_JSON = "model.json"
INPUT_FORMAT = ("28x28 image flattened row-major to 784 values, pixels / 255 as float32 "
                "(white digit on black, as in MNIST); logits = relu(x @ W1 + b1) @ W2 + b2")


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
           "arrays": {"W1": [784, params.hidden_size], "b1": [params.hidden_size],
                      "W2": [params.hidden_size, 10], "b2": [10]},
           "libraries": library_versions(),
           "exported_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           **meta}
    write_json_atomic(doc, model_dir / MODEL_JSON)
    return no_onnx


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """Accept the model folder or its model.npz; return (npz, json) paths."""
    path = Path(path)
    if path.is_dir():
        return path / MODEL_NPZ, path / MODEL_JSON
    return path, path.with_name(MODEL_JSON)


def load_model(path: str | Path) -> tuple[Params, dict]:
    npz, js = model_paths(path)
    if not npz.exists():
        raise ModelFileError(f"{npz}: file not found")
    params = load_params(npz)
    meta: dict = {}
    if js.exists():
        meta = read_model_json(js)
        recorded = meta.get("model_npz_sha256")
        if recorded is not None and recorded != sha256_file(npz):
            raise ModelFileError(f"{js}: describes other weights than {npz} (its model_npz_sha256 "
                                 f"is not the file's): the two are from different exports")
    return params, meta


def read_model_json(js: Path) -> dict:
    """model.json, checked against its declared fields (results/folder/schema.py): ModelFileError
    naming the file and the field."""
    return read_json(js, MODEL_FIELDS, ModelFileError)
