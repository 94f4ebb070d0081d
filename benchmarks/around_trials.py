"""The time around the trials, as a user waits for it: runs the `run` command as a whole
process (from this checkout, or from `--checkout` others, alternated pair by pair, back to back)
and reads off its tables how long it took before the first report started and after the last
report ended, how idle the slots were in between, and the wall time against the trials' own
busy time (the sum of results.csv's `time_s`, over the slots).

Usage (BENCHMARKS.md section 8):
    python -m benchmarks.around_trials --pairs 3 --checkout /tmp/old -- \\
        --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist
Everything after `--` goes to `run_search.py run`; `--out` and `--name` are set here.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench_sweep import idle_share

ROOT = Path(__file__).resolve().parents[1]


def one_run(checkout: Path, args: list[str], out: Path, slots: int) -> dict:
    """One whole command from `checkout`, and the phases its tables give."""
    from results.folder import table as T

    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    subprocess.run([sys.executable, "run_search.py", "run", *args, "--out", str(out), "--name", "r"],
                   cwd=checkout, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - start
    run_dir = out / "r"
    idle = idle_share(run_dir, slots)
    reports = [f for f in (T.load_partial(run_dir), T.load_history(run_dir)) if len(f)]
    last_end = max(float(f[T.ENDED_AT].max()) for f in reports) - start
    busy = float(T.load_results(run_dir)["time_s"].sum())
    before = last_end - idle["span_s"]
    return {"wall": wall, "before": before, "after": wall - last_end, "idle": idle["idle_share"],
            "ratio": wall / (busy / slots)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--checkout", action="append", default=[], help="another checkout to alternate with")
    ap.add_argument("run_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.run_args if x != "--"]
    checkouts = [ROOT, *(Path(c).resolve() for c in a.checkout)]
    slots = os.cpu_count() or 1
    print("| checkout | wall s | before the first report s | after the last s | together s | "
          "idle in the sweep | wall ÷ (busy / slots) |\n| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="around-") as tmp:
        for _ in range(a.pairs):
            for c in checkouts:
                r = one_run(c, args, Path(tmp) / "out", slots)
                print(f"| {c} | {r['wall']:.1f} | {r['before']:.1f} | {r['after']:.1f} | "
                      f"{r['before'] + r['after']:.1f} | {r['idle']:.1%} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
