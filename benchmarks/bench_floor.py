"""The fastest a training step made of this step's NumPy calls could run, per hidden size, and
what that allows a whole sweep's efficiency (bench_sweep.py) at best. All in one run.

Leaves out Ray, Tune and scheduling (bench_sweep.py) and alternatives to the calls
(bench_ops.py). Usage:
    python -m benchmarks.bench_floor [--hidden 64,128,256,512,1024] [--rotations 50] [--data-dir DIR]

One BLAS thread, batch 256. For each H, in rotation, blocks of 20 calls of: the whole step as an
epoch runs it (gather of the next batch included), and its three parts, each timed alone with
warm caches; their sum, with nothing for running them one after another, is the floor:
  - the two products with K = 784, the forward X @ W1 and the W1 gradient X.T @ dZ with its
    subtraction from W1 (the decay's pass over W1 left out: its cheapest form);
  - the gather of a batch of 256 rows;
  - everything else: the step's own code run on a batch of 8 input columns instead of 784
    (same H, same calls), less its two products at K = 8.
Rates are given as a share of the forward product's rate in the same rotation: that product,
(256 x 784) @ (784 x H), is bench_mlp.py's GEMM reference. This machine's speed drifts by 20-30%
within seconds; a rotation lasts a fraction of a second, so its parts share the machine's state,
and the median over rotations is what the table gives, with the range beside it.

The sweep bound: efficiency = training FLOPs / (wall time x GEMM rate), and every epoch's
validation pass (n_val images forward, 2 x 794 H each) is not training, so even with each
step at its floor's share s_H of the GEMM rate, validation at the GEMM rate itself and nothing
else taking time (no Ray, no Tune, no idle core),
    efficiency <= 1 / (sum_H w_H / s_H + validation FLOPs / training FLOPs per epoch),
w_H the share of the full grid's training FLOPs at that H (proportional to H). Each H's step
is measured against its own product, which runs no faster than the sweep's reference product,
(256 x 784) @ (784 x 1024) once per core (see bench_mlp.py's GEMM column), and alone on the
machine, where a sweep runs two at once: both favour the bound. It is printed with each step at
its median floor and, more generously still, at the 90th percentile of its rotations.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from mlp_core.train import TrainConfig, Trainer

from .bench_mlp import SIZES
from .bench_ops import B
from .common import training_data
from .flops import FLOPS_PER_IMAGE_PER_H, validation_per_training_flop

N_TRAIN, N_VAL = 48000, 12000  # full Fashion-MNIST's split, the sweep's data


def update_call(A, dZ, W):
    """The W1 update in its cheapest form: the gradient and its subtraction, no decay."""
    G = np.empty_like(W)
    return lambda: (np.matmul(A.T, dZ, out=G), np.subtract(W, G, out=W))


def floor_rotations(H: int, X: np.ndarray, y: np.ndarray, rotations: int, calls: int = 20) -> np.ndarray:
    """Per rotation: (the whole step's rate, the floor's rate), each as a share of the forward
    product's rate in that rotation; shape (rotations, 2)."""
    rng = np.random.default_rng(1)
    order = rng.permutation(len(X))
    batches = [order[s:s + B] for s in range(0, len(X) - B + 1, B)]
    Xb = np.take(X, batches[0], axis=0)
    yb = y[batches[0]]
    dZ = rng.standard_normal((B, H), dtype=np.float32) * np.float32(1e-3)
    Z = np.empty((B, H), np.float32)
    k = [0]

    def next_batch():
        k[0] = (k[0] + 1) % len(batches)
        return batches[k[0]]

    cfg = TrainConfig(hidden_size=H, learning_rate=0.01, l2=0.001)
    full, narrow = Trainer(cfg), Trainer(cfg)
    narrow.params.W1 = np.ascontiguousarray(narrow.params.W1[:8])  # all but the K = 784 products
    X8 = np.ascontiguousarray(Xb[:, :8])
    Z8, W8 = np.empty((B, H), np.float32), narrow.params.W1.copy()
    W1 = full.params.W1.copy()

    def whole_step():  # as Trainer.epoch_parts runs it
        idx = next_batch()
        full.step(np.take(X, idx, axis=0, out=full._X, mode="clip"), y[idx])

    parts = {"step": whole_step,
             "forward": lambda: np.matmul(Xb, W1, out=Z),
             "update": update_call(Xb, dZ, W1),
             "gather": lambda: np.take(X, next_batch(), axis=0, out=Xb, mode="clip"),
             "narrow step": lambda: narrow.step(X8, yb),
             "narrow forward": lambda: np.matmul(X8, narrow.params.W1, out=Z8),
             "narrow update": update_call(X8, dZ, W8)}
    us = {name: np.empty(rotations) for name in parts}
    for r in range(rotations):
        for name, fn in parts.items():
            fn()  # the first call of a block warms the caches for this part
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            us[name][r] = (time.perf_counter() - t0) / calls * 1e6
    rest = us["narrow step"] - us["narrow forward"] - us["narrow update"]
    floor = us["forward"] + us["update"] + us["gather"] + rest
    fwd_rate = 2 * 784 * H * B / us["forward"]
    step_flops = FLOPS_PER_IMAGE_PER_H * H * B
    med = {name: float(np.median(v)) for name, v in us.items()}
    shares = np.column_stack([step_flops / us["step"] / fwd_rate, step_flops / floor / fwd_rate])
    print(f"| {H} | {med['forward']:.0f} | {med['update']:.0f} | {med['gather']:.0f} "
          f"| {float(np.median(rest)):.0f} | {float(np.median(floor)):.0f} | {med['step']:.0f} | "
          + " | ".join(f"{np.median(c):.1%} ({c.min():.1%}-{c.max():.1%})" for c in shares.T) + " |",
          flush=True)
    return shares


def sweep_bound(floor_share: dict[int, float], n_train: int = N_TRAIN, n_val: int = N_VAL) -> float:
    """The efficiency bound of the module's docstring for steps at `floor_share` (H -> share)."""
    total = sum(floor_share)
    return (1 / (sum(H / total / s for H, s in floor_share.items())
                 + validation_per_training_flop(n_train, n_val)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", default=",".join(map(str, SIZES)), help="comma-separated hidden sizes")
    p.add_argument("--rotations", type=int, default=50)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args()
    sizes = [int(h) for h in args.hidden.split(",")]
    X, y, source = training_data(args.data_dir, N_TRAIN)
    print(f"data: {source}; batch {B}, one BLAS thread; {args.rotations} rotations; times in µs "
          "per step (medians); rates as a share of the forward product's rate in the same rotation, "
          "median (lowest-highest)")
    print("| H | forward product | W1 update | gather | rest of the step | floor (sum) | whole step "
          "| whole step's rate | floor's rate |")
    print("|---|---|---|---|---|---|---|---|---|")
    floors = {}
    with threadpool_limits(1):
        for H in sizes:
            floors[H] = floor_rotations(H, X, y, args.rotations)[:, 1]
    print(f"\nsweep efficiency bound (hidden sizes {', '.join(map(str, sizes))}; {N_TRAIN:,} train / "
          f"{N_VAL:,} validation): {sweep_bound({H: float(np.median(f)) for H, f in floors.items()}):.1%} "
          f"with every step at its median floor, "
          f"{sweep_bound({H: float(np.percentile(f, 90)) for H, f in floors.items()}):.1%} at the "
          "90th percentile of its rotations")


if __name__ == "__main__":
    main()
