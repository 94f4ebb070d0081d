"""How the run folder's CSV tables are written: rows formatted as pandas' to_csv would write
them, each table rewritten atomically while the sweep runs, the journal of trials ended since
the last rewrite, and the small tables of the model after the sweep (write_frame).

Leaves out reading them back (table.py, which reads the journal too). No DataFrame on this path.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from mlp_core.files import atomic_write, log_append, open_log

from .table import (
    BEST_EPOCH,
    EPOCH,
    EPOCHS,
    HISTORY_COLUMNS,
    JOURNAL_FILE,
    RESULTS_COLUMNS,
    ROUND,
    STOPPED_AT_RUNG,
    TRIAL_ID,
    epoch_value,
)


def csv_field(value) -> str:
    """One value as pandas' to_csv writes it: NaN and None empty, floats in their shortest
    round-trip form, integers and text as they are (an integer is not turned into 1.0 because a
    neighbour in its column is missing)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def write_rows_atomic(rows: list[dict], columns: list[str], path: str | os.PathLike,
                      cache: dict | None = None) -> None:
    """Write rows (dicts, missing keys empty) as a CSV with these columns, atomically, without
    building a DataFrame, whose cost per rewrite grows with the trials (BENCHMARKS.md, "Per-trial overhead"). The bytes
    are those pandas' DataFrame.to_csv writes for the same rows (tests/test_table.py compares
    the two).
    `cache` (a dict kept by the caller for one table) keeps each row's CSV line, for rows that are
    never changed once stored: a rewrite then formats only the new rows."""
    if cache is None:
        cache = {}
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    lines = []
    for r in rows:
        hit = cache.get(id(r))
        if hit is None:  # the entry holds the row itself, so no other row can take its id
            out.writerow([csv_field(_as_written(c, r.get(c))) for c in columns])
            hit = cache[id(r)] = (r, buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
        lines.append(hit[1])
    with atomic_write(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerow(columns)
        f.writelines(lines)


def write_frame(df, path: str | os.PathLike) -> None:
    """A DataFrame (a small one, after the sweep) as a CSV, atomically, with the bytes of
    pandas' to_csv(index=False): the one CSV writer of the run folder (write_rows_atomic)."""
    write_rows_atomic(df.to_dict("records"), [str(c) for c in df.columns], path)


def open_journal(run_dir: str | os.PathLike):
    """The run folder's journal, opened for appending (mlp_core.files.open_log: a link planted
    there is refused, a line a crash cut short is cut off)."""
    return open_log(Path(run_dir) / JOURNAL_FILE)


def append_journal(journal, entry: dict) -> None:
    """One entry as one line, handed to the kernel in one write: a reader or a resumed driver
    sees the whole line or, after a crash mid-write, a last line cut short that it ignores; a
    line a full disk cut short is removed again (DiskFull)."""
    log_append(journal, entry, default=_plain)


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} in a table row")


def _as_written(column: str, value):
    """results.csv's `epochs` and `best_epoch` as epoch_value writes them (10, not 10.0)."""
    if column in (EPOCHS, BEST_EPOCH, STOPPED_AT_RUNG) and value is not None and not _is_nan(value):
        return epoch_value(value)
    return value


def write_results(rows: list[dict], path: str | os.PathLike, cache: dict | None = None,
                  rounds: bool = False) -> None:
    """results.csv from results rows, ordered by trial id; with `rounds` (a sweep that extends
    its grid) also each trial's round."""
    columns = RESULTS_COLUMNS + [ROUND] if rounds else RESULTS_COLUMNS
    write_rows_atomic(sorted(rows, key=lambda r: str(r[TRIAL_ID])), columns, path, cache)


def write_history(rows: list[dict], path: str | os.PathLike, cache: dict | None = None) -> None:
    """history.csv or partial_epochs.csv from history rows, ordered by trial id and epoch."""
    write_rows_atomic(sorted(rows, key=lambda r: (str(r[TRIAL_ID]), float(r[EPOCH]))),
                      HISTORY_COLUMNS, path, cache)


def _is_nan(x) -> bool:
    return isinstance(x, (float, np.floating)) and math.isnan(x)
