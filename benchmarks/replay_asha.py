"""Replay asynchronous successive halving over a finished full-grid run, for many seeds at once.

A full grid (`--scheduler none`) records every trial's validation accuracy at every epoch, so
what ASHA would have done with any reduction factor, any rungs and any seeded order can be replayed
without training again: two (or --workers) simulated workers take trials in the sweep's order,
each epoch lasts the mean measured epoch time of its hidden size, and at each rung a trial is
stopped exactly as Ray Tune's `_Bracket.on_result` does (below the (1 - 1/rf) percentile of the
values recorded at that rung so far, NaN ignored). Checked against real runs: the replay of
reduction factor 3, seed 0 over the full grid of BENCHMARKS.md section 2 gives 493
trial-epochs; the real sweep ran 494.

Leaves out Ray (nothing is trained). Usage:
    python -m benchmarks.replay_asha FULL_GRID_RUN_DIR [--rf 3 4 5] [--rungs ray 1,2,4] [--seeds 10]
    python -m benchmarks.replay_asha FULL_GRID_RUN_DIR --scheduler halving [--rf 4] [--rungs 0.25,1,2,4] \
        [--workers 2 16 64 256] [--before 7.3 --after 4.7]
The second replays the default synchronous successive halving (results.sweep.halving decides, as in
the sweep) at each worker count and says whether the decisions agree.
Each reduction factor is replayed with each rung schedule: `ray` is Ray's geometric rungs
(1, rf, rf**2, ... epochs), a list such as 1,2,4 or 0.25,1,2,4 is the tool's --rungs. Rungs
inside the first epoch replay the full grid's partial_epochs.csv, which bench_sweep.py writes
with `--scheduler none --measure-rungs --rungs ...`; each report there adds a validation pass to
the replayed time (the trial-epoch and FLOP columns count training only).
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from results.sweep import settings, space
from results.sweep.halving import Halving, geometric_rungs, partial_rungs, rungs_used

from .flops import validation_per_training_flop


def load_grid(run_dir: Path, milestones) -> dict:
    """What a replay needs from a full-grid run: each trial's validation accuracy at every epoch
    and at the rungs inside the first, its hidden size, the mean measured epoch time per hidden
    size and the validation pass's share of an epoch."""
    history = pd.read_csv(run_dir / "history.csv", dtype={"trial_id": str})
    results = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str})
    partial_path = run_dir / "partial_epochs.csv"
    partial = (pd.read_csv(partial_path, dtype={"trial_id": str}) if partial_path.exists()
               else pd.DataFrame(columns=history.columns))
    max_t = int(history["epoch"].max())
    key = {(int(r.hidden_size), float(r.learning_rate), float(r.l2)): r.trial_id
           for r in results.itertuples()}
    hidden = {tid: k[0] for k, tid in key.items()}
    acc = {(t, float(e)): v for frame in (history, partial)
           for t, e, v in zip(frame["trial_id"], frame["epoch"], frame["val_accuracy"], strict=True)}
    if any((tid, e) not in acc for tid in hidden for e in range(1, max_t + 1)):
        raise SystemExit(f"{run_dir}: not a full grid (some trial lacks an epoch); run it with --scheduler none")
    # The points at which a trial reports: the rungs inside the first epoch, then every epoch.
    points = [0.0, *partial_rungs(sorted(milestones)), *range(1, max_t + 1)]
    if any((tid, float(p)) not in acc for tid in hidden for p in points[1:]):
        raise SystemExit(f"{run_dir}: no measurement at rung(s) {partial_rungs(sorted(milestones))} "
                         f"for some trial; run the full grid with bench_sweep.py --scheduler none "
                         f"--measure-rungs --rungs including them")
    seconds = (history.merge(results[["trial_id", "hidden_size"]], on="trial_id")
               .groupby("hidden_size")["time_s"].mean().to_dict())
    # A measured epoch is its training plus one validation pass, whose share of the products is
    # v = (validation / training images) x (a forward pass / a training step), per image.
    sweep = json.loads((run_dir / "sweep.json").read_text())
    v = validation_per_training_flop(1 - sweep["val_fraction"], sweep["val_fraction"])
    configs = settings.grid({"hidden": sorted({k[0] for k in key}), "lr": sorted({k[1] for k in key}),
                             "l2": sorted({k[2] for k in key})})
    full_best = {tid: np.nanmax([acc[(tid, float(e))] for e in range(1, max_t + 1)]) for tid in hidden}
    return {"key": key, "hidden": hidden, "acc": acc, "max_t": max_t, "points": points,
            "seconds": seconds, "v": v, "configs": configs, "full_best": full_best}


def outcome(g: dict, best: dict, epochs: float, work: float, clock: float) -> dict:
    """The figures both replays give: trial-epochs, FLOPs and the choice against the full grid."""
    hidden, key = g["hidden"], g["key"]
    chosen = max(best, key=lambda t: best[t])
    return {"trial_epochs": epochs, "epochs_fraction": epochs / (len(hidden) * g["max_t"]),
            "flops_fraction": work / (sum(hidden.values()) * g["max_t"]),
            "replayed_wall_s": clock, "chosen": next(k for k, v in key.items() if v == chosen),
            "gap_pp": 100 * (max(g["full_best"].values()) - g["full_best"][chosen])}


def replay(run_dir: Path, rf: int, seed: int, grace: int = 1, workers: int = 2,
           milestones: tuple | None = None) -> dict:
    """One replay; `milestones` are the rungs' epochs (default: Ray's, from grace and rf). Rungs
    inside the first epoch need the full grid's partial_epochs.csv (bench_sweep.py
    --measure-rungs): a trial then reports at each of them, then at every epoch."""
    max_t = int(pd.read_csv(run_dir / "history.csv")["epoch"].max())
    if milestones is None:  # as Ray builds them
        milestones = geometric_rungs(grace, rf, max_t)
    g = load_grid(run_dir, milestones)
    key, hidden, acc, points, seconds, v = g["key"], g["hidden"], g["acc"], g["points"], g["seconds"], g["v"]
    queue = [key[(c["hidden_size"], c["learning_rate"], c["l2"])] for c in space.shuffled(g["configs"], seed)]
    rungs = [(m, {}) for m in reversed(rungs_used(milestones, max_t))]  # highest first, as Ray keeps them

    def after(i, tid):  # the seconds from point i - 1 to point i of trial tid, validation included
        return seconds[hidden[tid]] * (points[i] - points[i - 1] + v) / (1 + v)

    events: list = []
    nxt = iter(queue)
    for w in range(min(workers, len(queue))):
        tid = next(nxt)
        heapq.heappush(events, (after(1, tid), w, tid, 1))
    epochs, work, clock, best, reached = 0.0, 0.0, 0.0, {}, set()
    while events:
        t, w, tid, i = heapq.heappop(events)
        epoch = points[i]
        epochs += epoch - points[i - 1]
        work += hidden[tid] * (epoch - points[i - 1])
        value = acc[(tid, float(epoch))]
        # As results.csv: the best whole epoch; a trial stopped inside its first, its last report.
        if epoch >= 1:
            best[tid] = max(best.get(tid, -1.0) if tid in reached else -1.0, value)
            reached.add(tid)
        else:
            best[tid] = value
        stop = epoch >= max_t or not np.isfinite(value)
        for milestone, recorded in rungs:
            if epoch < milestone or tid in recorded:
                continue
            if recorded:
                cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / rf) * 100)
                stop = stop or value < cutoff
            recorded[tid] = value
            break
        if stop:
            clock = max(clock, t)
            following = next(nxt, None)
            if following is not None:
                heapq.heappush(events, (t + after(1, following), w, following, 1))
        else:
            heapq.heappush(events, (t + after(i + 1, tid), w, tid, i + 1))
    return {"rf": rf, "rungs": sorted(m for m, _ in rungs), "seed": seed,
            **outcome(g, best, epochs, work, clock)}


def replay_halving(run_dir: Path, rf: int, milestones: tuple, workers: int = 2, seed: int = 0) -> dict:
    """Successive halving as the sweep runs it (results.sweep.halving.Halving decides): pending trials
    start in the seeded order, a trial that reaches an undecided rung gives its worker up, and
    the trials a rung lets go on resume largest hidden size first (HalvingScheduler's choice).
    Pausing and resuming cost nothing here. Returns the decisions (`promoted`, per rung) with the
    figures of replay(), and the share of worker-seconds left idle."""
    g = load_grid(run_dir, milestones)
    key, hidden, acc, points, seconds, v = g["key"], g["hidden"], g["acc"], g["points"], g["seconds"], g["v"]
    max_t = g["max_t"]
    keys = {tid: k for k, tid in key.items()}
    rungs = rungs_used(milestones, max_t)
    halving = Halving(len(hidden), rungs, rf)
    pending = [key[(c["hidden_size"], c["learning_rate"], c["l2"])] for c in space.shuffled(g["configs"], seed)]
    at = dict.fromkeys(hidden, 0.0)  # the point each trial has reached
    resumable: list = []  # trials a rung let go on, not yet running again
    paused: set = set()

    def cost(tid, a, b):  # seconds from point a to point b: training plus a validation per report
        reports = sum(1 for p in points[1:] if a < p <= b)
        return seconds[hidden[tid]] * ((b - a) + v * reports) / (1 + v)

    def target(tid):  # where a trial runs to next: its next rung, else the last epoch
        return next((r for r in rungs if r > at[tid]), max_t)

    events: list = []
    clock, busy, free = 0.0, 0.0, workers
    while True:
        while free and (pending or resumable):
            tid = pending.pop(0) if pending else resumable.pop(0)
            d = cost(tid, at[tid], target(tid))
            busy += d
            heapq.heappush(events, (clock + d, keys[tid], tid, target(tid)))
            free -= 1
        if not events:
            break
        clock, _, tid, point = heapq.heappop(events)
        free += 1
        at[tid] = point
        if point >= max_t:
            continue
        halving.record(tid, rungs.index(point), acc[(tid, float(point))], keys[tid])
        paused.add(tid)
        for p in sorted(paused):
            fate = halving.fate(p, rungs.index(at[p]))
            if fate is not None:
                paused.discard(p)
                if fate == "go":
                    resumable.append(p)
        resumable.sort(key=lambda t: keys[t], reverse=True)
    # As results.csv: the best whole epoch run; a trial stopped inside its first, that report.
    best = {t: (np.nanmax([acc[(t, float(e))] for e in range(1, int(at[t]) + 1)]) if at[t] >= 1
                else acc[(t, float(at[t]))]) for t in hidden}
    epochs = sum(at.values())
    work = sum(hidden[t] * at[t] for t in hidden)
    return {"rf": rf, "rungs": rungs, "workers": workers, "promoted": halving.promoted,
            "idle_share": 1 - busy / (workers * clock), "busy_s": busy, **outcome(g, best, epochs, work, clock)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a run folder of a --scheduler none sweep")
    p.add_argument("--scheduler", choices=["asha", "halving"], default="asha")
    p.add_argument("--rf", type=int, nargs="+", default=[3, 4, 5], help="reduction factors to replay")
    p.add_argument("--rungs", nargs="+", default=["ray"],
                   help="rung schedules: 'ray' (geometric, asha only) or comma-separated epochs, e.g. "
                        "1,2,4 or 0.25,1,2,4 (fractions need a full grid run with --measure-rungs)")
    p.add_argument("--seeds", type=int, default=10, help="asha: orders to replay, seeds 0 .. N-1")
    p.add_argument("--before", type=float, default=0.0,
                   help="halving: seconds the whole command spends before the first report (measured)")
    p.add_argument("--after", type=float, default=0.0,
                   help="halving: seconds it spends after the last report (measured)")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="simulated workers (asha: one count, default 2; halving: each of these, "
                        "default 2 16 64 256, whose decisions must agree)")
    args = p.parse_args()
    if args.scheduler == "halving":
        return main_halving(args)
    workers = (args.workers or [2])[0]
    print(f"{args.run_dir}: ASHA replayed over seeds 0..{args.seeds - 1}, {workers} workers")
    print("| reduction factor | rungs (epochs) | trial-epochs (mean, max) | FLOPs of the full grid (mean) "
          "| gap to the full grid's best, pp (mean, max) | chose the full grid's best | replayed wall s (mean) |")
    print("|---|---|---|---|---|---|---|")
    for rf, schedule in itertools.product(args.rf, args.rungs):
        milestones = None if schedule == "ray" else space.parse_rungs("--rungs", schedule)
        runs = [replay(args.run_dir, rf, s, workers=workers, milestones=milestones)
                for s in range(args.seeds)]
        ep = [r["epochs_fraction"] for r in runs]
        gap = [r["gap_pp"] for r in runs]
        used = ", ".join(map(str, runs[0]["rungs"])) + (" (Ray's)" if milestones is None else "")
        print(f"| {rf} | {used} | {np.mean(ep):.1%}, {np.max(ep):.1%} "
              f"| {np.mean([r['flops_fraction'] for r in runs]):.1%} "
              f"| {np.mean(gap):.2f}, {np.max(gap):.2f} | {sum(g == 0 for g in gap)} of {len(gap)} "
              f"| {np.mean([r['replayed_wall_s'] for r in runs]):.0f} |")


def main_halving(args):
    """Each factor and rung schedule at each worker count: the decisions must be the same. With
    --before and --after (the whole command's fixed costs, measured on a real run), also the
    whole command's replayed wall time and its ratio to the trials' busy time per worker."""
    workers = args.workers or [2, 16, 64, 256]
    print(f"{args.run_dir}: successive halving replayed at {', '.join(map(str, workers))} workers"
          + (f", the whole command with {args.before:g} s before the first report and {args.after:g} s "
             f"after the last" if args.before or args.after else ""))
    at = " / ".join(map(str, workers))
    print("| reduction factor | rungs (epochs) | trial-epochs | FLOPs of the full grid | gap, pp "
          f"| chosen (H, lr, L2) | same decisions at every worker count | replayed wall s at {at} workers "
          f"| idle at {workers[0]} workers | whole command s at {at} | whole ÷ (busy / workers) at {at} |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for rf, schedule in itertools.product(args.rf, args.rungs):
        milestones = space.parse_rungs("--rungs", schedule)
        runs = [replay_halving(args.run_dir, rf, milestones, workers=w) for w in workers]
        first = runs[0]
        same = all(r["promoted"] == first["promoted"] and r["chosen"] == first["chosen"] for r in runs)
        walls = " / ".join(f"{r['replayed_wall_s']:.1f}" for r in runs)
        whole = [args.before + r["replayed_wall_s"] + args.after for r in runs]
        ratios = " / ".join(f"{w / (r['busy_s'] / n):.2f}" for w, r, n in zip(whole, runs, workers, strict=True))
        print(f"| {rf} | {', '.join(map(str, first['rungs']))} | {first['epochs_fraction']:.1%} "
              f"| {first['flops_fraction']:.1%} | {first['gap_pp']:.2f} | {first['chosen']} "
              f"| {'yes' if same else 'NO'} | {walls} "
              f"| {first['idle_share']:.1%} | {' / '.join(f'{w:.1f}' for w in whole)} | {ratios} |")


if __name__ == "__main__":
    main()
