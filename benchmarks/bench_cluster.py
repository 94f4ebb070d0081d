"""The same sweep on a one-node and on a two-node Ray cluster (one CPU per node, both on this
machine, on 127.0.0.1), as a throughput ratio.

Leaves out what only real machines show (network, shared storage). Usage:
    python -m benchmarks.bench_cluster [--data-dir DIR] [--dataset NAME]
Default data: full Fashion-MNIST from Debian's dataset-fashion-mnist if installed, else the
MNIST test set split 8,000 / 2,000. Throughput = trial-epochs per second of the `run` command.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search.localcluster import LocalCluster, cluster_env

from .common import ROOT, write_small_mnist

GRID = ["--hidden", "128,256", "--lr", "0.001,0.005,0.01,0.05,0.1", "--l2", "0.001,0.01",
        "--epochs", "4", "--scheduler", "none", "--no-retrain"]


def sweep(address: str, data: list[str], out: Path, name: str) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "run", "--address", address,
                        *data, "--out", str(out), "--name", name, *GRID],
                       env=cluster_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    import pandas as pd
    res = pd.read_csv(out / name / "results.csv")
    return wall, int(res["epochs"].sum()), int(res["node_id"].nunique())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--dataset", default="fashion-mnist")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if Path(args.data_dir).is_dir():
            data = ["--dataset", args.dataset, "--data-dir", args.data_dir]
            what = f"{args.dataset} from {args.data_dir}"
        else:
            data = ["--data-dir", str(write_small_mnist(tmp / "mnist-small"))]
            what = "MNIST test set split 8,000 / 2,000"
        print(f"data: {what}; grid: {' '.join(GRID)}")
        rows = []
        for nodes in (1, 2):
            with LocalCluster(nodes=nodes, cpus_per_node=1) as cluster:
                wall, epochs, used = sweep(cluster.address, data, tmp, f"n{nodes}")
            rows.append((nodes, wall, epochs, used))
            print(f"{nodes} node(s): {wall:.1f} s, {epochs} trial-epochs, trials ran on {used} node(s), "
                  f"{epochs / wall:.2f} trial-epochs/s", flush=True)
        print(f"throughput ratio two nodes / one node: {(rows[1][2] / rows[1][1]) / (rows[0][2] / rows[0][1]):.2f}")


if __name__ == "__main__":
    main()
