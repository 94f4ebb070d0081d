"""The sweep's data read back after the sweep, as it trained on it: the same files (their SHA-256
against sweep.json's) and the same split, or the test set alone.

Leaves out reading and splitting the files (mlp_core.data) and checking them before a sweep or
a resume (search/prepare.py).
"""
from __future__ import annotations

import numpy as np

from mlp_core.data import DataError, load_dataset, locate_files, read_idx_pair, sha256_file, to_features

from ..sweep.spec import changed_files


def dataset_for_run(sweep: dict, data_dir: str | None = None):
    """The same data and the same train/validation split the sweep used; data whose files
    differ from the sweep's (by SHA-256) is refused, naming the file."""
    data = load_dataset(sweep["dataset"], data_dir or sweep["data_dir"], sweep["val_fraction"],
                        sweep["seed"])
    _check_files(sweep, data.files)
    return data


def held_out_test_set(sweep: dict) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's test images and labels alone (all an export of its trained weights needs),
    checked against the SHA-256 sweep.json records."""
    paths = locate_files(sweep["dataset"], sweep["data_dir"], download=False,
                         roles=("test_images", "test_labels"))
    _check_files(sweep, {r: {"path": str(p), "sha256": sha256_file(p)} for r, p in paths.items()})
    images, labels = read_idx_pair(paths["test_images"], paths["test_labels"])
    return to_features(images), labels.astype(np.int64)


def _check_files(sweep: dict, files: dict) -> None:
    changed = changed_files(sweep.get("dataset_files") or {}, files)
    if changed:
        raise DataError(f"{', '.join(changed)}: not the file the sweep trained on (another SHA-256 "
                        f"than sweep.json records); point --data-dir at the sweep's data")
