"""Ray Tune's per-trial overhead in this tool's setup: 175 trials that do nothing (one report
each), through the same run_sweep as a real sweep (actor reuse, object-store data, callbacks,
tables), timed after Ray has started.

Leaves out training. Usage: python benchmarks/bench_overhead.py
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "token")


def noop(config, X_train=None, y_train=None, X_val=None, y_val=None, finished=frozenset()):
    from ray import tune
    tune.report({"epoch": 1, "train_loss": 0.0, "train_accuracy": 0.0, "val_loss": 0.0,
                 "val_accuracy": 0.0, "time_s": 0.0, "diverged": False, "node_id": "",
                 "blas_threads": 1})


def main():
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    from search.sweep import SweepSpec, run_sweep  # sets Ray's env first
    from search.cluster import start_ray
    from search.runfolder import run_folder
    import ray

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_small_mnist

    with tempfile.TemporaryDirectory() as tmp:
        d = write_small_mnist(Path(tmp) / "data")
        t0 = time.perf_counter()
        start_ray(None, verbose=False, num_cpus=os.cpu_count())
        t_ray = time.perf_counter() - t0
        spec = SweepSpec(data_dir=str(d), scheduler="none", epochs=1)
        t1 = time.perf_counter()
        outcome = run_sweep(spec, run_folder(tmp, "noop"), trainable_fn=noop, stream=open(os.devnull, "w"))
        t_sweep = time.perf_counter() - t1
        ray.shutdown()
    print(f"ray.init: {t_ray:.1f} s; {outcome.finished} no-op trials through run_sweep: {t_sweep:.1f} s "
          f"({1000 * t_sweep / outcome.finished:.0f} ms per trial) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
