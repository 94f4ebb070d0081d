"""An exported model read back (model.npz beside model.json): what evaluate, predict, the report,
the Python Run and the ONNX command load. Never unpickles; checks names, shapes, dtypes and
finiteness, and that model.json describes these very weights.

Leaves out writing it (export.py).
"""
from __future__ import annotations

from pathlib import Path

from mlp_core.data import sha256_file
from mlp_core.model import ModelFileError, Params, load_params

from ..columns import MODEL_JSON, MODEL_NPZ
from ..folder.schema import MODEL_FIELDS, read_json


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
