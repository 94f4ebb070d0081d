"""The default early stopping gives the same table whatever runs it: the same command and seed,
with one trial at a time, two, on a two-node cluster, and with the driver killed (SIGKILL)
mid-sweep and resumed, give identical results.csv, history.csv and partial_epochs.csv (all but
times, node ids and Tune's trial ids), and every trial's epochs match a full-grid run of the same
configuration bit for bit, paused or not."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pandas as pd
import pytest

from helpers import KEY, assert_same, cli, kill_session, start, tables, wait_for
from results.folder import table as T
from search.localcluster import LocalCluster, cluster_env, processes

pytestmark = pytest.mark.slow

# 24 trials, rungs 0.25, 1, 2 with the default factor 4: 24 -> 6 -> 2 -> 1. Hidden sizes large
# enough that a kill lands inside the sweep; ties at the rungs are possible (accuracy on 1,600
# validation images), so the tie rule is exercised too.
GRID = ["--hidden", "128,256,512", "--lr", "0.001,0.01,0.05,0.1", "--l2", "0.001,0.01",
        "--epochs", "4", "--rungs", "0.25,1,2", "--seed", "3", "--no-retrain"]


def record_lines(log):
    """A function counting the lines of the record `log` has so far (0 before it exists)."""
    def lines() -> int:
        try:
            return len(log.read_text().splitlines())
        except FileNotFoundError:
            return 0
    return lines


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_data_dir):
    out = tmp_path_factory.mktemp("determinism")
    r = cli("run", "--data-dir", small_data_dir, "--out", out, "--name", "two", *GRID)
    assert r.returncode == 0, r.stderr
    assert f"{os.cpu_count()} trials at a time" in r.stderr  # one per core (more than one here)
    results = pd.read_csv(out / "two" / "results.csv")
    # the decisions as designed: 24 at 0.25, 6 at epoch 1, 2 at epoch 2, one completes
    assert sorted(results["stopped_at_rung"].dropna().tolist()) == [0.25] * 18 + [1.0] * 4 + [2.0]
    assert (results["status"] == "completed").sum() == 1
    show = cli("show", out / "two", "--rungs")
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    assert [ln.split()[:4] for ln in lines[1:4]] == [["0.25", "24", "6", "18"], ["1", "6", "2", "4"],
                                                     ["2", "2", "1", "1"]]
    return out / "two"


def test_one_trial_at_a_time_gives_the_same_table(reference, small_data_dir, tmp_path):
    r = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "one",
            "--max-concurrent", "1", *GRID)
    assert r.returncode == 0, r.stderr
    assert_same(reference, tmp_path / "one")
    assert "1 trial at a time" in r.stderr
    assert max_overlap(tmp_path / "one") == 1


def max_overlap(run_dir) -> int:
    """The most trials that trained at once, from the first quarter-epochs (each runs unbroken
    from the trial's start to its report at 0.25, which records its end and its seconds)."""
    partial = pd.read_csv(run_dir / "partial_epochs.csv")
    edges = sorted([(s, 1) for s in partial["ended_at"] - partial["time_s"]]
                   + [(e, -1) for e in partial["ended_at"]])  # at a tie, an end before a start
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_a_driver_killed_mid_sweep_and_resumed_gives_the_same_table(reference, small_data_dir, tmp_path):
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "k", *GRID]
    lines = record_lines(tmp_path / "k" / "rungs.jsonl")
    proc = start(args)
    try:
        # past the first rung's decision: some trials paused at rung 1, some stopped, some running
        wait_for(lambda: lines() >= 26, what="two values at the second rung")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_session(proc.pid)
    assert lines() < 32, "the sweep ended before it could be killed"
    r = cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same(reference, tmp_path / "k")


def test_worker_processes_killed_mid_trial_leave_the_table_unchanged(reference, small_data_dir, tmp_path):
    """Three trial workers (ray::ImplicitFunc, each while it trains) killed with SIGKILL at
    different stages of the sweep: Tune retries each trial from its last checkpoint, the
    scheduler judges it on what the retry reports at its rung (not as NaN), and every table is
    the undisturbed one."""
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "w", *GRID]
    lines = record_lines(tmp_path / "w" / "rungs.jsonl")

    def training_workers():
        return [p.pid for p in processes() if p.sid == proc.pid and p.cmdline.startswith("ray::ImplicitFunc.train")]
    proc = start(args)
    killed = []
    try:
        for stage in (2, 12, 25):  # inside the first rung, late in it, at the second
            wait_for(lambda stage=stage: lines() >= stage and training_workers(),
                     what=f"a training worker after {stage} values")
            pid = training_workers()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        _, err = proc.communicate(timeout=300)
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 0, err
    assert len(set(killed)) == 3 and lines() <= 32  # each kill hit a live trial, no rung replayed
    assert_same(reference, tmp_path / "w")


def test_unreadable_checkpoints_on_resume_restart_the_trial_and_give_the_same_table(reference, small_data_dir,
                                                                                 tmp_path):
    """A sweep stopped by SIGTERM (whose last experiment snapshot names each unfinished trial's
    newest checkpoint), then the newest checkpoint of every unfinished trial cut short or
    replaced by another file: the resume says so in one line per trial it restores, each goes
    on from its newest readable earlier checkpoint or from scratch, and the table is the
    undisturbed one."""
    args = ["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "u", *GRID]
    run_dir = tmp_path / "u"
    lines = record_lines(run_dir / "rungs.jsonl")
    proc = start(args)
    try:
        wait_for(lambda: lines() >= 26, what="two values at the second rung")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 143, err
    newest = {}  # unfinished trials keep their weights: a state.npz in each checkpoint
    for state in run_dir.glob("tune/train_mlp_*/checkpoint_*/state.npz"):
        trial = state.parent.parent
        newest[trial] = max(newest.get(trial, state), state, key=lambda p: p.parent.name)
    assert newest, "no unfinished trial with a checkpoint"
    for i, state in enumerate(sorted(newest.values())):
        data = state.read_bytes()
        state.write_bytes(data[: len(data) // 2] if i % 2 else b"not a checkpoint\n" * 100)
    r = cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    said = [ln for ln in r.stderr.splitlines() if "could not be read" in ln]
    assert said, r.stderr
    assert all(("went on from checkpoint_" in ln or "started again from scratch" in ln) for ln in said), said
    assert_same(reference, run_dir)


def test_sigterm_during_retrain_stops_it_leaving_the_export_whole(reference):
    """The first seed's model is exported before the other seeds train: a SIGTERM then stops the
    command within seconds (exit 143, how to run it again), the export whole."""
    from results.model.load import load_model

    model_json = reference / "best" / "model.json"
    t0 = time.time()
    proc = start(["retrain", reference, "--seeds", "20"])
    try:
        wait_for(lambda: proc.poll() is not None or model_json.exists() and model_json.stat().st_mtime >= t0,
                 what="the first seed's export")
        assert proc.poll() is None, "retrain ended before the signal"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and f"python run_search.py retrain {reference} --seeds 20" in err, err
    assert "Traceback" not in err
    load_model(reference / "best")  # model.npz and model.json whole, and from one export


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs at tmp_path/disk (the test is skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_stops_the_sweep_in_one_line_and_the_resume_gives_the_same_table(reference, small_data_dir,
                                                                                    small_disk):
    args = ["run", "--data-dir", small_data_dir, "--out", small_disk, "--name", "d", *GRID]
    r = cli(*args)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("trials ")]
    errors = [ln for ln in lines if ln.startswith("run_search.py: error:")]
    assert len(errors) == 1 and f"disk full: the filesystem at {small_disk} (" in errors[0], r.stderr
    assert "Traceback" not in r.stderr and len(lines) <= 4, r.stderr
    assert f"resume with:\n  python run_search.py run --out {small_disk} --name d --resume" in r.stderr
    for table in ("results.csv", "history.csv", "partial_epochs.csv"):  # whole rows only
        if (small_disk / "d" / table).exists():
            pd.read_csv(small_disk / "d" / table)
    T.load_results(small_disk / "d")  # the journal too
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)
    r = cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same(reference, small_disk / "d")
    # after the sweep: retraining and its exports on a full disk, then with room again
    filler = small_disk / "filler"
    subprocess.run(["mount", "-o", "remount,size=" + str(disk_used(small_disk) + 512 * 1024), str(small_disk)],
                   check=True)
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            f.write(bytes(1 << 20))
    r = cli("retrain", small_disk / "d")
    assert r.returncode == 1, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("run_search.py: error:")]
    assert len(errors) == 1 and errors[0].startswith("run_search.py: error: disk full: the filesystem at "), r.stderr
    assert " could not take 0 bytes" not in errors[0] and "Traceback" not in r.stderr
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)
    r = cli("retrain", small_disk / "d")
    assert r.returncode == 0, r.stderr


def disk_used(path) -> int:
    import shutil
    return shutil.disk_usage(path).used


def test_a_two_node_cluster_gives_the_same_table(small_data_dir, tmp_path):
    """Every sweep on the cluster gives the local table, and one of them ran trials on both nodes.
    Which node runs a trial is Ray's and Tune's, and depends on timing: Tune hands a trial to an
    actor that just became free (cancelling the one it was starting elsewhere), so a second node
    whose actors start slower than a trial's stretch to the next rung may get none in a sweep
    (seen once on CI). Up to three sweeps, each checked."""
    grid = ["--hidden", "512,1024", "--lr", "0.01,0.05,0.1", "--l2", "0.001,0.01", "--epochs", "8",
            "--rungs", "1,2", "--reduction-factor", "2", "--no-retrain"]
    local = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "local", *grid)
    assert local.returncode == 0, local.stderr
    nodes_used = []
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        for attempt in range(3):
            name = f"c{attempt}"
            r = cli("run", "--address", cluster.address, "--data-dir", small_data_dir, "--out", tmp_path,
                    "--name", name, *grid, env_extra=cluster_env())
            assert r.returncode == 0, r.stderr
            assert "cluster: 2 node(s) with CPUs" in r.stderr
            results = pd.read_csv(tmp_path / name / "results.csv")
            assert sorted(results["stopped_at_rung"].dropna()) == [1.0] * 6 + [2.0] * 3  # 12 -> 6 -> 3
            assert_same(tmp_path / "local", tmp_path / name)
            nodes_used.append(results["node_id"].nunique())
            if nodes_used[-1] == 2:
                break
    assert nodes_used[-1] == 2, f"trials ran on one node in each of {len(nodes_used)} sweeps"


def test_paused_and_resumed_trials_train_exactly_as_a_full_grid(reference, small_data_dir, tmp_path):
    r = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "full",
            "--scheduler", "none", *GRID)
    assert r.returncode == 0, r.stderr
    halved, full = tables(reference)["history.csv"], tables(tmp_path / "full")["history.csv"]
    both = halved.merge(full, on=KEY + ["epoch"], suffixes=("", "_full"))
    assert len(both) == len(halved) == 6 + 2 + 1 + 1  # every epoch the halving sweep ran
    for c in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert (both[c] == both[c + "_full"]).all(), c
