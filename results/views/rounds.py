"""The rounds of --extend-edges as `show`, the report and Run give them: a table of what each
round added and found, and the note when the rounds ran out with the best still on an edge.

Leaves out deciding and running the rounds (edges.py, search/sweep.py).
"""
from __future__ import annotations

import pandas as pd

from ..folder import table as T
from ..sweep import edges


def extends(sweep: dict) -> bool:
    return int(sweep.get("extend_edges") or 0) > 0


def rounds_frame(run_dir, results: pd.DataFrame) -> pd.DataFrame:
    """Per round (0: the grid given): the values it added, its trials and trial-epochs, and the
    best validation accuracy after it, with that trial's configuration."""
    rows = edges.rounds_summary(run_dir, results.to_dict("records"), T.rank_key)
    return pd.DataFrame(rows, columns=edges.ROUNDS_COLUMNS)


def rounds_note(run_dir, sweep: dict, results: pd.DataFrame) -> str | None:
    """A sentence when a sweep that extends its grid ended with the best still on an edge: every
    round ran, or the bounds (--max-hidden, L2 at 0) allowed no further step."""
    if not extends(sweep) or not T.edge_advice(results, sweep):
        return None
    ran, allowed = len(edges.read_rounds(run_dir)), int(sweep["extend_edges"])
    if ran >= allowed:
        return (f"all {allowed} round(s) of --extend-edges ran and the best is still on the grid's "
                f"edge: a new sweep with more rounds would search further")
    return (f"--extend-edges stopped after {ran} of {allowed} round(s): the best sits on an edge "
            f"the bounds end (--max-hidden {sweep['max_hidden']}, L2 at 0)")
