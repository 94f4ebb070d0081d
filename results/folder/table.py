"""The run's tables: column names, building results.csv from per-epoch history, reading the
tables back (with the journal of trials ended since their last rewrite), ranking, pivots and the
grid-edge advice.

Leaves out writing the tables while a sweep runs (writer.py), plotting and export. Needs only
pandas and the run folder's files: no Ray.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mlp_core.files import atomic_write
from mlp_core.train import EPOCH, TIME_S, TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_IMAGES, VAL_LOSS

from ..columns import (  # noqa: F401
    BEST_EPOCH,
    BLAS_THREADS,
    ENDED_AT,
    EPOCHS,
    HISTORY_FILE,
    JOURNAL_FILE,
    NODE_ID,
    PARTIAL_FILE,
    RESULTS_FILE,
    ROUND,
    STATE_FILE,
    STATUS,
    STOPPED_AT_RUNG,
    SWEEP_FILE,
    TRIAL_ID,
    Status,
)
from ..errors import RunError, read_log  # noqa: F401 (RunError: T.RunError to its readers)
from ..sweep import edges, settings
from .schema import SWEEP_FIELDS, read_json

HYPERPARAMETERS = settings.HYPERPARAMETERS  # the grid axes' columns, as declared
HIDDEN_SIZE, LEARNING_RATE, L2 = HYPERPARAMETERS

RESULTS_COLUMNS = [TRIAL_ID, HIDDEN_SIZE, LEARNING_RATE, L2, STATUS, EPOCHS, VAL_ACCURACY,
                   VAL_LOSS, TRAIN_LOSS, TRAIN_ACCURACY, TIME_S, NODE_ID, BEST_EPOCH, BLAS_THREADS,
                   STOPPED_AT_RUNG, VAL_IMAGES]
HISTORY_COLUMNS = [TRIAL_ID, EPOCH, TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY, TIME_S,
                   ENDED_AT, VAL_IMAGES]


def write_json_atomic(obj, path: str | os.PathLike) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def epoch_value(x) -> int | float:
    """An epoch count as written in the tables: a whole number as an int (10, not 10.0), a
    fraction of the first epoch as a float (0.25)."""
    x = float(x)
    return int(x) if x == int(x) else x


def summarise_trial(trial_id: str, config: dict, status: str, history: list[dict],
                    node_id: str | None, blas_threads: int | None = None,
                    partial: list[dict] | None = None, stopped_at: float | None = None) -> dict:
    """One results.csv row from a trial's per-epoch history rows: metrics of its best validation
    epoch (the last epoch when none is finite), `epochs` run and total training seconds. A trial
    that ended inside its first epoch has no history: its `partial` reports stand in (its
    `epochs` and `best_epoch` are then fractions, and `time_s` the seconds up to its last
    report). Plain Python over the rows: it runs in the driver for every trial that ends."""
    if not history and partial:
        history, time_s = partial, float(max(r[TIME_S] for r in partial))  # each counts from the start
    else:  # NumPy's pairwise sum, as a pandas reader of the table sums the column
        time_s = float(np.nansum(np.array([r[TIME_S] for r in history], dtype=float)))
    epochs = epoch_value(max(r[EPOCH] for r in history)) if history else 0
    row = {TRIAL_ID: trial_id, **{k: config[k] for k in HYPERPARAMETERS}, STATUS: status,
           EPOCHS: epochs, TIME_S: time_s, NODE_ID: node_id or "", BLAS_THREADS: blas_threads,
           # the rung the halving scheduler's record says; others stop a trial right after its
           # report at a rung
           STOPPED_AT_RUNG: (stopped_at if stopped_at is not None else epochs) if status == Status.STOPPED_EARLY
           else None}
    finite = [r for r in history if _finite(r[VAL_ACCURACY])]
    if finite:  # the highest accuracy, the earliest epoch among equals
        best = min(finite, key=lambda r: (-float(r[VAL_ACCURACY]), float(r[EPOCH])))
    else:
        best = max(history, key=lambda r: float(r[EPOCH]), default=None)
    for k in (VAL_ACCURACY, VAL_LOSS, TRAIN_LOSS, TRAIN_ACCURACY):
        row[k] = float(best[k]) if best is not None else float("nan")
    images = best.get(VAL_IMAGES) if best is not None else None
    row[VAL_IMAGES] = int(images) if images is not None and images == images else None
    row[BEST_EPOCH] = epoch_value(best[EPOCH]) if finite else 0
    return row


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def read_journal(run_dir: str | os.PathLike) -> list[dict]:
    """The journal's entries, oldest first; a last line cut short by a crash is left out."""
    return read_log(Path(run_dir) / JOURNAL_FILE)


# ---------------------------------------------------------------------------------------------
# Reading a run folder
# ---------------------------------------------------------------------------------------------
def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise RunError(f"{path}: not found (is this a run folder?)")
    try:
        df = pd.read_csv(path, dtype={TRIAL_ID: str, NODE_ID: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RunError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


# Columns that hold numbers: a cell that is not one (a hand edit) is named on reading.
NUMERIC_RESULTS = [HIDDEN_SIZE, LEARNING_RATE, L2, EPOCHS, VAL_ACCURACY, VAL_LOSS, TRAIN_LOSS,
                   TRAIN_ACCURACY, TIME_S, BEST_EPOCH]


def check_numbers(df: pd.DataFrame, columns: list[str], path: Path) -> None:
    """RunError naming the file, the row and the column of the first cell that is not a number."""
    for c in columns:
        if c not in df or df[c].dtype.kind in "fiub":
            continue
        bad = df[c].notna() & pd.to_numeric(df[c], errors="coerce").isna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise RunError(f"{path}: row {i + 1} (line {i + 2}), column {c}: {df[c].iloc[i]!r} is not a number")


def load_results(run_dir: str | os.PathLike) -> pd.DataFrame:
    """results.csv, with the trials the journal holds (ended after the last rewrite)."""
    df = read_csv(Path(run_dir) / RESULTS_FILE, RESULTS_COLUMNS)
    check_numbers(df, NUMERIC_RESULTS, Path(run_dir) / RESULTS_FILE)
    return _with_journal(df, run_dir, "result", [TRIAL_ID])


def load_history(run_dir: str | os.PathLike) -> pd.DataFrame:
    """history.csv, with the trials the journal holds."""
    return _with_journal(read_csv(Path(run_dir) / HISTORY_FILE, HISTORY_COLUMNS),
                         run_dir, "history", [TRIAL_ID, EPOCH])


def _with_journal(df: pd.DataFrame, run_dir, part: str, order: list[str]) -> pd.DataFrame:
    """`df` with the rows of every trial in the journal replaced by its entry's `part` (the
    last entry of a trial wins), in the order the table is written in."""
    entries = {e[TRIAL_ID]: e[part] for e in read_journal(run_dir)}
    if not entries:
        return df
    rows = [r for e in entries.values() for r in ([e] if isinstance(e, dict) else e)]
    kept = df[~df[TRIAL_ID].isin(list(entries))]
    added = pd.DataFrame(rows, columns=df.columns)
    merged = pd.concat([kept, added], ignore_index=True) if len(kept) else added
    return merged.sort_values(order, kind="stable").reset_index(drop=True)


def load_partial(run_dir: str | os.PathLike) -> pd.DataFrame:
    """partial_epochs.csv; an empty frame when the run has none (no fractional rungs)."""
    path = Path(run_dir) / PARTIAL_FILE
    df = read_csv(path, HISTORY_COLUMNS) if path.exists() else pd.DataFrame(columns=HISTORY_COLUMNS)
    return _with_journal(df, run_dir, "partial", [TRIAL_ID, EPOCH])


def load_sweep(run_dir: str | os.PathLike) -> dict:
    """sweep.json, checked against its declared shape (settings.completed)."""
    path = Path(run_dir) / SWEEP_FILE
    if not path.is_file():
        raise RunError(f"{path}: not found (is this a run folder?)")
    return settings.completed(read_json(path, SWEEP_FIELDS, RunError))


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------
def ranked(results: pd.DataFrame, sort: str = VAL_ACCURACY) -> pd.DataFrame:
    """Trials best first: by `sort` (descending for accuracies, ascending otherwise), ties by
    lower validation loss, then trial id; NaN last."""
    if sort not in results.columns:
        raise RunError(f"--sort: no column {sort!r}; choose one of {', '.join(results.columns)}")
    ascending = not (sort.endswith("accuracy") or sort in (EPOCHS, BEST_EPOCH))
    keys, asc = [sort], [ascending]
    if sort != VAL_LOSS:
        keys.append(VAL_LOSS)
        asc.append(True)
    keys.append(TRIAL_ID)
    asc.append(True)
    return results.sort_values(keys, ascending=asc, na_position="last", kind="stable").reset_index(drop=True)


def rank_key(row: dict) -> tuple | None:
    """A results row's place in `ranked` order among the trials `best_trial` may choose (None for
    one it never chooses): a smaller key ranks first. For the driver, which keeps the best so far
    without a frame."""
    if not _finite(row[VAL_ACCURACY]) or row[STATUS] == Status.ERROR:
        return None
    loss = float(row[VAL_LOSS]) if _finite(row[VAL_LOSS]) else math.inf
    return (-float(row[VAL_ACCURACY]), loss, str(row[TRIAL_ID]))


def best_trial(results: pd.DataFrame) -> pd.Series:
    """The chosen trial: the first of `ranked` among those rank_key admits (one ranking rule, the
    one the driver keeps the best so far by)."""
    keys = [(key, i) for i, row in enumerate(results.to_dict("records")) if (key := rank_key(row)) is not None]
    if not keys:
        raise RunError("no trial has a finite validation accuracy: nothing to pick")
    return results.iloc[[min(keys)[1]]].reset_index(drop=True).iloc[0]


def pivot(results: pd.DataFrame, value: str = VAL_ACCURACY) -> dict[int, pd.DataFrame]:
    """For each hidden size: best `value` over learning rate (rows) x L2 (columns)."""
    out = {}
    for h, part in results.groupby(HIDDEN_SIZE):
        out[int(h)] = part.pivot_table(index=LEARNING_RATE, columns=L2, values=value, aggfunc="max")
    return out


def edge_advice(results: pd.DataFrame, sweep: dict | None = None) -> list[str]:
    """Sentences saying where the best configuration sits on the edge of the searched grid and
    which way to extend it (the edges --extend-edges would follow: sweep.edges.edges). Empty
    when it is inside on every axis (or the axis had one value)."""
    best = best_trial(results)
    # the grid given and what rounds of --extend-edges added (in the table)
    axes = {a.name: set((sweep or {}).get(a.name) or ()) | set(results[a.column].tolist()) for a in settings.AXES}
    notes = []
    for name, (direction, new) in edges.edges(best, axes, max_hidden=math.inf).items():
        axis = settings.BY_NAME[name]
        hp, v = axis.column, _fmt(best[axis.column])
        if direction == "up":
            notes.append(f"The best {hp} ({v}) is the largest value searched: the optimum may lie above it; "
                         f"consider extending {axis.flag} upward (e.g. {_fmt(new)}).")
        else:
            notes.append(f"The best {hp} ({v}) is the smallest value searched: the optimum may lie below it; "
                         f"consider extending {axis.flag} downward (e.g. {_fmt(new)}).")
    return notes


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def counts(results: pd.DataFrame) -> dict[str, int]:
    return {s: int((results[STATUS] == s).sum()) for s in Status.ALL}
