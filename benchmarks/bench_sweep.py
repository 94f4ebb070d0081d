"""Sweep benchmark: the default 175-combination grid on full Fashion-MNIST, timed, with its
trial-epochs and its efficiency against this machine's all-core float32 GEMM rate.

Leaves out correctness (the tests) and peers (bench_peers.py). Usage:
    python -m benchmarks.bench_sweep [--scheduler asha|none] [--compare RUN_DIR] [--epochs N]
Efficiency = training FLOPs / (wall time x all-core GEMM rate), where training FLOPs count the
forward and backward matrix products on the training images only (3196 H per image per epoch:
forward 2*794H, dW2 20H, dA1 20H, dW1 1568H; a trial stopped inside its first epoch counts the
fraction it trained); validation passes (one per report: every epoch and every rung inside
the first), data movement and Ray
overheads count against it. Wall time is the whole `run_sweep` call: data loading, Ray start-up
and shutdown included. The GEMM rate is measured before and after the sweep and the higher of
the two is used (the conservative choice: this machine's rate drifts by 20% within minutes).
The JSON also gives where the time that is not training went: the seconds inside Tune's
Tuner.fit and outside it (data loading, Ray's start and shutdown, the tables), the CPU seconds of the driver
and of each of
Ray's processes during the sweep (Linux), and the timeline read from history.csv; and
each hidden size's median epoch as a share of one core's GEMM rate, and upper bounds on the
efficiency (`ceilings`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from .flops import FLOPS_PER_IMAGE_PER_H, VAL_FLOPS_PER_IMAGE_PER_H, validation_per_training_flop

# Roles of the processes a local sweep runs, recognised by their command line.
ROLES = (("ray::ImplicitFunc", "trial workers"), ("gcs_server", "GCS"), ("raylet", "raylet"),
         ("log_monitor.py", "log monitor"), ("autoscaler/_private/monitor.py", "autoscaler monitor"),
         ("dashboard", "dashboard and its agent"), ("runtime_env", "runtime-env agent"),
         ("ray::", "other Ray workers"))


class ProcessCPU:
    """CPU seconds used by this process and by Ray's processes while the sweep runs, from
    /proc (Linux only), sampled every half second: a process that lives less than that is
    missed, and one started during the sweep is counted from its birth."""

    def __init__(self):
        import threading
        self.tick = os.sysconf("SC_CLK_TCK")
        self.first, self.last, self.role = {}, {}, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, initial: bool = False):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            role = "driver" if int(pid) == os.getpid() else next((r for m, r in ROLES if m in cmd), None)
            if role is None:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
            self.first.setdefault(pid, cpu if initial else 0.0)
            self.last[pid], self.role[pid] = cpu, role

    def _run(self):
        while not self.done.wait(0.5):
            self._sample()

    def start(self):
        self._sample(initial=True)
        self.thread.start()

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        self._sample()
        out: dict = {}
        for pid, role in self.role.items():
            out[role] = out.get(role, 0.0) + self.last[pid] - self.first[pid]
        return {r: round(v, 1) for r, v in sorted(out.items(), key=lambda kv: -kv[1])}


def timeline(run_dir: str | Path, n_train: int, n_val: int) -> dict:
    """What history.csv says about a finished run: how busy the trial slots were between the
    first epoch's start and the last epoch's end, the time between two epochs of a trial, and
    the median epoch's rate per hidden size (GFLOP/s, training FLOPs only and with validation)."""
    from results.folder import table as T
    history = T.load_history(run_dir).merge(
        T.load_results(run_dir)[[T.TRIAL_ID, T.HIDDEN_SIZE]], on=T.TRIAL_ID)
    history = history.sort_values([T.TRIAL_ID, "epoch"])
    start = history[T.ENDED_AT] - history["time_s"]
    span = float(history[T.ENDED_AT].max() - start.min())
    gaps = (history.groupby(T.TRIAL_ID)[T.ENDED_AT].diff() - history["time_s"]).dropna()
    median = history.groupby(T.HIDDEN_SIZE)["time_s"].median()
    val_flops = VAL_FLOPS_PER_IMAGE_PER_H * n_val
    return {"epochs_span_s": span, "epoch_compute_core_s": float(history["time_s"].sum()),
            "between_epochs_ms": 1000 * float(gaps.mean()) if len(gaps) else None,
            "gflops_per_trial_by_hidden": {
                int(h): {"training": n_train * FLOPS_PER_IMAGE_PER_H * h / t / 1e9,
                         "with_validation": (n_train * FLOPS_PER_IMAGE_PER_H + val_flops) * h / t / 1e9}
                for h, t in median.items()}}


def idle_share(run_dir: str | Path, slots: int) -> dict:
    """The share of the trial slots' seconds, between the first report's start and the last
    report, in which no trial was training or validating: slots left idle at rung barriers, and
    the time Tune spends between trials (starting, pausing, resuming, checkpointing them).
    Each report's busy span ends at its `ended_at` and lasts its `time_s` less that of the
    trial's report before it in the same epoch (a report inside the first epoch, or the first
    epoch resumed after a pause at one, counts from the epoch's start)."""
    from results.folder import table as T
    frames = [f for f in (T.load_partial(run_dir), T.load_history(run_dir)) if len(f)]
    reports = pd.concat(frames).sort_values([T.TRIAL_ID, T.ENDED_AT])
    epoch = reports["epoch"].astype(float)
    # the time_s of the same trial's report just before, when it lies in the same (first) epoch
    before = reports.groupby(T.TRIAL_ID)["time_s"].shift().where(
        (epoch <= 1) & (reports.groupby(T.TRIAL_ID)["epoch"].shift().astype(float) < 1), 0.0).fillna(0.0)
    busy = reports["time_s"] - before
    start = float((reports[T.ENDED_AT] - busy).min())
    span = float(reports[T.ENDED_AT].max()) - start
    return {"slots": slots, "span_s": span, "busy_slot_s": float(busy.sum()),
            "idle_share": 1 - float(busy.sum()) / (slots * span)}


def ceilings(flops: float, val_flops: float, rate_gflops: float, outside_tune_s: float,
             n_train: int, n_val: int, epoch_share: dict, epoch_h: dict) -> dict:
    """Upper bounds on the efficiency.
    `these_epochs`: the sweep's training at the rate its median epochs reached (`epoch_share`,
    each hidden size's training FLOPs per second of a median epoch, its validation pass
    included, over one core's share of the GEMM rate; weighted by each size's epochs x H in
    `epoch_h`), with nothing else costing time: no start-up, no idle slot, no Tune.
    The others grant a step at the GEMM rate itself. `this_schedule`: this run's training and
    validation products at the all-core GEMM rate, plus only the time measured outside Tune's
    run (data loading, Ray's start and shutdown). `any_schedule`: no time outside the products
    at all and one validation pass per epoch, the report every trial makes, whatever the
    schedule; `step_share_needed` is then the share of the GEMM rate training would have to
    reach for 85%: efficiency <= 1 / (GEMM rate / training rate + validation / training FLOPs)."""
    per_epoch_val = validation_per_training_flop(n_train, n_val)
    return {"these_epochs": sum(epoch_h.values()) / sum(w / epoch_share[h] for h, w in epoch_h.items()),
            "this_schedule": flops / (flops + val_flops + outside_tune_s * rate_gflops * 1e9),
            "any_schedule": 1 / (1 + per_epoch_val),
            "step_share_needed": 1 / (1 / 0.85 - per_epoch_val)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--scheduler", default="halving", choices=["halving", "asha", "none"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--reduction-factor", type=int, default=None, help="ASHA's (default: the tool's)")
    p.add_argument("--rungs", default=None, help="ASHA's rungs, comma-separated epochs or fractions of "
                                                 "the first (default: the tool's)")
    p.add_argument("--partial-val", default="scaled", choices=["scaled", "full"],
                   help="validation at reports inside the first epoch (the sweep's --partial-val)")
    p.add_argument("--measure-rungs", action="store_true",
                   help="with --scheduler none: report at the fractional rungs too, for replay_asha.py")
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--name", default=None)
    p.add_argument("--compare", help="a full-grid run folder: report the chosen trial's val_accuracy gap to its best")
    p.add_argument("--json", help="write the measurements here too")
    p.add_argument("--timeline", metavar="RUN_DIR",
                   help="only read a finished run's history.csv (busy share, gaps, rate per H) and exit")
    args = p.parse_args()
    if args.timeline:
        from mlp_core.data import load_dataset
        sweep = json.loads((Path(args.timeline) / "sweep.json").read_text())
        ds = load_dataset(sweep["dataset"], sweep["data_dir"], sweep["val_fraction"], sweep["seed"])
        print(json.dumps(timeline(args.timeline, len(ds.X_train), len(ds.X_val)), indent=2))
        return

    from results.folder import table as T
    from results.folder.runfolder import run_folder
    from results.sweep import space
    from search.sweep import SweepSpec, run_sweep

    from .common import tuner_fit_seconds
    from .gemm import all_core_gemm_rate

    rate_before = all_core_gemm_rate()
    print(f"all-core float32 GEMM rate: {rate_before:.1f} GFLOP/s", flush=True)
    name = args.name or f"{args.scheduler}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = run_folder(args.out, name)
    spec = SweepSpec(dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                     scheduler=args.scheduler, measure_rungs=args.measure_rungs,
                     partial_val=args.partial_val,
                     **({"reduction_factor": args.reduction_factor} if args.reduction_factor else {}),
                     **({"rungs": space.parse_rungs("--rungs", args.rungs)} if args.rungs else {}))
    cpu = ProcessCPU() if sys.platform.startswith("linux") else None
    if cpu:
        cpu.start()
    t0 = time.perf_counter()
    with tuner_fit_seconds() as fit_s:
        outcome = run_sweep(spec, run_dir)
    wall = time.perf_counter() - t0
    cpu_seconds = cpu.stop() if cpu else None
    rate_after = all_core_gemm_rate()
    rate = max(rate_before, rate_after)
    results = T.load_results(run_dir)
    # The split the sweep trained on (the 60,000 of full Fashion-MNIST were assumed before, which
    # overstated the FLOPs of any other dataset), read as the sweep read it.
    from mlp_core.data import load_dataset
    ds = load_dataset(spec.dataset, spec.data_dir, spec.val_fraction, spec.seed)
    n_train, n_val = len(ds.X_train), len(ds.X_val)
    del ds
    # Sum of epochs x H; a trial stopped inside its first epoch counts the fraction it trained.
    epoch_h = float((results[T.EPOCHS].astype(float) * results[T.HIDDEN_SIZE]).sum())
    flops = epoch_h * n_train * FLOPS_PER_IMAGE_PER_H
    # One validation pass per report: each epoch and each point inside the first.
    hidden = results.set_index(T.TRIAL_ID)[T.HIDDEN_SIZE]
    passes_h = sum(float(hidden[frame[T.TRIAL_ID]].sum())
                   for frame in (T.load_history(run_dir), T.load_partial(run_dir)) if len(frame))
    val_flops = passes_h * n_val * VAL_FLOPS_PER_IMAGE_PER_H
    trial_epochs = float(results[T.EPOCHS].astype(float).sum())
    full_epochs = len(results) * args.epochs
    best = T.best_trial(results)
    out = {"scheduler": args.scheduler, "reduction_factor": spec.reduction_factor,
           "rungs": list(spec.rungs), "trials": len(results), "finished": outcome.finished,
           "wall_s": wall, "trial_epochs": trial_epochs,
           "trial_epochs_fraction": trial_epochs / full_epochs,
           "flops_fraction_of_full_grid": epoch_h / float((args.epochs * results[T.HIDDEN_SIZE]).sum()),
           "training_tflop": flops / 1e12, "gemm_gflops_all_cores": rate,
           "gemm_gflops_before_after": [rate_before, rate_after],
           "efficiency": flops / (wall * rate * 1e9),
           # Not the target's measure, shown beside it: the validation passes' products counted too.
           "efficiency_with_validation": (flops + val_flops) / (wall * rate * 1e9),
           "best": {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()},
           "counts": T.counts(results), "run_dir": str(run_dir),
           "phases_s": {"tune_fit": round(sum(fit_s), 2), "outside_tune": round(wall - sum(fit_s), 2)},
           "cpu_seconds_by_process": cpu_seconds,
           "timeline": timeline(run_dir, n_train, n_val),
           "idle": idle_share(run_dir, os.cpu_count() or 1)}
    # Each hidden size's median epoch against one core's share of the GEMM rate (the rate is
    # measured with one product per core at once, as the trials run).
    per_core = rate / (os.cpu_count() or 1)
    out["epoch_share_of_gemm_by_hidden"] = share = {
        h: r["training"] / per_core for h, r in out["timeline"]["gflops_per_trial_by_hidden"].items()}
    epochs_by_h = results.groupby(T.HIDDEN_SIZE)[T.EPOCHS].apply(lambda e: e.astype(float).sum())
    out["efficiency_ceilings"] = ceilings(
        flops, val_flops, rate, wall - sum(fit_s), n_train, n_val, share,
        {h: float(epochs_by_h[h]) * h for h in share})
    if args.compare:
        full = T.load_results(args.compare)
        full_best = T.best_trial(full)
        key = tuple(best[k] for k in T.HYPERPARAMETERS)
        same = full[(full[T.HIDDEN_SIZE] == key[0]) & (full[T.LEARNING_RATE] == key[1]) & (full[T.L2] == key[2])]
        out["full_grid_best_val_accuracy"] = float(full_best[T.VAL_ACCURACY])
        out["full_grid_best_config"] = [full_best[k].item() for k in T.HYPERPARAMETERS]
        out["chosen_config_val_accuracy_in_full_grid"] = float(same[T.VAL_ACCURACY].iloc[0])
        out["gap_pp"] = 100 * (float(full_best[T.VAL_ACCURACY]) - float(same[T.VAL_ACCURACY].iloc[0]))
    print(json.dumps(out, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
