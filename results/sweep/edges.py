"""Following the grid's edge (--extend-edges): where the best configuration sits on the edge of
the grid searched so far, the value beyond each such edge, the grid points a round adds, and the
record of the rounds (rounds.jsonl), from which a resumed sweep and the views read them back.

Leaves out running a round (search/sweep.py). No Ray and no pandas.

A round adds one value beyond each edge the best sits on (at the ratio of the axis' last two
values; hidden sizes double or halve) and searches the full cross of the grid's axes that is
new, so the table stays a full factorial (the importance analysis needs one). It runs the same
early stopping over its own trials alone; the best of every round is the run's best. Bounds: L2
stops at 0, hidden sizes at --max-hidden (and 1), and a learning rate whose trials all diverge is
never the best, so that direction ends by itself.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from mlp_core.files import log_append, open_log

from ..errors import read_log
from . import settings
from .halving import RUNG_LOG

ROUNDS_LOG = "rounds.jsonl"  # one line per round started: the values it added, and why
HIDDEN = settings.BY_NAME["hidden"].column  # the axis whose values double and halve


def rung_log(round_: int = 0) -> str:
    """A round's halving record (halving.RUNG_LOG for the grid given)."""
    return f"rungs-round{round_}.jsonl" if round_ else RUNG_LOG


def beyond(column: str, values, upward: bool) -> float | int | None:
    """The next value past the edge of an axis' sorted `values` (two or more): the last two's
    ratio again (hidden sizes: doubled or halved). None where the axis ends (below L2 0, a
    hidden size under 1)."""
    lo, hi = values[0], values[-1]
    if column == HIDDEN:
        v = hi * 2 if upward else lo // 2
        return int(v) if v >= 1 else None
    if upward:
        return _round(hi * (hi / values[-2]))
    if lo <= 0:
        return None
    return _round(lo / (values[1] / lo))


def _round(v: float) -> float:
    """Twelve significant digits: 0.001 / 5 is 0.0002, not 0.00019999999999999998."""
    return float(f"{v:.12g}")


def edges(best: dict, axes: dict[str, list], max_hidden: int) -> dict[str, tuple[str, object]]:
    """{setting name: (direction, value to add)} for each grid axis whose best value is at an
    edge of `axes` (setting name -> values so far), within the bounds."""
    out = {}
    for axis in settings.AXES:
        values = sorted(axes[axis.name])
        if len(values) < 2:
            continue
        v = best[axis.column]
        direction = "up" if v == values[-1] else "down" if v == values[0] else None
        if direction is None:
            continue
        new = beyond(axis.column, values, direction == "up")
        if new is None or axis.column == HIDDEN and new > max_hidden:
            continue
        out[axis.name] = (direction, new)
    return out


def extended(axes: dict[str, list], added: dict[str, tuple[str, object]]) -> dict[str, list]:
    """The axes with a round's values added, each sorted."""
    out = {k: list(v) for k, v in axes.items()}
    for name, (_, value) in added.items():
        out[name] = sorted({*out[name], value})
    return out


def new_points(before: dict[str, list], after: dict[str, list]) -> list[dict]:
    """The grid points of `after`'s full cross that `before`'s lacks, in the grid's order."""
    old = {settings.grid_key(c) for c in settings.grid(before)}
    return [c for c in settings.grid(after) if settings.grid_key(c) not in old]


def plan_round(run_dir: str | os.PathLike, grid_axes: dict[str, list], round_: int, best: dict,
               max_hidden: int) -> tuple[dict, list[dict]] | None:
    """Round `round_`'s values added and its new grid points: as the record holds them (a round
    a resume runs again), or decided now from `best` (the best finished trial of every earlier
    round, all complete) and recorded before the round starts. None when the best is inside the
    grid on every axis, or the bounds allow no step."""
    recorded = read_rounds(run_dir)
    if round_ <= len(recorded):
        added = recorded[round_ - 1]["added"]
        before = axes_after(grid_axes, recorded[:round_ - 1])
    else:
        before = axes_after(grid_axes, recorded)
        added = edges(best, before, max_hidden)
        if not added:
            return None
    points = new_points(before, extended(before, added))
    if round_ > len(recorded):
        append_round(run_dir, round_, added, len(points))
    return added, points


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------
def append_round(run_dir: str | os.PathLike, round_: int, added: dict, trials: int) -> None:
    """A round's line, written before its trials start: a resume runs it again from here (a last
    line a crash cut short never started its round, and is cut off: mlp_core.files.open_log)."""
    with open_log(Path(run_dir) / ROUNDS_LOG) as log:
        log_append(log, {"round": round_, "trials": trials,
                         "added": {k: {"direction": d, "value": v} for k, (d, v) in added.items()}})


def read_rounds(run_dir: str | os.PathLike) -> list[dict]:
    """The rounds started, in order: {"round", "trials", "added": {name: (direction, value)}}."""
    return [{**entry, "added": {k: (a["direction"], a["value"]) for k, a in entry["added"].items()}}
            for entry in read_log(Path(run_dir) / ROUNDS_LOG)]


def axes_after(sweep_axes: dict[str, list], rounds: list[dict]) -> dict[str, list]:
    """The grid's axes with every recorded round's values added."""
    axes = {k: sorted(v) for k, v in sweep_axes.items()}
    for r in rounds:
        axes = extended(axes, r["added"])
    return axes


def describe(added: dict) -> str:
    """"learning_rate up to 0.2, l2 down to 0.0002"."""
    columns = {a.name: a.column for a in settings.AXES}
    return ", ".join(f"{columns[k]} {d} to {v:g}" for k, (d, v) in added.items())


ROUNDS_COLUMNS = ["round", "added", "trials", "trial_epochs", "best_val_accuracy", "best"]


def rounds_summary(run_dir: str | os.PathLike, results: list[dict], rank) -> list[dict]:
    """Per round (0: the grid given): the values it added, its trials and trial-epochs so far,
    and the best validation accuracy after it, with that trial's configuration. `results`: the
    results.csv rows; `rank`: a row's rank key (table.rank_key: smaller first, None never)."""
    out, best = [], None
    for r, entry in enumerate([None, *read_rounds(run_dir)]):
        mine = [x for x in results if int(x.get("round", 0) or 0) == r]
        for x in mine:
            if rank(x) is not None and (best is None or rank(x) < rank(best)):
                best = x
        out.append({"round": r, "added": describe(entry["added"]) if entry else "the grid given",
                    "trials": len(mine), "trial_epochs": sum(float(x["epochs"]) for x in mine),
                    "best_val_accuracy": float(best["val_accuracy"]) if best else math.nan,
                    "best": ", ".join(f"{a.column}={best[a.column]:g}" for a in settings.AXES) if best else ""})
    return out
