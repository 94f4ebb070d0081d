"""Shared fixtures: the real MNIST test set the repository carries (tests/data/mnist, see its
README), split 8,000 / 2,000."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT / "tests" / "data" / "mnist"


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (gzipped when compress) — the canonical layout."""
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_small_mnist(d: Path) -> Path:
    """The real MNIST test set split 8,000 / 2,000, written into `d` in the canonical four-file
    layout (the 8,000 as the training files): a small real dataset for the CLI."""
    from mlp_core.data import read_idx_pair
    X, y = read_idx_pair(MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    d.mkdir(parents=True, exist_ok=True)
    write_idx(d / "train-images-idx3-ubyte.gz", X[:8000], 0x803)
    write_idx(d / "train-labels-idx1-ubyte.gz", y[:8000], 0x801)
    write_idx(d / "t10k-images-idx3-ubyte.gz", X[8000:], 0x803)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", y[8000:], 0x801)
    return d


@pytest.fixture(scope="session")
def mnist_t10k():
    from mlp_core.data import read_idx_pair
    images = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.fail(f"{images} is missing: the repository carries it (tests/data/README.md)")
    return read_idx_pair(images, MNIST_DIR / "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def small_dataset(mnist_t10k):
    """8,000 digits to train on (20% of them held out for validation), 2,000 to test."""
    from mlp_core.data import make_dataset
    X, y = mnist_t10k
    return make_dataset("mnist-t10k-8000/2000", X[:8000], y[:8000], X[8000:], y[8000:], 0.2, 0)


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory, mnist_t10k):
    """A data directory in the canonical four-file layout holding the 8,000 / 2,000 split."""
    return write_small_mnist(tmp_path_factory.mktemp("mnist-small"))
