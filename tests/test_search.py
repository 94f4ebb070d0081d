"""search: real Ray Tune sweeps on real digits (one local Ray per module): early stopping,
every trial once, per-epoch history without duplicates, divergence, BLAS threads per trial,
loopback-only servers, refusal to overwrite a run."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import ROOT
from mlp_core.data import load_dataset
from mlp_core.train import MID_EPOCH, TrainConfig, train
from results.folder.runfolder import run_folder
from search.cluster import start_ray
from search.localcluster import processes
from search.sweep import SweepError, SweepSpec, run_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    import ray
    assert start_ray(None, verbose=False, num_cpus=2)  # the same start-up as a real run
    yield
    ray.shutdown()


def listening_sockets_of(pids: set[int]) -> list[str]:
    """Local addresses (hex ip:port from /proc/net/tcp{,6}) of LISTEN sockets owned by pids."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                out.append(f[1])
    return out


def ray_pids() -> set[int]:
    ray_markers = ("gcs_server", "raylet", "ray::", "ray/dashboard", "ray/_private")
    return {p.pid for p in processes() if any(m in p.cmdline for m in ray_markers)} | {os.getpid()}


def test_local_ray_listens_on_loopback_only(ray_local):
    addresses = listening_sockets_of(ray_pids())
    assert len(addresses) >= 3  # gcs, raylet, this driver at least
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    for a in addresses:
        assert a.split(":")[0] in loopback, f"a Ray server listens beyond loopback: {a}"


def fresh_python(code: str, **env) -> subprocess.CompletedProcess:
    """`code` in a new Python, in an environment without the Ray settings this test process's
    own imports of search made."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


SETTINGS = ("import os; print(os.environ.get('RAY_AUTH_MODE'), "
            "os.environ.get('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'))")


def test_rays_settings_follow_the_address_of_the_sweep_not_the_order_of_imports():
    """A local run's settings (token authentication, loopback only) are set before Ray is
    imported, and a cluster's run, named only when api.run is called, is not given them: forced
    token authentication breaks a driver's connection to a cluster that runs without it."""
    # importing the API does not import Ray: its settings are still open when run() is called
    r = fresh_python("import sys; from search import api; print('ray' in sys.modules)")
    assert r.stdout.split() == ["False"], r.stderr
    # what api.run and the run command do first; a module importing Ray then changes nothing
    r = fresh_python("from search import rayenv; rayenv.configure('10.0.0.5:6379'); "
                     f"import search.sweep; {SETTINGS}")
    assert r.stdout.split() == ["None", "None"], r.stderr
    for first in ("", "from search import rayenv; rayenv.configure(None); "):
        r = fresh_python(f"{first}import search.sweep; {SETTINGS}")
        assert r.stdout.split() == ["token", "0"], r.stderr
    r = fresh_python(f"import search.sweep; {SETTINGS}", RAY_ADDRESS="10.0.0.5:6379")
    assert r.stdout.split() == ["None", "None"], r.stderr
    # a sweep of the other kind in the same process is refused, before anything starts
    r = fresh_python("import search.sweep; from search import api\n"
                     "try:\n    api.run('/nonexistent', 'x', address='10.0.0.5:6379')\n"
                     "except api.SweepError as e:\n    print(e)")
    assert r.stdout.startswith("--address: this Python process set up Ray for a local run"), r.stderr
    assert "in a new Python process" in r.stdout


def test_a_local_sweep_refuses_a_ray_imported_before_it_could_be_kept_local(small_data_dir, tmp_path):
    """A script that imports Ray before search gets Ray's cluster mode, whose servers listen on
    the machine's address: the sweep refuses to start one, naming why, and writes nothing."""
    probe = fresh_python("import ray; print(ray.util.get_node_ip_address())")
    if ipaddress.ip_address(probe.stdout.strip()).is_loopback:
        pytest.skip("this machine has no address but loopback: nothing to refuse")
    r = fresh_python("import ray\nfrom search import api\n"
                     f"api.run(out={str(tmp_path)!r}, name='x', data_dir={str(small_data_dir)!r}, "
                     "hidden=[16], lr=[0.1], l2=[0.001], epochs=1, retrain=False)")
    assert r.returncode == 1
    assert (f"SweepError: a local Ray would listen on {probe.stdout.strip()}, not on 127.0.0.1 alone"
            in r.stderr), r.stderr
    assert not (tmp_path / "x").exists()


def check_tables(run_dir, n_trials, epochs):
    results = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    history = pd.read_csv(run_dir / "history.csv", dtype={"trial_id": str})
    partial_file = run_dir / "partial_epochs.csv"
    partial = (pd.read_csv(partial_file, dtype={"trial_id": str}) if partial_file.exists()
               else pd.DataFrame(columns=history.columns))
    assert len(results) == n_trials and results["trial_id"].is_unique
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert not partial.duplicated(["trial_id", "epoch"]).any() and (partial["epoch"] < 1).all()
    for tid, part in history.groupby("trial_id"):
        n = int(results.loc[results["trial_id"] == tid, "epochs"].iloc[0])
        assert sorted(part["epoch"]) == list(range(1, n + 1)), tid
    # trials stopped inside their first epoch have no history, only reports from inside it
    whole = results["epochs"] >= 1
    assert set(history["trial_id"]) == set(results.loc[whole, "trial_id"])
    last_partial = partial.groupby("trial_id")["epoch"].max()
    for tid, e in results.loc[~whole, ["trial_id", "epochs"]].values:
        assert last_partial[tid] == e, tid
    assert results["epochs"].max() <= epochs
    return results, history, partial


def test_every_node_of_the_running_ray_passes_the_code_check(ray_local):
    from search.cluster import check_cluster_code, code_fingerprint
    # one node, this checkout: nothing to object to
    assert check_cluster_code("--address") == (1, code_fingerprint())


def test_default_sweep_end_to_end(ray_local, small_data_dir, tmp_path):
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16, 32), lr=(0.001, 0.01, 0.1, 1e5),
                     l2=(0.001, 0.01), epochs=4, batch_size=128)
    run_dir = run_folder(str(tmp_path), "halving")
    outcome = run_sweep(spec, run_dir)
    assert outcome.finished == outcome.total == 16 and not outcome.interrupted
    assert (run_dir / "journal.jsonl").read_text() == ""  # every trial in the tables at the end
    results, history, partial = check_tables(run_dir, 16, 4)
    # every trial reported at the default rung inside the first epoch, a quarter of it
    assert sorted(partial["trial_id"]) == sorted(results["trial_id"]) and (partial["epoch"] == 0.25).all()
    configs = set(zip(results["hidden_size"], results["learning_rate"], results["l2"], strict=False))
    assert configs == {(h, a, r) for h in (16, 32) for a in (0.001, 0.01, 0.1, 1e5) for r in (0.001, 0.01)}
    status = results.set_index(["hidden_size", "learning_rate", "l2"])["status"]
    assert (results.loc[results["learning_rate"] == 1e5, "status"] == "diverged").all()
    stopped = results[results["status"] == "stopped_early"]
    assert len(stopped) >= 3 and (stopped["epochs"] < 4).all()  # early stopping is visible
    assert (stopped["epochs"] == 0.25).any() and (stopped["epochs"] >= 1).any()  # at both kinds of rung
    completed = results[results["status"] == "completed"]
    assert len(completed) >= 1 and (completed["epochs"] == 4).all()
    assert results["epochs"].sum() < 16 * 4
    best = results.loc[results["val_accuracy"].idxmax()]
    assert best["learning_rate"] == 0.1 and best["val_accuracy"] > 0.85
    assert status.loc[(32, 0.1, 0.001)] == "completed"
    assert (results["blas_threads"] == 1).all()  # checked from inside each trial
    assert results["node_id"].str.len().min() > 10
    assert (results["status"] != "error").all()
    # A trial's config in Tune is its grid point alone; the settings every trial shares arrive
    # once (with_parameters), and a trial trains exactly as TrainConfig built from them does.
    from ray.tune import ExperimentAnalysis
    configs = ExperimentAnalysis(str(run_dir / "tune")).get_all_configs().values()
    assert len(configs) == 16 and all(set(c) == {"hidden_size", "learning_rate", "l2"} for c in configs)
    point = {"hidden_size": 32, "learning_rate": 0.1, "l2": 0.001}
    data = load_dataset(spec.dataset, spec.data_dir, spec.val_fraction, spec.seed)
    alone = list(train(TrainConfig(**point, **spec.train_values()), data.X_train, data.y_train,
                       data.X_val, data.y_val, fractions=(0.25,), scaled_partial_val=True))
    tid = results.set_index(["hidden_size", "learning_rate", "l2"]).loc[(32, 0.1, 0.001), "trial_id"]
    swept = history[history["trial_id"] == tid].sort_values("epoch")["val_accuracy"].tolist()
    assert swept == [m["val_accuracy"] for m in alone if not m.get(MID_EPOCH)]


def test_rays_asha_still_runs_on_request(ray_local, small_data_dir, tmp_path):
    """--scheduler asha is Ray's own ASHAScheduler: rungs at the first of --rungs times powers of
    the reduction factor (0.25 and 1 here), trials judged against those that reached the rung
    before them."""
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16, 32), lr=(0.001, 0.01, 0.1),
                     l2=(0.001, 0.01), epochs=3, scheduler="asha")
    run_dir = run_folder(str(tmp_path), "asha")
    run_sweep(spec, run_dir)
    results, _, partial = check_tables(run_dir, 12, 3)
    assert (partial["epoch"] == 0.25).all() and len(partial) == 12
    stopped = results[results["status"] == "stopped_early"]
    assert len(stopped) >= 1 and set(stopped["stopped_at_rung"]) <= {0.25, 1}
    assert not (run_dir / "rungs.jsonl").exists()  # the halving scheduler's log only


def test_without_scheduler_every_trial_runs_every_epoch(ray_local, small_data_dir, tmp_path):
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.001, 0.1), l2=(0.001,),
                     epochs=2, scheduler="none")
    run_dir = run_folder(str(tmp_path), "full")
    run_sweep(spec, run_dir)
    results, history, partial = check_tables(run_dir, 2, 2)
    assert (results["status"] == "completed").all() and (results["epochs"] == 2).all()
    assert len(history) == 4
    assert len(partial) == 0 and not (run_dir / "partial_epochs.csv").exists()  # no rungs, no reports


def test_same_seed_same_numbers_across_sweeps(ray_local, small_data_dir, tmp_path):
    spec = dict(data_dir=str(small_data_dir), hidden=(16,), lr=(0.05,), l2=(0.001,), epochs=2,
                scheduler="none")
    a = run_folder(str(tmp_path), "a")
    b = run_folder(str(tmp_path), "b")
    run_sweep(SweepSpec(**spec), a)
    run_sweep(SweepSpec(**spec), b)
    ha = pd.read_csv(a / "history.csv").drop(columns=["trial_id", "time_s"])
    hb = pd.read_csv(b / "history.csv").drop(columns=["trial_id", "time_s"])
    pd.testing.assert_frame_equal(ha, hb)


def test_existing_run_is_never_overwritten(ray_local, small_data_dir, tmp_path):
    run_dir = run_folder(str(tmp_path), "keep")
    run_dir.mkdir(parents=True)
    (run_dir / "results.csv").write_text("precious\n")
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,), epochs=1)
    with pytest.raises(SweepError, match="already exists; pass --resume"):
        run_sweep(spec, run_dir)
    assert (run_dir / "results.csv").read_text() == "precious\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["results.csv"]


def test_an_existing_folder_even_empty_is_refused_and_nothing_is_written(small_data_dir, tmp_path):
    run_dir = run_folder(str(tmp_path), "empty")
    run_dir.mkdir()
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,), epochs=1)
    with pytest.raises(SweepError, match=f"--name: {run_dir} already exists"):
        run_sweep(spec, run_dir)
    assert list(run_dir.iterdir()) == []


def test_a_folder_held_by_a_live_driver_is_refused_naming_its_pid(small_data_dir, tmp_path):
    import subprocess
    import sys

    from results.folder.runfolder import lock_folder

    run_dir = run_folder(str(tmp_path), "busy")
    run_dir.mkdir()
    (run_dir / "sweep.json").write_text("{}")
    # another process holds it, as a running driver does
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from results.folder.runfolder import "
                               f"lock_folder; f = lock_folder({str(run_dir)!r}); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,), epochs=1)
        for resume, flag in ((True, "--resume"), (False, "--name")):
            with pytest.raises(SweepError, match=rf"{flag}: {run_dir} is in use by another driver "
                                                 rf"\(PID {holder.pid}\)"):
                run_sweep(spec, run_dir, resume=resume)
    finally:
        holder.kill()
        holder.wait()
    lock_folder(run_dir).close()  # the kernel dropped the dead holder's lock: free again


def test_two_sweeps_whose_shared_storage_folders_collide_are_refused(ray_local, small_data_dir, tmp_path):
    """Two sweeps named alike under different --out but the same --storage would share
    STORAGE/NAME: while one driver holds it, the other is refused, naming it and the PID."""
    from results.folder.runfolder import lock_folder

    storage = tmp_path / "shared"
    (storage / "same").mkdir(parents=True)
    held = lock_folder(storage / "same")  # the first sweep's driver (this process, here)
    try:
        spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,), epochs=1,
                         storage=str(storage))
        with pytest.raises(SweepError, match=rf"--storage: {storage / 'same'} is in use by another "
                                             rf"driver \(PID {os.getpid()}\)"):
            run_sweep(spec, run_folder(str(tmp_path / "other-out"), "same"))
        assert not (tmp_path / "other-out" / "same").exists()  # nothing left behind
    finally:
        held.close()


def test_run_names_cannot_escape_the_output_folder(tmp_path):
    for bad in ("../x", "/x", "a/b", ".hidden", "..", ""):
        with pytest.raises(SweepError, match="--name"):
            run_folder(str(tmp_path), bad)
    assert run_folder(str(tmp_path), "ok-1.2_x") == tmp_path / "ok-1.2_x"


def test_batch_larger_than_training_set_refused_before_anything(small_data_dir, tmp_path):
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,),
                     batch_size=100_000)
    with pytest.raises(SweepError, match="--batch-size: 100000 is larger than the training set"):
        run_sweep(spec, run_folder(str(tmp_path), "big"))
    assert not (tmp_path / "big").exists()
