"""Faults injected for real, through the command line: a Ray worker killed mid-trial, the
driver killed with SIGKILL and resumed, Ctrl-C (SIGINT) and resumed. Nothing is lost, no trial
is recorded twice, no epoch twice, finished trials are not trained again."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import cli, cmdline, kill_session, session_pids, start, wait_for
from results.folder import table as T

pytestmark = pytest.mark.slow


def rows(path: Path) -> int:
    try:
        return len(pd.read_csv(path))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def journal_lines(run_dir: Path) -> int:
    try:
        return len((run_dir / T.JOURNAL_FILE).read_text().splitlines())
    except FileNotFoundError:
        return 0


def check_complete(run_dir: Path, n: int, epochs: int):
    results = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    history = pd.read_csv(run_dir / "history.csv", dtype={"trial_id": str})
    assert len(results) == n and results["trial_id"].is_unique
    assert (results["status"] == "completed").all() and (results["epochs"] == epochs).all()
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert len(history) == n * epochs
    return results, history


GRID = ["--hidden", "256,512", "--lr", "0.01,0.05,0.1", "--l2", "0.001,0.01", "--epochs", "8",
        "--scheduler", "none", "--no-retrain"]


@pytest.mark.parametrize("how", ["sigkill", "sigint", "sigterm"])
def test_driver_stopped_then_resumed(how, small_data_dir, tmp_path):
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "s", *GRID]
    run_dir = tmp_path / "s"
    # The tables are not rewritten while it runs, so every trial that ends stays in the journal
    # until the stop: with the usual 5 s, a rewrite empties it, and when trials end more than
    # 5 s apart it would never hold the two this waits for.
    proc = start(args, write_every_s=1e9)
    try:
        wait_for(lambda: journal_lines(run_dir) >= 2, what="two finished trials in the journal")
        before = T.load_results(run_dir)
        assert len(before) < 12, "the sweep finished before it could be interrupted"
        if how == "sigkill":
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        else:  # SIGTERM (a scheduler's or container's stop) is handled as Ctrl-C is
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            assert time.monotonic() - t0 < 30  # a clean stop within seconds
            assert proc.returncode == (130 if how == "sigint" else 143)
            expected = f"python run_search.py run --out {tmp_path} --name s --resume"
            assert "Resume with:" in err and expected in err
            assert "SIGTERM received" not in err and "Traceback" not in err, err  # no Ray signal dump
            assert rows(run_dir / "results.csv") >= len(before)  # results so far written
    finally:
        kill_session(proc.pid)
    before = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    if how == "sigkill":  # trials that ended after the tables' last rewrite are in the journal
        journal = set(pd.DataFrame([e["result"] for e in T.read_journal(run_dir)])["trial_id"])
        assert journal and not journal & set(before["trial_id"])
        before = T.load_results(run_dir)  # what a reader sees: the tables and the journal
        assert set(before["trial_id"]) >= journal
    r = cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    results, _ = check_complete(run_dir, 12, 8)
    # trials finished before the stop were not trained again: their rows are untouched
    merged = before.merge(results, on="trial_id", suffixes=("_before", ""))
    assert len(merged) == len(before)
    assert (merged["time_s_before"] == merged["time_s"]).all()
    assert (merged["val_accuracy_before"] == merged["val_accuracy"]).all()


def test_driver_killed_during_early_stopping_then_resumed(small_data_dir, tmp_path):
    """The default schedule, with its rung inside the first epoch: after a SIGKILL of the driver
    and a resume, every trial is in the table once, trials stopped at 0.25 have their reports
    there and no history, and nothing recorded before the kill changed."""
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "a",
            "--hidden", "512,1024", "--lr", "0.0001,0.001,0.01,0.1", "--l2", "0.001,0.01",
            "--epochs", "6", "--no-retrain"]
    run_dir = tmp_path / "a"
    proc = start(args)
    try:
        # Trials that ended reach the journal at once and the tables at their next rewrite (every
        # 5 s): the rest of this small sweep can end within those 5 s, so count what a reader
        # sees, the tables and the journal, and kill as soon as two trials have ended.
        wait_for(lambda: rows(run_dir / "results.csv") + journal_lines(run_dir) >= 2,
                 what="two finished trials")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_session(proc.pid)
    before = T.load_results(run_dir)
    assert 2 <= len(before) < 16, "the sweep finished before it could be interrupted"
    partial_before = T.load_partial(run_dir)
    r = cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    results = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    history = pd.read_csv(run_dir / "history.csv", dtype={"trial_id": str})
    partial = pd.read_csv(run_dir / "partial_epochs.csv", dtype={"trial_id": str})
    assert len(results) == 16 and results["trial_id"].is_unique
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert not partial.duplicated(["trial_id", "epoch"]).any() and (partial["epoch"] == 0.25).all()
    assert set(partial["trial_id"]) == set(results["trial_id"])  # each reported at the rung once
    inside = results[results["epochs"] < 1]
    assert len(inside) >= 1 and (inside["epochs"] == 0.25).all()
    assert (inside["status"] == "stopped_early").all()
    assert set(history["trial_id"]) == set(results.loc[results["epochs"] >= 1, "trial_id"])
    for tid, part in history.groupby("trial_id"):
        n = int(results.loc[results["trial_id"] == tid, "epochs"].iloc[0])
        assert sorted(part["epoch"]) == list(range(1, n + 1)), tid
    assert (results["status"] == "completed").sum() >= 1
    # what was finished before the kill is untouched, its rung reports included
    merged = before.merge(results, on="trial_id", suffixes=("_before", ""))
    assert len(merged) == len(before) and (merged["val_accuracy_before"] == merged["val_accuracy"]).all()
    kept = partial_before[partial_before["trial_id"].isin(before["trial_id"])].merge(
        partial, on=["trial_id", "epoch"], suffixes=("_before", ""))
    assert (kept["val_accuracy_before"] == kept["val_accuracy"]).all()
    assert len(kept) == int(before["trial_id"].isin(partial_before["trial_id"]).sum())


def test_a_killed_worker_is_retried_from_its_last_checkpoint(small_data_dir, tmp_path):
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "w",
            "--hidden", "1024", "--lr", "0.05", "--l2", "0.001", "--epochs", "12",
            "--scheduler", "none", "--no-retrain"]
    run_dir = tmp_path / "w"
    proc = start(args)
    try:
        def checkpointed(k):  # any checkpoint with an index >= k (every one is kept while it runs)
            names = (p.name for p in run_dir.glob("tune/train_mlp_*/checkpoint_*"))
            return any(int(m[1]) >= k for m in map(re.compile(r"checkpoint_(\d+)$").match, names) if m)
        wait_for(lambda: checkpointed(3), what="the fourth epoch's checkpoint")
        workers = [p for p in session_pids(proc.pid) if "ray::ImplicitFunc" in cmdline(p)]
        assert len(workers) == 1, [cmdline(p) for p in session_pids(proc.pid)]
        killed_at = time.time()
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    finally:
        kill_session(proc.pid)
    results, history = check_complete(run_dir, 1, 12)
    # epochs up to the checkpoint were not computed again after the kill
    done_before = history[history["ended_at"] < killed_at]["epoch"]
    assert len(done_before) >= 4
    assert len(done_before) < 12
    assert list(history.sort_values("epoch")["epoch"]) == list(range(1, 13))


def test_one_driver_per_run_folder_until_it_dies(small_data_dir, tmp_path):
    """While a driver runs, a second `run` of its folder, new or resuming, is refused in one line
    naming the folder and the first driver's PID; once the first is killed
    (SIGKILL), the kernel has dropped its lock and the folder is free."""
    from results.folder.runfolder import holder

    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "one",
            "--hidden", "1024", "--lr", "0.001,0.01,0.05,0.1", "--l2", "0.001,0.01", "--epochs", "30",
            "--scheduler", "none", "--no-retrain"]  # a minute or more of work: still running below
    run_dir = tmp_path / "one"
    proc = start(args)
    try:
        wait_for(lambda: (run_dir / "sweep.json").is_file(), what="the run folder")
        for extra, flag in (([], "--name"), (["--resume"], "--resume")):
            second = cli(*args, *extra, timeout=120)
            assert second.returncode == 2, second.stderr
            assert second.stderr.strip() == (f"run_search.py: error: {flag}: {run_dir} is in use by "
                                             f"another driver (PID {proc.pid}); wait for it to end, or stop it")
        assert proc.poll() is None, "the first driver ended before the second was tried"
        assert holder(run_dir) == str(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_session(proc.pid)
    assert holder(run_dir) is None  # nothing stale: a resume may take it at once


def test_a_reader_polling_the_tables_during_a_sweep_never_sees_a_partial_row(small_data_dir, tmp_path):
    """Every read of results.csv, history.csv and partial_epochs.csv while a sweep writes them is
    a whole table: the header, then rows of exactly as many fields, each number a number."""
    import csv
    import io

    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "p", "--hidden", "16,32",
            "--lr", "0.001,0.01,0.05,0.1", "--l2", "0.0001,0.001,0.01,0.1", "--epochs", "6", "--no-retrain"]
    run_dir = tmp_path / "p"
    numeric = {"results.csv": set(T.NUMERIC_RESULTS), "history.csv": {"epoch", "val_accuracy", "time_s"},
               "partial_epochs.csv": {"epoch", "val_accuracy", "time_s"}}
    seen = {name: set() for name in numeric}  # the distinct row counts each table was read with
    # The tables rewritten at every report, not every 5 s: on a fast machine this sweep ends
    # within 5 s of its first write, and the reader would see only the empty and the final tables.
    proc = start(args, write_every_s=0.0)
    try:
        while proc.poll() is None:
            for name in numeric:
                try:
                    text = (run_dir / name).read_text()
                except FileNotFoundError:
                    continue
                assert text.endswith("\n"), f"{name} read without its last newline"
                table = list(csv.reader(io.StringIO(text)))
                header, body = table[0], table[1:]
                assert header[:2] == ["trial_id", "hidden_size" if name == "results.csv" else "epoch"]
                for row in body:
                    assert len(row) == len(header), f"{name}: a row of {len(row)} fields: {row}"
                    for col, cell in zip(header, row, strict=False):
                        if col in numeric[name] and cell:
                            float(cell)
                seen[name].add(len(body))
        assert proc.wait() == 0, proc.stderr.read()
    finally:
        kill_session(proc.pid)
    final = {"results.csv": 32, "history.csv": len(T.load_history(run_dir)), "partial_epochs.csv": 32}
    assert len(T.load_results(run_dir)) == 32
    # the tables were read part-way: rewritten during the sweep, not only once at its end
    assert any(0 < size < final[name] for name, sizes in seen.items() for size in sizes), seen
