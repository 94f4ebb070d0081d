"""A chaos campaign: the default sweep on the small real dataset, run again and again under
faults, each run's tables compared whole with an undisturbed run's.

    python -m benchmarks.chaos --runs 20 --seed 0 --out /tmp/chaos

Kinds of run (--kinds, drawn per run from the seeded generator):
- workers: 1 to --max-kills SIGKILLs of trial worker processes (ray::ImplicitFunc, busy or idle
  in Tune's actor cache), half at random moments, half just after a trial reported at a rung
  (it is then pausing: saving its checkpoint);
- raylet: a two-node local cluster (one CPU each); the second node's raylet is SIGKILLed at a
  random moment, taking that node's workers with it;
- sigterm: SIGTERM to the driver's whole process group (what Slurm's scancel does) at a random
  moment, then `--resume` until the sweep is complete.

A run that has not ended after --hang-after seconds counts as a hang and is killed. Prints one
row per run (what was done and when, the wall time, the outcome) and a summary, and writes
them as JSON to OUT/chaos.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from results.views.compare import differences
from search.localcluster import LocalCluster, cluster_env, kill_session, processes, session_pids

from .common import ROOT, write_small_mnist

WORKER = "ray::ImplicitFunc"
# the run command of this checkout, or of --checkout (the same campaign against older code)
RUN = [sys.executable, str(ROOT / "run_search.py"), "run", "--no-retrain"]


def rung_reports(run_dir: Path) -> int:
    try:
        return len((run_dir / "rungs.jsonl").read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def start(args: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen([*RUN, *map(str, args)], stdout=f, stderr=subprocess.STDOUT, env=env,
                                cwd=Path(RUN[1]).parent, start_new_session=True)


def wait(proc: subprocess.Popen, t0: float, hang_after: float) -> int | None:
    """The driver's exit code, or None when it ran past `hang_after` seconds (it is killed)."""
    try:
        return proc.wait(timeout=max(1.0, hang_after - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        proc.wait()
        return None


def longest_quiet(run_dir: Path) -> float | None:
    """The longest time in which no trial reported (between two reports' `ended_at`, over the
    final tables): a bound on how long the sweep sat with no trial running. For a run stopped
    and resumed, it spans the time it was down."""
    import pandas as pd

    times = [pd.read_csv(run_dir / name)["ended_at"] for name in ("history.csv", "partial_epochs.csv")
             if (run_dir / name).exists()]
    ended = sorted(pd.concat(times).dropna()) if times else []
    return round(max(b - a for a, b in zip(ended, ended[1:], strict=False)), 1) if len(ended) > 1 else None


def kill_workers(proc, run_dir: Path, times: list[float], at_rung: list[bool], rng, t0: float) -> list:
    """SIGKILL a random trial worker at each moment (or, for an at-rung kill, at the first rung
    report after it); returns what was done: (seconds since start, pid or None, at a rung)."""
    done = []
    for t, rung in zip(times, at_rung, strict=True):
        while time.monotonic() - t0 < t and proc.poll() is None:
            time.sleep(0.02)
        if rung:
            seen = rung_reports(run_dir)
            deadline = time.monotonic() + 10
            while rung_reports(run_dir) == seen and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        if proc.poll() is not None:
            break
        workers = session_pids(proc.pid, WORKER)
        deadline = time.monotonic() + 3  # between trials, a worker may be starting: wait for one
        while not workers and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            workers = session_pids(proc.pid, WORKER)
        pid = int(rng.choice(workers)) if workers else None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pid = None
        done.append((round(time.monotonic() - t0, 2), pid, rung))
    return done


def workers_run(args, run_dir, log, rng, opts) -> dict:
    n = int(rng.integers(1, opts.max_kills + 1))
    times = sorted(rng.uniform(opts.earliest, opts.latest, n).round(2).tolist())
    at_rung = (rng.random(n) < 0.5).tolist()
    t0 = time.monotonic()
    proc = start(args, log)
    try:
        kills = kill_workers(proc, run_dir, times, at_rung, rng, t0)
        code = wait(proc, t0, opts.hang_after)
    finally:
        kill_session(proc.pid)
    return {"kills": kills, "codes": [code], "seconds": round(time.monotonic() - t0, 1)}


def raylet_run(args, run_dir, log, rng, opts) -> dict:
    at = round(float(rng.uniform(opts.earliest, opts.latest)), 2)
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        t0 = time.monotonic()
        proc = start([*args, "--address", cluster.address], log, cluster_env())
        try:
            while time.monotonic() - t0 < at and proc.poll() is None:
                time.sleep(0.02)
            # the second node's raylet: its own temporary folder (LocalCluster gives it n1/)
            raylets = [p.pid for p in processes() if p.cmdline.split(" ")[0].endswith("/raylet")
                       and f"{cluster.temp}/n1/" in p.cmdline]
            for pid in raylets:
                os.kill(pid, signal.SIGKILL)
            code = wait(proc, t0, opts.hang_after)
        finally:
            kill_session(proc.pid)
    return {"kills": [(at, raylets, "raylet")], "codes": [code], "seconds": round(time.monotonic() - t0, 1)}


def sigterm_run(args, run_dir, log, rng, opts) -> dict:
    at = round(float(rng.uniform(opts.earliest, opts.latest)), 2)
    t0 = time.monotonic()
    proc = start(args, log)
    try:
        while time.monotonic() - t0 < at and proc.poll() is None:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        codes = [wait(proc, t0, opts.hang_after)]
    finally:
        kill_session(proc.pid)
    while codes[-1] not in (0, None) and len(codes) < 4:  # resumed until complete
        # stopped before its run folder was written (during Ray's start): nothing to resume, and
        # the same command again is what the driver's message says
        again = ["--resume"] if (run_dir / "sweep.json").exists() else []
        proc = start([*args, *again], log)
        try:
            codes.append(wait(proc, time.monotonic(), opts.hang_after))
        finally:
            kill_session(proc.pid)
    return {"kills": [(at, proc.pid, "sigterm")], "codes": codes, "seconds": round(time.monotonic() - t0, 1)}


KINDS = {"workers": workers_run, "raylet": raylet_run, "sigterm": sigterm_run}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/chaos"))
    p.add_argument("--kinds", default="workers", help="comma-separated: workers, raylet, sigterm")
    p.add_argument("--max-kills", type=int, default=10)
    p.add_argument("--earliest", type=float, default=5.0, help="seconds after the start")
    p.add_argument("--latest", type=float, default=22.0, help="seconds after the start")
    p.add_argument("--hang-after", type=float, default=600.0)
    p.add_argument("--sweep", default="", help="extra arguments of the sweep (default: the default sweep)")
    p.add_argument("--checkout", type=Path, help="run another checkout's run_search.py (its own code)")
    opts = p.parse_args(argv)
    if opts.checkout:
        RUN[1] = str(opts.checkout.resolve() / "run_search.py")
    opts.out.mkdir(parents=True, exist_ok=True)
    data = opts.out / "data"
    if not (data / "train-images-idx3-ubyte.gz").exists():
        write_small_mnist(data)
    extra = opts.sweep.split()
    reference = opts.out / "reference"
    if not (reference / "results.csv").exists():
        t0 = time.monotonic()
        code = subprocess.run([*RUN, "--data-dir", data, "--out", opts.out, "--name", "reference", *extra],
                              cwd=Path(RUN[1]).parent, capture_output=True).returncode
        print(f"undisturbed run: exit {code}, {time.monotonic() - t0:.1f} s", flush=True)
    rng = np.random.default_rng(opts.seed)
    kinds = opts.kinds.split(",")
    rows = []
    for i in range(opts.runs):
        kind = kinds[int(rng.integers(len(kinds)))]
        name = f"run{i:02d}-{kind}"
        run_dir = opts.out / name
        log = opts.out / f"{name}.log"
        args = ["--data-dir", data, "--out", opts.out, "--name", name, *extra]
        row = {"run": name, **KINDS[kind](args, run_dir, log, rng, opts)}
        row["hang"] = None in row["codes"]
        row["same"] = not row["hang"] and (run_dir / "results.csv").exists() and not differences(reference, run_dir)
        row["longest_quiet_s"] = longest_quiet(run_dir) if (run_dir / "results.csv").exists() else None
        text = log.read_text(errors="replace")
        row["lines"] = len(text.splitlines())
        row["failures_said"] = text.count(" failed")
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {"runs": len(rows), "hangs": sum(r["hang"] for r in rows),
               "same": sum(r["same"] for r in rows),
               "kills": sum(len(r["kills"]) for r in rows), "seconds": [r["seconds"] for r in rows]}
    print(json.dumps(summary), flush=True)
    (opts.out / "chaos.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0 if summary["same"] == summary["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
