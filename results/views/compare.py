"""Two runs' tables compared, as the promise "the same command gives the same table" is checked:
keyed by configuration, without the columns of timing and placement.

Leaves out reading a run for its views (run.py) and writing the tables (writer.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..columns import ENDED_AT, NODE_ID, TRIAL_ID
from ..sweep.settings import HYPERPARAMETERS

TABLES = ("results.csv", "history.csv", "partial_epochs.csv")
# What differs between two runs of the same sweep by design: ids, wall-clock times and nodes.
VOLATILE = {TRIAL_ID, "time_s", NODE_ID, ENDED_AT}


def tables(run_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The run's tables keyed by configuration (a table the run did not write is left out),
    without the volatile columns, in a fixed order."""
    run_dir = Path(run_dir)
    results = pd.read_csv(run_dir / TABLES[0])
    ids = results[[TRIAL_ID, *HYPERPARAMETERS]]
    out = {TABLES[0]: results}
    for name in TABLES[1:]:
        if (run_dir / name).exists():  # a sweep that reports inside no epoch writes no partial table
            out[name] = pd.read_csv(run_dir / name).merge(ids, on=TRIAL_ID)
    for name, df in out.items():
        order = list(HYPERPARAMETERS) + (["epoch"] if "epoch" in df else [])
        out[name] = (df.drop(columns=[c for c in df.columns if c in VOLATILE])
                     .sort_values(order).reset_index(drop=True))
    return out


def differences(a: str | os.PathLike, b: str | os.PathLike) -> list[str]:
    """How run b's tables differ from run a's, one line per table that differs (none: the same)."""
    ta, tb = tables(a), tables(b)
    found = [f"{name}: only in {a if name in ta else b}" for name in sorted(set(ta) ^ set(tb))]
    for name in sorted(set(ta) & set(tb)):
        try:
            pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=True)
        except AssertionError as e:
            found.append(f"{name}: {' '.join(str(e).split())[:300]}")
    return found
