"""Driver cost per trial as the grid grows: grids of trivial trials (small hidden sizes, 2 epochs,
the MNIST 8,000/2,000 split) where the driver, not training, sets the pace.

Each grid runs as `run_search.py run --no-retrain` in a process of its own, measured from
outside the product: the wall time of Tuner.fit (common.tuner_fit_seconds), the
driver's CPU seconds and peak RSS (getrusage of that process, Ray's own processes not included),
and the seconds Tune spent writing its experiment snapshots (its own debug log lines,
"Experiment state snapshotting took ..."). The trial rate early and late in the run comes from
results.csv's trials and history.csv's `ended_at`.

Usage (from the repository root):
    python -m benchmarks.bench_scale [--sizes 175,1000,5000,10000] [--scheduler halving|none]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .common import ROOT, tuner_fit_seconds, write_small_mnist

HIDDEN_FOR = {175: (16,), 1000: (16, 32), 5000: (16, 32), 10000: (16, 24, 32, 48)}


def grid(n: int) -> tuple[list[int], list[float], list[float]]:
    """`n` trials: hidden sizes x learning rates x L2 values, spread log-evenly."""
    hidden = HIDDEN_FOR.get(n, (16, 32))
    rest = n // len(hidden)
    n_lr = {175: 7, 1000: 20}.get(n, 50)
    n_l2 = rest // n_lr
    if len(hidden) * n_lr * n_l2 != n:
        raise SystemExit(f"--sizes: no grid of {n} trials here; use one of {sorted(HIDDEN_FOR)}")
    return (list(hidden), [float(f"{v:.4g}") for v in np.geomspace(1e-3, 0.5, n_lr)],
            [float(f"{v:.4g}") for v in np.geomspace(1e-5, 0.1, n_l2)])


def one(n: int, data: str, out: str, scheduler: str) -> dict:
    """Run one grid in this process and return its measurements."""
    import run_search

    snapshots = []

    class Snapshots(logging.Handler):
        def emit(self, record):
            m = re.search(r"snapshotting took ([0-9.]+) seconds", record.getMessage())
            if m:
                snapshots.append(float(m.group(1)))

    log = logging.getLogger("ray.tune.execution.experiment_state")
    log.setLevel(logging.DEBUG)
    log.addHandler(Snapshots())
    rss = []  # (seconds, trials finished, resident MB): where the peak falls

    def sample():
        t0 = time.monotonic()
        while True:
            status = Path("/proc/self/status").read_text()
            mb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
            done = sum(1 for _ in open(out_dir / "results.csv")) - 1 if (out_dir / "results.csv").exists() else 0
            rss.append((round(time.monotonic() - t0, 1), done, round(mb)))
            time.sleep(2.0)

    out_dir = Path(out) / f"n{n}"
    threading.Thread(target=sample, daemon=True).start()
    hidden, lr, l2 = grid(n)
    argv = ["run", "--data-dir", data, "--out", out, "--name", f"n{n}", "--epochs", "2",
            "--hidden", ",".join(map(str, hidden)), "--lr", ",".join(map(str, lr)),
            "--l2", ",".join(map(str, l2)), "--scheduler", scheduler, "--no-retrain"]
    t0 = time.perf_counter()
    with tuner_fit_seconds() as fit_s:
        code = run_search.main(argv)
    wall = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    return {"trials": n, "exit": code, "wall_s": wall, "fit_s": sum(fit_s),
            "driver_cpu_s": use.ru_utime + use.ru_stime, "driver_peak_rss_gb": use.ru_maxrss / 2**20,
            "snapshot_s": sum(snapshots), "snapshots": len(snapshots), **rates(Path(out) / f"n{n}"),
            "rss_timeline": rss[::max(1, len(rss) // 12)]}


def rates(run_dir: Path) -> dict:
    """Trials finished per second over the first and the last fifth of the trials."""
    import pandas as pd
    hist = pd.read_csv(run_dir / "history.csv")
    ends = np.sort(hist.groupby("trial_id")["ended_at"].max().to_numpy())
    if len(ends) < 10:
        return {}
    k = len(ends) // 5
    return {"rate_first_fifth": k / (ends[k] - ends[0]), "rate_last_fifth": k / (ends[-1] - ends[-k - 1])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="175,1000,5000,10000")
    p.add_argument("--scheduler", default="halving", choices=("halving", "none"))
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's grid
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args.data, args.out, args.scheduler)), flush=True)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_small_mnist(Path(tmp) / "data")
        for i, n in enumerate(map(int, args.sizes.split(","))):
            grid(n)
            out = Path(tmp) / str(i)  # a size may come twice (its noise, back to back)
            out.mkdir()
            proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--one", str(n),
                                   "--data", str(data), "--out", str(out), "--scheduler", args.scheduler],
                                  cwd=ROOT, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{n} trials failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(line[-1][7:]))
            print(json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if r["trials"] == 1000), rows[0])
    print(f"\nscheduler {args.scheduler}, {os.cpu_count()} CPUs")
    print("| trials | wall (s) | time in Tune (s) | per trial (ms) | vs 1,000 | driver CPU per trial (ms) "
          "| driver peak RSS (GiB) | Tune snapshots (s, count) | trials/s first fifth → last fifth |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = 1000 * r["fit_s"] / r["trials"]
        print(f"| {r['trials']:,} | {r['wall_s']:.1f} | {r['fit_s']:.1f} | {per:.1f} | "
              f"{per / (1000 * base['fit_s'] / base['trials']):.2f}× | "
              f"{1000 * r['driver_cpu_s'] / r['trials']:.1f} | {r['driver_peak_rss_gb']:.2f} | "
              f"{r['snapshot_s']:.1f}, {r['snapshots']} | "
              f"{r.get('rate_first_fifth', float('nan')):.1f} → {r.get('rate_last_fifth', float('nan')):.1f} |")


if __name__ == "__main__":
    main()
