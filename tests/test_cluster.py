"""A real two-node Ray cluster on 127.0.0.1 (two `ray start` processes, one CPU each, free
ports): a small sweep with --address runs trials on both nodes, reading no dataset path; the
test stops exactly the processes it started. Plus the shared-storage check."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import ROOT, cli
from search.cluster import check_storage, code_fingerprint, filesystem_type, node_code_problems
from search.errors import SweepError
from search.localcluster import LocalCluster, cluster_env

MOUNTS = """/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
nfs1:/export /mnt/shared nfs4 rw,relatime 0 0
tmpfs /tmp tmpfs rw 0 0
"""


def test_filesystem_type_finds_the_longest_mount():
    assert filesystem_type("/mnt/shared/runs/x", MOUNTS) == "nfs4"
    assert filesystem_type("/home/me/runs", MOUNTS) == "ext4"
    assert filesystem_type("/tmp/a", MOUNTS) == "tmpfs"
    assert filesystem_type("/mnt/sharedother", MOUNTS) == "ext4"


def test_multi_machine_cluster_needs_shared_storage():
    two = {"10.0.0.1", "10.0.0.2"}
    with pytest.raises(SweepError, match=r"--storage: /home/me/runs is on a node-local filesystem \(ext4\)"):
        check_storage("/home/me/runs", two, "--storage", MOUNTS)
    with pytest.raises(SweepError, match="--out: /tmp/r is on a node-local filesystem"):
        check_storage("/tmp/r", two, "--out", MOUNTS)
    check_storage("/mnt/shared/runs", two, "--storage", MOUNTS)  # NFS: fine
    check_storage("s3://bucket/runs", two, "--storage", MOUNTS)  # a URI: fine
    check_storage("/home/me/runs", {"127.0.0.1"}, "--out", MOUNTS)  # one machine: fine


def test_nodes_lacking_the_project_or_running_other_code_are_named():
    mine = code_fingerprint()
    assert len(mine) == 16 and mine == code_fingerprint()  # stable within one checkout
    assert node_code_problems(mine, [("10.0.0.1", "a" * 56, mine, None)]) == []
    problems = node_code_problems(mine, [
        ("10.0.0.1", "a" * 56, mine, None),
        ("10.0.0.2", "b" * 56, None, "ModuleNotFoundError: No module named 'mlp_core'"),
        ("10.0.0.3", "c" * 56, "0123456789abcdef", None)])
    assert len(problems) == 2
    assert problems[0].startswith("node 10.0.0.2 (bbbbbbbb) cannot run trials: "
                                  "ModuleNotFoundError: No module named 'mlp_core'. Every node needs Python, Ray")
    assert problems[1].startswith("node 10.0.0.3 (cccccccc) runs another version of this project's code")
    assert f"hash to 0123456789abcdef, the driver's to {mine}" in problems[1]


def test_the_node_probe_reaches_a_python_without_this_project(tmp_path):
    """The probe travels by value: a worker whose Python cannot import this project still runs
    it, and it answers with the import error instead of failing to unpickle."""
    import subprocess
    import sys

    from ray import cloudpickle

    from search.cluster import node_probe

    blob = tmp_path / "probe.pkl"
    blob.write_bytes(cloudpickle.dumps(node_probe()))
    code = ("import sys, pickle\n"
            "for name in ('mlp_core', 'search', 'results'):\n"
            "    sys.modules[name] = None  # as on a machine without this project\n"
            f"probe = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
            "print(probe(('mlp_core',)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    answer = out.stdout.strip()
    assert answer.startswith("(None, ") and "ModuleNotFoundError: No module named 'search.trainable'" in answer


@pytest.mark.slow
def test_sweep_on_a_real_two_node_cluster(small_data_dir, tmp_path):
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        started = set(cluster.pids())
        assert len(started) >= 4  # two raylets, GCS, workers...
        r = cli("run", "--address", cluster.address, "--data-dir", small_data_dir,
                # trials long enough (a few seconds in all) for the second node's worker to start
                "--out", tmp_path, "--name", "c", "--hidden", "512,1024", "--lr", "0.01,0.1",
                "--l2", "0.001,0.01", "--epochs", "6", "--scheduler", "none", "--no-retrain",
                env_extra=cluster_env())
        assert r.returncode == 0, r.stderr
        results = pd.read_csv(tmp_path / "c" / "results.csv")
        assert len(results) == 8 and (results["status"] == "completed").all()
        assert results["node_id"].nunique() == 2  # trials ran on both nodes
        assert (tmp_path / "c" / "tune").is_dir()
        assert f"cluster: 2 node(s) with CPUs, each running this project's sources {code_fingerprint()}" in r.stderr
    assert cluster.pids() == []  # exactly what it started is gone


@pytest.mark.slow
def test_the_python_api_joins_a_cluster_that_runs_without_token_authentication(small_data_dir, tmp_path):
    """api.run(address=...) is --address from Python: search is imported before the address is
    known, and a local run's forced token authentication must not reach the connection. Before,
    every trial's actor died at once (with a token in ~/.ray; Ray's AuthenticationError without)."""
    code = ("import sys\nfrom search import api\n"
            f"run = api.run(out={str(tmp_path)!r}, name='p', data_dir={str(small_data_dir)!r}, "
            "hidden=[16, 32], lr=[0.1], l2=[0.001], epochs=1, scheduler='none', retrain=False, "
            "address=sys.argv[1])\n"
            "print(len(run.results), run.results['status'].eq('completed').all())")
    with LocalCluster(nodes=1, cpus_per_node=2, token=False) as cluster:
        # the driver's environment: the cluster's, with no authentication mode of its own
        env = {k: v for k, v in cluster_env(token=False).items() if k != "RAY_AUTH_MODE"}
        r = subprocess.run([sys.executable, "-c", code, cluster.address], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "True"]
    assert f"each running this project's sources {code_fingerprint()}" in r.stderr


def project_hidden(folder) -> dict:
    """An environment in which Python cannot import this project: stand-ins for its three
    packages, first on the path, that refuse to be imported (as on a machine that has Ray and
    NumPy but not this project). Code that Ray ships with the job comes before them."""
    for name in ("mlp_core", "search", "results"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f'raise ImportError("{name} is not installed on this node")\n')
    return {"PYTHONPATH": str(folder)}


@pytest.mark.slow
def test_a_node_without_this_project_runs_trials_from_the_shipped_code(small_data_dir, tmp_path):
    """The second node's Python cannot import this project; the sweep ships it (runtime_env
    py_modules), the code check passes on both nodes, and trials run on both."""
    with LocalCluster(nodes=2, cpus_per_node=1,
                      other_nodes_env=project_hidden(tmp_path / "hidden")) as cluster:
        r = cli("run", "--address", cluster.address, "--data-dir", small_data_dir,
                "--out", tmp_path, "--name", "c", "--hidden", "512,1024", "--lr", "0.01,0.1",
                "--l2", "0.001,0.01", "--epochs", "6", "--scheduler", "none", "--no-retrain",
                env_extra=cluster_env())
    assert r.returncode == 0, r.stderr
    assert f"cluster: 2 node(s) with CPUs, each running this project's sources {code_fingerprint()}" in r.stderr
    results = pd.read_csv(tmp_path / "c" / "results.csv")
    assert len(results) == 8 and (results["status"] == "completed").all()
    assert results["node_id"].nunique() == 2


@pytest.mark.slow
def test_a_node_that_cannot_run_trials_is_named_before_anything_starts(small_data_dir, tmp_path):
    """The second node's Python finds a broken threadpoolctl first (as on a machine where a
    dependency is missing or broken): the sweep is refused, naming that node and the error,
    with exit code 2 and no run folder, instead of every trial there failing in turn."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "threadpoolctl.py").write_text('raise ImportError("threadpoolctl is broken on this node")\n')
    with LocalCluster(nodes=2, cpus_per_node=1, other_nodes_env={"PYTHONPATH": str(broken)}) as cluster:
        r = cli("run", "--address", cluster.address, "--data-dir", small_data_dir, "--out", tmp_path,
                "--name", "c", "--hidden", "16", "--lr", "0.1", "--l2", "0.001", "--epochs", "1",
                "--no-retrain", env_extra=cluster_env())
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr  # one line, no traceback
    assert lines[0].startswith("run_search.py: error: --address: node 127.0.0.1 (")
    assert "cannot run trials: ImportError: threadpoolctl is broken on this node" in lines[0]
    assert lines[0].count("cannot run trials") == 1  # the head node is fine
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_the_readmes_ray_job_submit_recipe_on_two_nodes(small_data_dir, tmp_path):
    """The README's form, as written: a head whose job server listens on 127.0.0.1 (ray[default],
    the `cluster` extra), a second node that cannot import this project, and the sweep handed
    to the cluster with `ray job submit --working-dir . -- python run_search.py run --address
    auto ...` from a checkout; its trials run on both nodes."""
    text = (ROOT / "README.md").read_text()
    submit = "ray job submit --address http://HEAD_IP:8265 --working-dir . -- python run_search.py run --address auto"
    assert submit in text
    with LocalCluster(nodes=2, cpus_per_node=1, other_nodes_env=project_hidden(tmp_path / "hidden"),
                      job_server=True) as cluster:
        r = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", cluster.job_address,
             "--working-dir", ".", "--", "python", "run_search.py", "run", "--address", "auto",
             "--data-dir", str(small_data_dir), "--out", str(tmp_path), "--name", "j",
             "--hidden", "512,1024", "--lr", "0.01,0.1", "--l2", "0.001,0.01", "--epochs", "6",
             "--scheduler", "none", "--no-retrain"],
            cwd=ROOT, env=cluster_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout + r.stderr
    results = pd.read_csv(tmp_path / "j" / "results.csv")
    assert len(results) == 8 and (results["status"] == "completed").all()
    assert results["node_id"].nunique() == 2



def test_a_trial_imports_no_more_of_this_project_than_mlp_core_and_the_column_names():
    """What a node imports to run a trial: search.trainable (with Ray through search.ray_api),
    mlp_core and the run folder's names (results.columns, which imports nothing), never the rest
    of results/ (the tables, pandas
    code of ours) or matplotlib. (Ray Tune itself imports pandas, so a node has it with Ray's
    tune extra anyway.)"""
    code = ("import sys, search.trainable\n"
            "ours = sorted(m for m in sys.modules if m.split('.')[0] in ('mlp_core', 'search', 'results'))\n"
            "print(ours, 'matplotlib' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("['mlp_core', 'mlp_core.files', 'mlp_core.model', 'mlp_core.train', "
                                "'results', 'results.columns', 'search', 'search.ray_api', 'search.rayenv', "
                                "'search.trainable'] "
                                "False"), r.stdout


@pytest.mark.slow
def test_without_address_a_sweep_never_joins_a_cluster_left_running(small_data_dir, tmp_path):
    """A head started with `ray start` and left running, where Ray's own lookup finds it (its
    `ray_current_cluster` file, which a bare ray.init() joins): a sweep without --address runs
    on a Ray of its own, none of its trials on that head."""
    with LocalCluster(nodes=1, cpus_per_node=1, as_default=True) as cluster:
        head = cluster.node_ids()
        assert len(head) == 1
        r = cli("run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "l", "--hidden", "16",
                "--lr", "0.01,0.1", "--l2", "0.001", "--epochs", "1", "--no-retrain",
                env_extra={"RAY_TMPDIR": str(cluster.temp)})
        still = cluster.node_ids()
    assert r.returncode == 0, r.stderr
    assert "cluster:" not in r.stderr  # no cluster check: this is not a cluster run
    nodes = set(pd.read_csv(tmp_path / "l" / "results.csv")["node_id"])
    assert len(nodes) == 1 and not nodes & head, (nodes, head)
    assert still == head  # the head was left as it was, and nothing joined it

