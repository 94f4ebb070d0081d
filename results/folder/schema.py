"""The declared shape of sweep.json and model.json: a file with a field of the wrong type or shape
(a hand edit, a file from another tool) is refused on reading, naming the file and the field.

Leaves out the files' meaning (settings.py, sweep.py, export.py). Fields not declared here are
left alone.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path

from ..sweep import settings
from ..sweep.settings import NUMBER, NUMBERS, TEXT, TEXTS, WHOLE

OBJECT, FLAG = "an object", "true or false"

# field: (kind, required). Optional fields may also be null. Every setting of a sweep, as
# declared, and what the sweep records beside them.
SWEEP_FIELDS = {
    **{s.name: (s.kind.schema, s.name in settings.SWEEP_REQUIRED) for s in settings.SETTINGS},
    "dataset_files": (OBJECT, False), "data_facts": (OBJECT, False), "measure_rungs": (FLAG, False),
    "created": (TEXT, False),
}
MODEL_FIELDS = {
    "dataset": (OBJECT, False), "dataset.name": (TEXT, False), "hyperparameters": (OBJECT, False),
    "test_accuracy": (NUMBER, False), "test_loss": (NUMBER, False), "val_accuracy": (NUMBER, False),
    "val_loss": (NUMBER, False), "best_epoch": (NUMBER, False), "trial_id": (TEXT, False),
    "model_npz_sha256": (TEXT, False), "model_onnx_sha256": (TEXT, False), "arrays": (OBJECT, False),
    "classes": (TEXTS, False),
    # the training's settings, as declared: the grid point under "hyperparameters", the others
    # (epochs, batch_size, momentum, seed) beside it
    **{f"hyperparameters.{s.column}": (WHOLE if s.kind.item is int else NUMBER, False) for s in settings.AXES},
    **{s.train: (s.kind.schema, False) for s in settings.SETTINGS if s.train},
}


def _is(kind: str, v) -> bool:
    real = isinstance(v, numbers.Real) and not isinstance(v, bool)
    return {NUMBER: real, WHOLE: real and float(v).is_integer(), TEXT: isinstance(v, str),
            NUMBERS: isinstance(v, list) and all(isinstance(x, numbers.Real) and not isinstance(x, bool)
                                                 for x in v),
            TEXTS: isinstance(v, list) and all(isinstance(x, str) for x in v),
            OBJECT: isinstance(v, dict), FLAG: isinstance(v, bool)}[kind]


def problems(doc, fields: dict) -> list[str]:
    """What is wrong with `doc` against `fields`, one phrase per field (empty when it conforms).
    A dotted name ("dataset.name") looks inside an object."""
    if not isinstance(doc, dict):
        return ["the file holds no JSON object"]
    out = []
    for name, (kind, required) in fields.items():
        parent, _, key = name.rpartition(".")
        holder = doc.get(parent) if parent else doc
        if not isinstance(holder, dict) or key not in holder:
            if required and not parent:
                out.append(f"field {name!r} is missing")
            continue
        value = holder[key]
        if value is None and not required:
            continue
        if not _is(kind, value):
            out.append(f"field {name!r} should be {kind}, not {value!r}"[:200])
    return out


def read_json(path: Path, fields: dict, error: type[Exception]) -> dict:
    """The JSON object in `path`, checked against `fields`; `error` (naming the file, and the
    field where one is wrong) when it is missing, not JSON, or not of the declared shape."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    wrong = problems(doc, fields)
    if wrong:
        raise error(f"{path}: {wrong[0]}")
    return doc
