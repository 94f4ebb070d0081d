"""The closing notes of a finished run, one text for the command line and for the report: the
trials that failed for good, where the best sits on the grid's edge, and whether the rounds of
--extend-edges ran out with it still there.

Leaves out how they are shown (run_search.py prints them, results/model/report.py writes HTML).
"""
from __future__ import annotations

from ..folder import table as T
from ..sweep.spec import MAX_FAILURES
from . import rounds


def failed_note(n: int) -> str:
    """What `n` trials that failed for good mean for the table and the choice."""
    return (f"{n} trial{'s' if n != 1 else ''} failed on every try (Ray Tune retries a trial whose "
            f"worker or node dies up to {MAX_FAILURES} failures as it counts them, at least "
            f"{MAX_FAILURES // 2} deaths): status error in {T.RESULTS_FILE}, and NaN at "
            f"{'their' if n != 1 else 'its'} rung, so the choice was made without "
            f"{'them' if n != 1 else 'it'}. `run --resume` tries {'them' if n != 1 else 'it'} again.")


def edge_notes(run_dir, sweep: dict, results) -> list[str]:
    """Where the best sits on the grid's edge, and whether rounds of --extend-edges ran out there."""
    said = rounds.rounds_note(run_dir, sweep, results)
    return T.edge_advice(results, sweep) + ([said] if said else [])
