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
    python benchmarks/replay_asha.py FULL_GRID_RUN_DIR [--rf 3 4 5] [--rungs ray 1,2,4] [--seeds 10]
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
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import validation_per_training_flop  # noqa: E402
from search import space  # noqa: E402


def replay(run_dir: Path, rf: int, seed: int, grace: int = 1, workers: int = 2,
           milestones: tuple | None = None) -> dict:
    """One replay; `milestones` are the rungs' epochs (default: Ray's, from grace and rf). Rungs
    inside the first epoch need the full grid's partial_epochs.csv (bench_sweep.py
    --measure-rungs): a trial then reports at each of them, then at every epoch."""
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
           for t, e, v in zip(frame["trial_id"], frame["epoch"], frame["val_accuracy"])}
    if any((tid, e) not in acc for tid in hidden for e in range(1, max_t + 1)):
        raise SystemExit(f"{run_dir}: not a full grid (some trial lacks an epoch); run it with --scheduler none")
    seconds = (history.merge(results[["trial_id", "hidden_size"]], on="trial_id")
               .groupby("hidden_size")["time_s"].mean().to_dict())
    configs = space.grid(tuple(sorted({k[0] for k in key})), tuple(sorted({k[1] for k in key})),
                         tuple(sorted({k[2] for k in key})))
    queue = [key[(c["hidden_size"], c["learning_rate"], c["l2"])] for c in space.shuffled(configs, seed)]
    if milestones is None:  # as Ray builds them
        milestones = space.geometric_rungs(grace, rf, max_t)
    rungs = [(m, {}) for m in space.rungs_used(milestones, max_t)]  # as make_scheduler sets them
    # The points at which a trial reports: the rungs inside the first epoch, then every epoch.
    points = [0.0, *space.partial_rungs(sorted(milestones)), *range(1, max_t + 1)]
    if any((tid, float(p)) not in acc for tid in hidden for p in points[1:]):
        raise SystemExit(f"{run_dir}: no measurement at rung(s) {space.partial_rungs(sorted(milestones))} "
                         f"for some trial; run the full grid with bench_sweep.py --scheduler none "
                         f"--measure-rungs --rungs including them")

    # A measured epoch is its training plus one validation pass, whose share of the products is
    # v = (validation / training images) x (a forward pass / a training step), per image.
    sweep = json.loads((run_dir / "sweep.json").read_text())
    v = validation_per_training_flop(1 - sweep["val_fraction"], sweep["val_fraction"])

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
    full_best = {tid: np.nanmax([acc[(tid, float(e))] for e in range(1, max_t + 1)]) for tid in hidden}
    chosen = max(best, key=lambda t: best[t])
    return {"rf": rf, "rungs": sorted(m for m, _ in rungs), "seed": seed, "trial_epochs": epochs,
            "epochs_fraction": epochs / (len(hidden) * max_t),
            "flops_fraction": work / (sum(hidden.values()) * max_t),
            "replayed_wall_s": clock,
            "chosen": next(k for k, v in key.items() if v == chosen),
            "gap_pp": 100 * (max(full_best.values()) - full_best[chosen])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a run folder of a --scheduler none sweep")
    p.add_argument("--rf", type=int, nargs="+", default=[3, 4, 5], help="reduction factors to replay")
    p.add_argument("--rungs", nargs="+", default=["ray"],
                   help="rung schedules: 'ray' (geometric) or comma-separated epochs, e.g. 1,2,4 "
                        "or 0.25,1,2,4 (fractions need a full grid run with --measure-rungs)")
    p.add_argument("--seeds", type=int, default=10, help="orders to replay: seeds 0 .. N-1")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    print(f"{args.run_dir}: ASHA replayed over seeds 0..{args.seeds - 1}, {args.workers} workers")
    print("| reduction factor | rungs (epochs) | trial-epochs (mean, max) | FLOPs of the full grid (mean) "
          "| gap to the full grid's best, pp (mean, max) | chose the full grid's best | replayed wall s (mean) |")
    print("|---|---|---|---|---|---|---|")
    for rf, schedule in itertools.product(args.rf, args.rungs):
        milestones = None if schedule == "ray" else space.parse_rungs("--rungs", schedule)
        runs = [replay(args.run_dir, rf, s, workers=args.workers, milestones=milestones)
                for s in range(args.seeds)]
        ep = [r["epochs_fraction"] for r in runs]
        gap = [r["gap_pp"] for r in runs]
        used = ", ".join(map(str, runs[0]["rungs"])) + (" (Ray's)" if milestones is None else "")
        print(f"| {rf} | {used} | {np.mean(ep):.1%}, {np.max(ep):.1%} "
              f"| {np.mean([r['flops_fraction'] for r in runs]):.1%} "
              f"| {np.mean(gap):.2f}, {np.max(gap):.2f} | {sum(g == 0 for g in gap)} of {len(gap)} "
              f"| {np.mean([r['replayed_wall_s'] for r in runs]):.0f} |")


if __name__ == "__main__":
    main()
