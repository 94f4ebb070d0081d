"""Before a sweep's trials run: its data loaded and checked against its settings (and, on a
resume, against the data it started with), and its run folder claimed.

Leaves out running the trials (sweep.py).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from mlp_core.data import DATASETS, resolve_data_dir, sha256_file
from mlp_core.tabular import Labelled
from results.folder import table as T
from results.folder.dataset import keep_arrays, load_data
from results.folder.runfolder import LOCK_FILE, create_run_folder, take_folders
from results.sweep.settings import FROM_FILE
from results.sweep.spec import SweepSpec, changed_files

from .errors import SweepError


def load_checked_data(spec: SweepSpec, resume: bool, given: Labelled | None = None):
    """The sweep's dataset, split by its seed; SweepError when the split leaves too few
    validation rows, the batch outgrows the training set, or a resume finds other data.
    Records the data's folder and files' SHA-256 in `spec` for sweep.json."""
    if resume and spec.dataset == FROM_FILE and spec.data and Path(spec.data).is_file():
        # a data file is checked before it is read: what changed is said, not what it now lacks
        _same_files(spec, {"data": {"path": spec.data, "sha256": sha256_file(spec.data)}})
    data = load_data(spec, given)
    rows = "images" if spec.dataset in DATASETS else "rows"
    if len(data.X_val) < data.n_classes:
        raise SweepError(f"--val-fraction: {spec.val_fraction} holds out {len(data.X_val)} of "
                         f"{len(data.X_train) + len(data.X_val)} training {rows}, fewer than the "
                         f"{data.n_classes} classes: validation accuracy would mean nothing")
    if spec.batch_size > len(data.X_train):
        raise SweepError(f"--batch-size: {spec.batch_size} is larger than the training set "
                         f"({len(data.X_train)} {rows})")
    if resume:
        _same_files(spec, data.files)
    if spec.dataset in DATASETS:
        spec.data_dir = str(resolve_data_dir(spec.dataset, spec.data_dir))
    spec.dataset_files = data.files
    spec.data_facts = data.facts()
    return data


def _same_files(spec: SweepSpec, files: dict) -> None:
    changed = changed_files(spec.dataset_files or {}, files)
    if changed:
        raise SweepError(f"--resume: the dataset differs from the one the sweep started with "
                         f"({', '.join(changed)})")


def claim_run_folder(spec: SweepSpec, run_dir: Path, resume: bool, storage_path: str,
                     tune_name: str, given: Labelled | None = None) -> list:
    """Create the run folder (a new sweep), take this driver's locks, write sweep.json (a new
    sweep), with data.npz before it for arrays `given` from Python; a new folder is removed again
    when its lock cannot be had. Returns the locks."""
    if not resume:
        create_run_folder(run_dir)
    try:
        locks = take_folders(run_dir, storage_path, tune_name, resume)
    except SweepError:
        if not resume:  # the folder this call just made, holding only the lock file
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()
        raise
    if not resume:
        if given is not None:
            spec.dataset_files = keep_arrays(run_dir, given)
            spec.data = spec.dataset_files["data"]["path"]
        T.write_json_atomic({**spec.to_json(), "created": _dt.datetime.now().isoformat(timespec="seconds")},
                            run_dir / T.SWEEP_FILE)
    return locks
