"""--extend-edges end to end, on the tests' MNIST split: rounds that follow the best past the
grid's edge, the table a full factorial with every trial's round, the same table with one trial
at a time and after a SIGKILL and --resume inside a round, and what show, the report and Run say
of the rounds."""
from __future__ import annotations

import itertools
import json
import time

import pandas as pd
import pytest

from helpers import KEY, assert_same, cli, kill_session, start, wait_for

pytestmark = pytest.mark.slow

# a grid whose best sits on its edges: the rounds have somewhere to go
GRID = ["--hidden", "16,32", "--lr", "0.01,0.05", "--l2", "0.001,0.01", "--epochs", "3",
        "--extend-edges", "2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_data_dir):
    out = tmp_path_factory.mktemp("extend")
    r = cli("run", "--data-dir", small_data_dir, "--out", out, "--name", "ref", *GRID)
    assert r.returncode == 0, r.stderr
    return out / "ref", r


def test_rounds_follow_the_best_past_the_edge_and_keep_a_full_factorial(reference):
    run_dir, r = reference
    rounds = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert [x["round"] for x in rounds] == [1, 2]
    assert "round 1 of --extend-edges: " in r.stderr and "round 2 of --extend-edges: " in r.stderr
    results = pd.read_csv(run_dir / "results.csv")
    assert results["trial_id"].is_unique
    counts = results["round"].value_counts().to_dict()
    assert counts[0] == 8 and [counts[x["round"]] for x in rounds] == [x["trials"] for x in rounds]
    # every combination of every value searched, once: the grid given and what the rounds added
    values = [sorted(results[k].unique()) for k in KEY]
    assert len(results) == len(list(itertools.product(*values)))
    given = results[results["round"] == 0]
    assert sorted(map(tuple, given[KEY].to_numpy().tolist())) == sorted(
        itertools.product([16, 32], [0.01, 0.05], [0.001, 0.01]))
    # each round added the value beyond the edge the best of the rounds before sat on
    first = rounds[0]["added"]
    best0 = given.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    assert (best0["learning_rate"] == 0.05) == (first.get("lr", {}).get("value") == 0.25)
    for added in (x["added"] for x in rounds):
        assert all(a["direction"] in ("up", "down") for a in added.values())
    # the exported model is the best trial of every round
    best = results.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    meta = json.loads((run_dir / "best/model.json").read_text())
    assert meta["trial_id"] == best["trial_id"] and meta["val_accuracy"] == best["val_accuracy"]


def test_show_the_report_and_run_list_each_round(reference):
    from results.run import Run

    run_dir, r = reference
    assert "rounds of --extend-edges (round 0: the grid given):" in r.stdout
    frame = Run(run_dir).rounds()
    assert list(frame["round"]) == [0, 1, 2] and frame["added"].iloc[0] == "the grid given"
    results = pd.read_csv(run_dir / "results.csv")
    assert list(frame["trials"]) == [int((results["round"] == k).sum()) for k in (0, 1, 2)]
    assert list(frame["best_val_accuracy"]) == sorted(frame["best_val_accuracy"])  # never worse
    assert frame["best_val_accuracy"].iloc[-1] == results["val_accuracy"].max()
    shown = cli("show", run_dir)
    assert shown.returncode == 0 and "rounds of --extend-edges" in shown.stdout
    html = (run_dir / "report.html").read_text()
    assert "Rounds of --extend-edges" in html and "the grid given" in html
    assert Run(run_dir).importance() is not None  # a full factorial: the analysis still holds
    for name in ("search_heatmap.png", "search_effects.png", "search_importance.png"):
        assert (run_dir / "plots" / name).is_file()
    again = cli("retrain", run_dir)  # on an extended sweep too
    assert again.returncode == 0, again.stderr


def test_one_trial_at_a_time_gives_the_same_rounds_and_tables(reference, small_data_dir, tmp_path):
    run_dir, _ = reference
    r = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "one", *GRID,
            "--max-concurrent", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "one/rounds.jsonl").read_text() == (run_dir / "rounds.jsonl").read_text()
    assert_same(run_dir, tmp_path / "one")


def test_a_driver_killed_inside_a_round_resumes_to_the_same_tables(reference, small_data_dir, tmp_path):
    run_dir, _ = reference
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "k", *GRID]
    killed = tmp_path / "k"
    proc = start(args)
    try:
        wait_for(lambda: (killed / "rounds.jsonl").exists(), what="round 1 to start")
        time.sleep(1.0)  # some of round 1's trials run
        assert proc.poll() is None, "the sweep ended before it could be killed"
    finally:
        kill_session(proc.pid)
        proc.wait(timeout=30)
    r = cli("run", "--out", tmp_path, "--name", "k", "--resume")
    assert r.returncode == 0, r.stderr
    assert (killed / "rounds.jsonl").read_text() == (run_dir / "rounds.jsonl").read_text()
    assert_same(run_dir, killed)
