"""Shared fixtures: the real MNIST test set the repository carries (tests/data/mnist, see its
README), split 8,000 / 2,000."""
from __future__ import annotations

import pytest

from helpers import MNIST_DIR, write_small_mnist


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
