"""One BLAS call NumPy does not expose: C <- beta * C + alpha * A.T @ B, in place.

The SGD step's weight update `W1 <- (1 - lr*l2) * W1 - A.T @ dZ` is exactly what SGEMM computes
with its `alpha` and `beta` arguments. Through NumPy it costs a product into a temporary plus
passes over W1 for the decay and the subtraction (about 5% of a step at H >= 256, see
BENCHMARKS.md section 1). NumPy's own wheels carry OpenBLAS as a shared library with the CBLAS
interface; this module calls that library's `cblas_sgemm` through ctypes: no other package,
the same library (and so the same thread limit) as `numpy.matmul`.

Used only when the library is found under a symbol whose integer width is known and a self-test
against `numpy.matmul` passes; otherwise (NumPy built against another BLAS, or
`MLP_SWEEP_NO_BLAS_UPDATE=1`) `gemm_tn_update` is `None` and callers use plain NumPy.
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

DISABLE_ENV = "MLP_SWEEP_NO_BLAS_UPDATE"

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# (symbol, C type of the integer arguments): the scipy-openblas builds NumPy's wheels ship.
_SYMBOLS = (("scipy_cblas_sgemm64_", ctypes.c_int64), ("scipy_cblas_sgemm", ctypes.c_int32))


def _numpy_blas_libraries() -> list[str]:
    root = os.path.dirname(os.path.dirname(np.__file__))
    found = []
    for folder in (os.path.join(root, "numpy.libs"), os.path.join(root, "numpy", ".dylibs")):
        for pattern in ("libscipy_openblas*.so*", "libscipy_openblas*.dylib", "libscipy_openblas*.dll"):
            found += sorted(glob.glob(os.path.join(folder, pattern)))
    return found


def _load():
    for path in _numpy_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, cint in _SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, cint, cint, cint, ctypes.c_float,
                           ctypes.c_void_p, cint, ctypes.c_void_p, cint, ctypes.c_float,
                           ctypes.c_void_p, cint]
            fn.restype = None
            return fn
    return None


def _make(fn):
    def gemm_tn_update(A: np.ndarray, B: np.ndarray, C: np.ndarray, alpha: float, beta: float) -> None:
        """C <- beta * C + alpha * A.T @ B for float32 arrays A (K, M), B (K, N), C (M, N) whose rows
        are contiguous (row slices of a C-ordered array are fine). Raises ValueError otherwise:
        a wrong stride handed to BLAS would corrupt memory, so nothing is assumed."""
        for name, a in (("A", A), ("B", B), ("C", C)):
            if (a.dtype != np.float32 or a.ndim != 2 or a.strides[1] != 4 or a.strides[0] % 4
                    or (a.shape[0] > 1 and a.strides[0] < 4 * a.shape[1])):
                raise ValueError(f"{name} must be a 2-D float32 array with contiguous rows")
        if not C.flags.writeable:
            raise ValueError("C must be writeable")
        K, M = A.shape
        if B.shape[0] != K or C.shape != (M, B.shape[1]):
            raise ValueError(f"shapes do not match: A {A.shape}, B {B.shape}, C {C.shape}")
        N = B.shape[1]
        if K == 0 or M == 0 or N == 0:
            C *= np.float32(beta)
            return
        fn(_ROW_MAJOR, _TRANS, _NO_TRANS, M, N, K, alpha, A.ctypes.data, max(A.strides[0] // 4, M),
           B.ctypes.data, max(B.strides[0] // 4, N), beta, C.ctypes.data, max(C.strides[0] // 4, N))

    return gemm_tn_update


def _self_test(gemm) -> bool:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 5), dtype=np.float32)
    B = rng.standard_normal((7, 3), dtype=np.float32)
    C0 = rng.standard_normal((5, 3), dtype=np.float32)
    C = C0.copy()
    gemm(A, B, C, -0.5, 0.75)
    expected = 0.75 * C0.astype(np.float64) - 0.5 * (A.T.astype(np.float64) @ B)
    return bool(np.allclose(C, expected, rtol=1e-5, atol=1e-5))


def _init():
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    try:
        fn = _load()
        if fn is None:
            return None
        gemm = _make(fn)
        return gemm if _self_test(gemm) else None
    except (OSError, AttributeError, ValueError):
        return None


gemm_tn_update = _init()
