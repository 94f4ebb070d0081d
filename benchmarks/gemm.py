"""This machine's float32 GEMM rate, single-thread and all-core, for the benchmarks' ratios.

Leaves out the MLP: a plain (256 x 784) @ (784 x N) sgemm, the shape that dominates training.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits


def gemm_rate(n: int = 1024, seconds: float = 3.0, m: int = 256, k: int = 784) -> float:
    """GFLOP/s of one thread doing (m x k) @ (k x n) float32 products for about `seconds`."""
    rng = np.random.default_rng(0)
    A = rng.random((m, k), dtype=np.float32)
    B = rng.random((k, n), dtype=np.float32)
    C = np.empty((m, n), np.float32)
    with threadpool_limits(1):
        for _ in range(5):
            np.matmul(A, B, out=C)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(20):
                np.matmul(A, B, out=C)
            reps += 20
        dt = time.perf_counter() - t0
    return 2.0 * m * k * n * reps / dt / 1e9


def square_gemm_rate(n: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s of one thread doing (n x n) @ (n x n) float32 products: the machine's SGEMM rate."""
    return gemm_rate(n=n, seconds=seconds, m=n, k=n)


def _worker(args):
    return gemm_rate(*args)


def all_core_gemm_rate(n: int = 1024, seconds: float = 3.0, cores: int | None = None) -> float:
    """Sum of single-thread rates with one process per core running at once."""
    cores = cores or os.cpu_count() or 1
    with mp.get_context("spawn").Pool(cores) as pool:
        return float(sum(pool.map(_worker, [(n, seconds)] * cores)))


if __name__ == "__main__":
    print(f"single thread: {gemm_rate():.1f} GFLOP/s; all cores: {all_core_gemm_rate():.1f} GFLOP/s")
