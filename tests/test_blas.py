"""mlp_core.blas: the in-place SGEMM update against float64 NumPy, its refusals, and the
training step giving the same parameters with and without it."""
from __future__ import annotations

import numpy as np
import pytest

import mlp_core.train as train_mod
from mlp_core.blas import gemm_tn_update
from mlp_core.train import TrainConfig, Trainer

needs_blas = pytest.mark.skipif(gemm_tn_update is None, reason="NumPy's bundled OpenBLAS not found")


@needs_blas
@pytest.mark.parametrize("shape", [(256, 784, 64), (3, 5, 7), (1, 4, 2)])
def test_update_matches_float64(shape):
    K, M, N = shape
    rng = np.random.default_rng(K + M + N)
    A = rng.standard_normal((K, M), dtype=np.float32)
    B = rng.standard_normal((K, N), dtype=np.float32)
    C = rng.standard_normal((M, N), dtype=np.float32)
    expected = 0.9 * C.astype(np.float64) - 0.25 * (A.T.astype(np.float64) @ B)
    gemm_tn_update(A, B, C, -0.25, 0.9)
    assert C.dtype == np.float32
    np.testing.assert_allclose(C, expected, rtol=1e-4, atol=1e-4)


@needs_blas
def test_update_on_row_slices_touches_only_the_view():
    rng = np.random.default_rng(1)
    big_A = rng.standard_normal((10, 6), dtype=np.float32)
    A = big_A[2:7]  # rows of a C array: contiguous rows, offset start
    B = rng.standard_normal((5, 4), dtype=np.float32)
    big_C = rng.standard_normal((9, 4), dtype=np.float32)
    before = big_C.copy()
    gemm_tn_update(A, B, big_C[3:9], 1.0, 0.0)
    np.testing.assert_allclose(big_C[3:9], A.T @ B, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(big_C[:3], before[:3])


@needs_blas
@pytest.mark.parametrize("bad", ["dtype", "columns", "shape", "readonly"])
def test_update_refuses_what_blas_would_misread(bad):
    A = np.ones((4, 3), np.float32)
    B = np.ones((4, 2), np.float32)
    C = np.zeros((3, 2), np.float32)
    if bad == "dtype":
        A = A.astype(np.float64)
    elif bad == "columns":
        A = np.ones((4, 6), np.float32)[:, ::2]
    elif bad == "shape":
        C = np.zeros((2, 3), np.float32)
    else:
        C.flags.writeable = False
    with pytest.raises(ValueError):
        gemm_tn_update(A, B, C, 1.0, 1.0)
    if bad != "readonly":
        assert not C.any()


@needs_blas
def test_training_with_and_without_the_blas_update_agree(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.random((600, 784), dtype=np.float32)
    y = rng.integers(0, 10, 600)
    cfg = TrainConfig(hidden_size=48, learning_rate=0.05, l2=0.01, batch_size=64, seed=2)
    fused = Trainer(cfg)
    for _ in range(3):
        fused.run_epoch(X, y)
    monkeypatch.setattr(train_mod, "gemm_tn_update", None)
    plain = Trainer(cfg)
    for _ in range(3):
        plain.run_epoch(X, y)
    for n in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(getattr(fused.params, n), getattr(plain.params, n), rtol=1e-5, atol=1e-6)


def test_step_accepts_a_non_contiguous_batch():
    rng = np.random.default_rng(4)
    cfg = TrainConfig(hidden_size=16, learning_rate=0.05, l2=0.01, batch_size=8)
    a, b = Trainer(cfg), Trainer(cfg)
    X = rng.random((8, 784), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    a.step(X, y)
    b.step(np.asfortranarray(X), y)
    np.testing.assert_array_equal(a.params.W1, b.params.W1)


@needs_blas
def test_the_update_runs_in_the_library_whose_threads_the_trials_limit():
    # The trial limits BLAS threads with threadpoolctl, which acts on the libraries NumPy loaded.
    # The ctypes handle must be that same library, or the update would use every core.
    import ctypes

    from threadpoolctl import threadpool_limits

    from mlp_core.blas import _numpy_blas_libraries

    lib = ctypes.CDLL(_numpy_blas_libraries()[0])
    get = getattr(lib, "scipy_openblas_get_num_threads64_", None) or lib.scipy_openblas_get_num_threads
    get.restype = ctypes.c_int
    from threadpoolctl import threadpool_info

    reported = [p["num_threads"] for p in threadpool_info() if p["internal_api"] == "openblas"]
    assert get() in reported
    with threadpool_limits(limits=1, user_api="blas"):
        assert get() == 1
