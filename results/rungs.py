"""Early stopping as a run's tables show it: the rungs a sweep's scheduler judged at, and per
rung how many trials entered, went on and were stopped, and the cutoff.

Leaves out the scheduler itself (search/). Reads the tables only; any scheduler's run works.
"""
from __future__ import annotations

import pandas as pd

from mlp_core.train import EPOCH, VAL_ACCURACY
from search.space import geometric_rungs  # no Ray

from .table import EPOCHS, STATUS, STOPPED_EARLY, TRIAL_ID, epoch_value


def sweep_rungs(sweep: dict) -> tuple:
    """The rungs at which the sweep's early stopping judged trials (none without it): its
    --rungs before the last epoch, or with Ray's ASHA, Ray's geometric rungs from the first.
    `sweep`: sweep.json as T.load_sweep reads it, every setting there."""
    rungs, epochs = tuple(sweep["rungs"]), int(sweep["epochs"])
    if sweep["scheduler"] == "none" or not rungs:
        return ()
    if sweep["scheduler"] == "asha":
        rungs = geometric_rungs(rungs[0], int(sweep["reduction_factor"]), epochs)
    return tuple(epoch_value(r) for r in rungs if r < epochs)


def rung_summary(results: pd.DataFrame, history: pd.DataFrame, partial: pd.DataFrame,
                 rungs) -> pd.DataFrame:
    """Per rung of early stopping: how many trials `entered` it (went on from the rung before;
    every trial at the first), how many `went_on` past it, how many were `stopped` there, and
    the `cutoff`: the lowest validation accuracy at the rung among those that went on (a trial
    that diverged or failed before a rung it entered counts as entered, not as going on)."""
    epochs = results[EPOCHS].astype(float)
    reports = pd.concat([partial, history])
    rows, before = [], None
    for r in rungs:
        entered = len(results) if before is None else int((epochs > before).sum())
        on = results[TRIAL_ID][epochs > r]
        at = reports[(reports[EPOCH].astype(float) == float(r)) & reports[TRIAL_ID].isin(on)]
        stopped = int(((results[STATUS] == STOPPED_EARLY) & (epochs == float(r))).sum())
        rows.append({"rung": epoch_value(r), "entered": entered, "went_on": len(on),
                     "stopped": stopped,
                     "cutoff": float(at[VAL_ACCURACY].min()) if len(at) else float("nan")})
        before = float(r)
    return pd.DataFrame(rows, columns=["rung", "entered", "went_on", "stopped", "cutoff"])
