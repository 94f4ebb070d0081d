"""Helpers the benchmarks share: the small real dataset written as IDX files, the training data
of the one-thread benchmarks, and a timer around Tune's public Tuner.fit (a sweep's time in Tune,
measured from outside the product).

Leaves out the FLOP count (flops.py) and the GEMM rate (gemm.py).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mlp_core.data import read_idx_pair, write_split

ROOT = Path(__file__).resolve().parents[1]
# The real MNIST test set the repository carries (tests/data/README.md says where it is from).
MNIST_T10K = ROOT / "tests" / "data" / "mnist"


def write_small_mnist(d: Path) -> Path:
    """The MNIST test set split 8,000 / 2,000 into `d` in the four-file layout (the 8,000 as the
    training files): the small real dataset of the benchmarks."""
    return write_split(d, *read_idx_pair(MNIST_T10K / "t10k-images-idx3-ubyte.gz",
                                         MNIST_T10K / "t10k-labels-idx1-ubyte.gz"), 8000)


def training_data(data_dir: str | None, n: int):
    """The first `n` Fashion-MNIST training images from `data_dir`, or as many random ones."""
    if data_dir and Path(data_dir).is_dir():
        from mlp_core.data import load_dataset
        ds = load_dataset("fashion-mnist", data_dir, download=False)
        return ds.X_train[:n], ds.y_train[:n], "Fashion-MNIST"
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n), "synthetic"


@contextmanager
def tuner_fit_seconds():
    """Yields a list that gets the seconds of each ray.tune.Tuner.fit call made in the block."""
    from search import rayenv
    rayenv.configure()  # before Ray is imported, as every entry point of this tool does
    from ray import tune

    spent, fit = [], tune.Tuner.fit

    def timed(self):
        t0 = time.perf_counter()
        try:
            return fit(self)
        finally:
            spent.append(time.perf_counter() - t0)

    tune.Tuner.fit = timed
    try:
        yield spent
    finally:
        tune.Tuner.fit = fit
