"""Where a training step's time goes: the step timed whole beside each of its operations timed
alone, on one BLAS thread, and the alternatives the step chose between. All in one run.

Leaves out Ray and whole epochs (bench_mlp.py). Usage:
    python -m benchmarks.bench_ops [--hidden 256] [--data-dir /usr/share/datasets/fashion-mnist]
Times are the best of 5 repeats of a loop of calls, in microseconds per call. The operations
alone run with warm caches, so their sum undercounts what they cost inside the step.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from mlp_core.train import TrainConfig, Trainer

from .common import training_data

B = 256


def per_call_us(fn, calls: int = 200, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args()
    H = args.hidden
    X, y, source = training_data(args.data_dir, 48000)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    batches = [order[s:s + B] for s in range(0, len(X) - B + 1, B)]
    k = [0]

    def next_idx():
        k[0] = (k[0] + 1) % len(batches)
        return batches[k[0]]

    Xb = np.empty((B, 784), np.float32)
    W1 = (rng.standard_normal((784, H), dtype=np.float32) * 0.05)
    W2 = rng.standard_normal((H, 10), dtype=np.float32) * 0.05
    b1 = np.zeros(H, np.float32)
    Z = np.empty((B, H), np.float32)
    dZ = rng.standard_normal((B, H), dtype=np.float32)
    G = np.empty((784, H), np.float32)
    L = rng.standard_normal((B, 10), dtype=np.float32)
    out10 = np.empty((B, 10), np.float32)
    dW2 = np.empty((H, 10), np.float32)
    mask = np.empty((B, H), bool)
    col = np.empty((B, 1), np.float32)
    ones = np.ones((10, 1), np.float32)
    rows = np.arange(B)
    top = L.argmax(axis=1)
    np.take(X, batches[0], axis=0, out=Xb, mode="clip")

    with threadpool_limits(1):
        cfg = TrainConfig(hidden_size=H, learning_rate=0.01, l2=0.001)
        trainer = Trainer(cfg)
        n = len(batches) * B
        step_us = min(_timed(lambda: trainer.run_epoch(X[:n], y[:n])) for _ in range(3)) / len(batches) * 1e6
        ops = {
            "forward product X @ W1": lambda: np.matmul(Xb, W1, out=Z),
            "W1 gradient X.T @ dZ": lambda: np.matmul(Xb.T, dZ, out=G),
            "gather 256 rows, np.take mode=clip (used)":
                lambda: np.take(X, next_idx(), axis=0, out=Xb, mode="clip"),
            "gather 256 rows, np.take mode=raise (default)":
                lambda: np.take(X, next_idx(), axis=0, out=Xb),
            "A1 @ W2 (N = 10)": lambda: np.matmul(Z, W2, out=out10),
            "dlogits @ W2.T (K = 10)": lambda: np.matmul(L, W2.T, out=dZ),
            "A1.T @ dlogits (N = 10)": lambda: np.matmul(Z.T, L, out=dW2),
            "bias add over (256, H)": lambda: np.add(Z, b1, out=Z),
            "ReLU mask": lambda: np.greater(Z, 0, out=mask),
            "ReLU": lambda: np.maximum(Z, 0, out=Z),
            "dZ *= mask": lambda: np.multiply(dZ, mask, out=dZ),
            "bias gradient dZ.sum(axis=0)": lambda: dZ.sum(axis=0),
            "row max, np.max over 10 columns (not used)": lambda: np.max(L, axis=1, keepdims=True, out=col),
            "row max, argmax + gather (used)": lambda: (L.argmax(axis=1), L[rows, top]),
            "row sums, np.sum over 10 columns (not used)": lambda: np.sum(L, axis=1, keepdims=True, out=col),
            "row sums, product with ones (used)": lambda: np.matmul(L, ones, out=col),
        }
        timed = {name: per_call_us(fn) for name, fn in ops.items()}

    print(f"data: {source}; H = {H}, batch {B}, one BLAS thread")
    print(f"whole step inside an epoch (gather included): {step_us:.0f} µs")
    print("| operation, timed alone | µs per call | share of the step |")
    print("|---|---|---|")
    for name, us in timed.items():
        print(f"| {name} | {us:.1f} | {us / step_us:.1%} |")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
