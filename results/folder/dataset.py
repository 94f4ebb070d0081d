"""A sweep's data: read and split as its settings say (IDX files, a bundled set, a file, or the
arrays a sweep from Python was given, kept in the run folder as data.npz), before the sweep and
again after it, the same split from the same files (their SHA-256 against sweep.json's).

Leaves out reading each kind of file (mlp_core.data, mlp_core.tabular) and the checks a sweep
makes before it starts (search/prepare.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mlp_core.data import (
    DATASETS,
    DataError,
    Dataset,
    class_names,
    load_dataset,
    locate_files,
    read_idx_pair,
    sha256_file,
    to_features,
)
from mlp_core.files import atomic_write
from mlp_core.tabular import BUNDLED, Labelled, bundled, make_labelled_dataset, read_source

from ..columns import DATA_FILE
from ..sweep.spec import SweepSpec, changed_files


def load_data(spec: SweepSpec, given: Labelled | None = None):
    """The sweep's dataset (mlp_core.data.Dataset), split by its seed: MNIST's or Fashion-MNIST's
    IDX files, a bundled set, the file spec.data names, or `given` (arrays from Python)."""
    if spec.dataset in DATASETS:
        return load_dataset(spec.dataset, spec.data_dir, spec.val_fraction, spec.seed)
    if given is not None:
        source = given
    elif spec.dataset in BUNDLED:
        source = bundled(spec.dataset)
        source.files = {"data": {"path": source.source, "sha256": array_digest(source.X, source.labels)}}
    elif spec.data:
        source = read_source(spec.data, spec.label, spec.features, spec.drop)
    else:
        raise DataError(f"--dataset {spec.dataset}: name the data with --data PATH")
    return make_labelled_dataset(source, spec.dataset, spec.val_fraction, spec.test_fraction, spec.seed,
                                 spec.scale)


def array_digest(*arrays) -> str:
    """The SHA-256 of arrays' dtypes, shapes and bytes: a bundled set's, so that a resume or a
    retraining can tell whether another version of its library changed it."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def keep_arrays(run_dir: Path, given: Labelled) -> dict:
    """Arrays given from Python written into the run folder (data.npz: X, y, X_test, y_test, no
    pickles), so that a resume, `retrain` and `evaluate` work from the folder alone; returns
    the file's role, path and SHA-256 for sweep.json."""
    path = Path(run_dir) / DATA_FILE
    arrays = {"X": given.X, "y": given.labels}
    if given.X_test is not None:
        arrays.update(X_test=given.X_test, y_test=given.labels_test)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return {"data": {"path": str(path), "sha256": sha256_file(path)}}


def dataset_for_run(sweep: dict, data: str | None = None):
    """The same data and the same splits the sweep used (`data`: where its IDX folder or data
    file is now, if it moved); data whose files differ from the sweep's (by SHA-256) is refused,
    naming the file."""
    spec = SweepSpec.from_json(sweep)
    if data and spec.dataset in DATASETS:
        spec.data_dir = data
    elif data:
        spec.data = data
    found = load_data(spec)
    _check_files(sweep, found.files)
    return found


def test_data(sweep: dict) -> Dataset:
    """The sweep's data with its test inputs and classes (all an export of its trained weights
    needs), checked against the SHA-256 sweep.json records: of IDX data the test files alone are
    read (its training and validation parts are left empty)."""
    if sweep["dataset"] not in DATASETS:
        return dataset_for_run(sweep)
    paths = locate_files(sweep["dataset"], sweep["data_dir"], download=False,
                         roles=("test_images", "test_labels"))
    files = {r: {"path": str(p), "sha256": sha256_file(p)} for r, p in paths.items()}
    _check_files(sweep, files)
    images, labels = read_idx_pair(paths["test_images"], paths["test_labels"])
    X_test, none = to_features(images), np.empty(0, np.int64)
    return Dataset(sweep["dataset"], X_test[:0], none, X_test[:0], none, X_test, labels.astype(np.int64),
                   sweep.get("dataset_files") or files, class_names(sweep["dataset"]))


def _check_files(sweep: dict, files: dict) -> None:
    changed = changed_files(sweep.get("dataset_files") or {}, files)
    if changed:
        flag = "--data-dir" if sweep["dataset"] in DATASETS else "--data"
        raise DataError(f"{', '.join(changed)}: not the file the sweep trained on (another SHA-256 "
                        f"than sweep.json records); point {flag} at the sweep's data")
