"""MLP training throughput on one BLAS thread against this machine's single-thread float32 GEMM
rate and, where PyTorch is installed, the same MLP in PyTorch on one thread; all in one run.

Leaves out Ray and the sweep (bench_sweep.py). Usage:
    python -m benchmarks.bench_mlp [--rounds 3] [--data-dir /usr/share/datasets/fashion-mnist]
FLOPs per training image = 3196 H (forward 2*794H, dW2 20H, dA1 20H, dW1 1568H). Two references,
timed in the same process: the rate of each H's dominant product, (256 x 784) @ (784 x H), and
the machine's single-thread SGEMM rate on (1024 x 1024) @ (1024 x 1024).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from mlp_core.train import TrainConfig, Trainer

from .common import training_data
from .flops import FLOPS_PER_IMAGE_PER_H
from .gemm import gemm_rate, square_gemm_rate

SIZES = (64, 128, 256, 512, 1024)


def numpy_epoch_seconds(H, X, y, epochs=1):
    tr = Trainer(TrainConfig(hidden_size=H, learning_rate=0.01, l2=0.001, batch_size=256))
    tr.run_epoch(X[:4096], y[:4096])  # warm-up
    best = float("inf")
    for _ in range(epochs):
        t0 = time.perf_counter()
        tr.run_epoch(X, y)
        best = min(best, time.perf_counter() - t0)
    return best


def torch_epoch_seconds(H, X, y, epochs=1):
    import torch
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, H), torch.nn.ReLU(), torch.nn.Linear(H, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(n):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, 256):
            idx = perm[s:s + 256]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    epoch(4096)
    best = float("inf")
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch(len(X))
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per size (the best counts)")
    p.add_argument("--n", type=int, default=48000, help="training images per epoch")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args()
    X, y, source = training_data(args.data_dir, args.n)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"data: {source}, {len(X)} images per epoch, batch 256, one BLAS thread")
    with threadpool_limits(1):
        square = max(square_gemm_rate() for _ in range(args.rounds))
    print(f"machine's single-thread SGEMM rate, (1024 x 1024) @ (1024 x 1024): {square:.1f} GFLOP/s")
    header = ("| H | GEMM GFLOP/s | NumPy MLP GFLOP/s | samples/s | % of GEMM | % of SGEMM 1024³ |")
    if have_torch:
        header += " PyTorch samples/s | NumPy / PyTorch |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    with threadpool_limits(1):
        for H in SIZES:
            # Interleaved and best-of-`rounds`, so a burst of noise hits neither side alone.
            gemm, sec, tsec = 0.0, float("inf"), float("inf")
            for _ in range(args.rounds):
                gemm = max(gemm, gemm_rate(n=H, seconds=1.0))
                sec = min(sec, numpy_epoch_seconds(H, X, y, 1))
                if have_torch:
                    tsec = min(tsec, torch_epoch_seconds(H, X, y, 1))
            gflops = len(X) * FLOPS_PER_IMAGE_PER_H * H / sec / 1e9
            line = (f"| {H} | {gemm:.1f} | {gflops:.1f} | {len(X) / sec:,.0f} | {100 * gflops / gemm:.0f}% "
                    f"| {100 * gflops / square:.0f}% |")
            if have_torch:
                line += f" {len(X) / tsec:,.0f} | {tsec / sec:.2f} |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
