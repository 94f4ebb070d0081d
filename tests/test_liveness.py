"""A sweep never waits for ever: driven on purpose into the state where no trial runs and none can
start (a rung that never receives a value it was sent), it restores itself once, then stops in a
few lines naming what it waited for, with its tables written and the resume command; the resume
completes it with the undisturbed table. And a short chaos campaign: the default sweep with
trial workers killed at random moments, each run's tables compared whole."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from helpers import ROOT, assert_same, cli, dead_url

pytestmark = pytest.mark.slow

GRID = ["--hidden", "16,32", "--lr", "0.01,0.1", "--l2", "0.001,0.01", "--epochs", "3", "--no-retrain"]
# A driver whose halving decisions never take the values of one configuration, (32, 0.1, 0.01):
# its rung records the value (rungs.jsonl) and waits for it for ever, as a lost report would.
LOSES_A_VALUE = """
import sys, run_search
from results.sweep import halving
record = halving.Halving.record
def losing(self, tid, j, value, key):
    return [] if tuple(key) == (32, 0.1, 0.01) else record(self, tid, j, value, key)
halving.Halving.record = losing
sys.exit(run_search.main(sys.argv[1:]))
"""


def test_a_sweep_that_cannot_move_stops_naming_what_it_waits_for_and_resumes_to_the_same_table(
        small_data_dir, tmp_path):
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "stuck", *GRID]
    env = {**os.environ, "MLP_SWEEP_MIRRORS": dead_url(), "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    stuck = subprocess.run([sys.executable, "-c", LOSES_A_VALUE, *map(str, args)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    run_dir = tmp_path / "stuck"
    assert stuck.returncode == 1, stuck.stderr
    err = stuck.stderr
    # once restored (its paused trials replay their reports, the value is lost again), then stopped
    assert err.count("restoring the experiment") == 1, err
    said = [line for line in err.splitlines() if line.startswith("run_search.py: error:")]
    assert len(said) == 1, err
    assert "the sweep cannot go on: no trial running and none can start: rung 0.25 waits for 1 trial" in said[0]
    assert "(hidden_size=32, learning_rate=0.1, l2=0.01): paused" in said[0]
    assert f"resume with:\n  python run_search.py run --out {tmp_path} --name stuck --resume" in err
    assert "Traceback" not in err
    assert took < 180  # two idle spells of IDLE_GRACE_S and a restore, not a wait for ever
    done = pd.read_csv(run_dir / "results.csv")
    assert 0 < len(done) < 8  # the tables hold what finished: the trials stopped at the rung
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    reference = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "reference", *GRID)
    assert reference.returncode == 0, reference.stderr
    assert_same(tmp_path / "reference", run_dir)


def test_a_short_chaos_campaign_gives_the_undisturbed_table_every_time(tmp_path):
    """Three runs of the default sweep on the tests' split, each with 1 to 10 trial workers
    SIGKILLed at random moments (half of them just as a trial reported at a rung, so while it
    pauses): none hangs, every table is the undisturbed one (benchmarks/chaos.py; its full
    campaign's figures are in RELIABILITY.md)."""
    r = subprocess.run([sys.executable, "-m", "benchmarks.chaos", "--runs", "3", "--seed", "11",
                        "--out", str(tmp_path), "--hang-after", "400"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    summary = lines[-1]
    assert summary["runs"] == 3 and summary["hangs"] == 0, r.stdout + r.stderr[-3000:]
    assert summary["same"] == 3, r.stdout
    assert sum(1 for row in lines[:-1] for k in row["kills"] if k[1] is not None) >= 3  # kills landed
    assert r.returncode == 0
