"""Early stopping per rung, as `show --rungs`, the report and Run give it: the trials that entered
each rung, went on, were stopped there, and the cutoff; a halving sweep's from its record, Ray's
ASHA's rebuilt from the tables (it keeps no record).

Leaves out deciding the rungs (results/sweep/halving.py).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from mlp_core.train import EPOCH, VAL_ACCURACY

from ..columns import EPOCHS, STATUS, TRIAL_ID, Status
from ..sweep import settings
from ..sweep.halving import RUNG_LOG, Halving, replay_record, sweep_rungs

SUMMARY_COLUMNS = ["rung", "entered", "went_on", "stopped", "cutoff"]


def rung_summary(run_dir: str | os.PathLike, sweep: dict, n_trials: int, results: list[dict],
                 reports: list[dict]) -> list[dict]:
    """Per rung of early stopping: the trials that `entered` it (every trial at the first; a
    trial that diverged or failed before a rung it entered counts as entered, not as going
    on), how many `went_on`, how many were `stopped` there, and the `cutoff` (the lowest value
    that went on). A halving sweep's from its record (a rung still undecided, in an interrupted
    sweep, has its entrants so far: `n_trials` is the grid's size, not the rows finished);
    Ray's ASHA keeps none, so its are rebuilt from the tables: `results` (trial_id, status,
    epochs) and `reports` (trial_id, epoch, val_accuracy) rows."""
    rungs = sweep_rungs(sweep)
    if sweep["scheduler"] == "halving":
        halving = replay_record(Path(run_dir) / RUNG_LOG,
                                Halving(n_trials, rungs, int(sweep["reduction_factor"])))
        return [{**row, "cutoff": math.nan if row["cutoff"] is None else row["cutoff"]}
                for row in halving.summary()]
    epochs = {r[TRIAL_ID]: float(r[EPOCHS]) for r in results}
    rows, before = [], None
    for r in rungs:
        on = {t for t, e in epochs.items() if e > r}
        at = [float(x[VAL_ACCURACY]) for x in reports if float(x[EPOCH]) == float(r) and x[TRIAL_ID] in on]
        rows.append({"rung": r, "entered": sum(e > before for e in epochs.values()) if before is not None
                     else len(epochs), "went_on": len(on),
                     "stopped": sum(x[STATUS] == Status.STOPPED_EARLY and float(x[EPOCHS]) == float(r)
                                    for x in results),
                     "cutoff": min(at) if at else math.nan})
        before = float(r)
    return rows


def rungs_frame(run_dir, sweep: dict, results: pd.DataFrame, history: pd.DataFrame,
                partial: pd.DataFrame) -> pd.DataFrame:
    """rung_summary as a frame: per rung, entered, went on, stopped, cutoff."""
    reports = pd.concat([partial, history])[[TRIAL_ID, EPOCH, VAL_ACCURACY]]
    rows = rung_summary(run_dir, sweep, len(settings.grid(sweep)),
                                results[[TRIAL_ID, STATUS, EPOCHS]].to_dict("records"),
                                reports.to_dict("records"))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
