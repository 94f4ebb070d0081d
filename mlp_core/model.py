"""The D-H-C ReLU MLP (784-H-10 for MNIST): initialisation, forward pass, softmax cross-entropy,
gradients, .npz I/O.

Leaves out the training loop (train.py) and data handling (data.py, tabular.py). Pure NumPy.

Conventions: a batch `X` is (B, D) float32, labels `y` are integer class indices (B,) in 0..C-1.
    logits = relu(X @ W1 + b1) @ W2 + b2
The objective minimised in training is
    mean softmax cross-entropy over the batch + (l2 / 2) * (sum(W1**2) + sum(W2**2))
so its gradient adds `l2 * W` to each weight matrix. Biases are not penalised. Reported
losses (train_loss, val_loss, test_loss) are the cross-entropy alone, so they compare across l2.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_write

N_IN = 784  # MNIST's inputs and classes: the defaults; a user's data brings its own D and C
N_OUT = 10
PARAM_NAMES = ("W1", "b1", "W2", "b2")
# In an exported model of standardised features: the raw features' mean and standard deviation,
# each (D,), applied before W1 (raw_inputs)
SCALING_NAMES = ("x_mean", "x_std")


class ModelFileError(Exception):
    """A model file is missing, pickled, malformed or holds non-finite values."""


# What reading a damaged or foreign .npz of weights raises (np.load allows no pickles): a trial's
# checkpoint cut short, another file in its place, another trial's arrays.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, ModelFileError)


def read_state(path: str | os.PathLike, keys=None) -> dict[str, np.ndarray]:
    """The arrays of a trial's checkpoint state file (a training state: weights, RNG, epochs done,
    the reports saved with it), never unpickled: those named in `keys` that it holds (only they
    are read from the file), or all. The one reader of checkpoints: a trial's restore, which
    epochs a trial kept, the chosen trial's weights; what a damaged file raises is UNREADABLE."""
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in (npz.files if keys is None else [k for k in keys if k in npz.files])}


@dataclass
class Params:
    W1: np.ndarray  # (D, H)
    b1: np.ndarray  # (H,)
    W2: np.ndarray  # (H, C)
    b2: np.ndarray  # (C,)
    # An exported model's (x_mean, x_std) when it takes raw features it standardises itself
    scaling: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def hidden_size(self) -> int:
        return self.W1.shape[1]

    @property
    def n_inputs(self) -> int:
        return self.W1.shape[0]

    @property
    def n_classes(self) -> int:
        return self.W2.shape[1]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def copy(self) -> Params:
        return Params(*(getattr(self, n).copy() for n in PARAM_NAMES), self.scaling)

    def astype(self, dtype) -> Params:
        return Params(*(getattr(self, n).astype(dtype) for n in PARAM_NAMES), self.scaling)

    def is_finite(self) -> bool:
        return all(np.isfinite(getattr(self, n)).all() for n in PARAM_NAMES)


def init_params(hidden_size: int, rng: np.random.Generator, dtype=np.float32, n_inputs: int = N_IN,
                n_classes: int = N_OUT) -> Params:
    """He-normal weights (std sqrt(2 / fan_in), suited to ReLU), zero biases."""
    W1 = rng.standard_normal((n_inputs, hidden_size), dtype=np.float32) * np.float32(np.sqrt(2.0 / n_inputs))
    W2 = rng.standard_normal((hidden_size, n_classes), dtype=np.float32) * np.float32(np.sqrt(2.0 / hidden_size))
    return Params(W1.astype(dtype, copy=False), np.zeros(hidden_size, dtype),
                  W2.astype(dtype, copy=False), np.zeros(n_classes, dtype))


def forward(params: Params, X: np.ndarray) -> np.ndarray:
    """Logits (B, C)."""
    A1 = np.maximum(X @ params.W1 + params.b1, 0)  # (B, H)
    return A1 @ params.W2 + params.b2  # (B, C)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax by the log-sum-exp shift: finite for any finite logits."""
    with np.errstate(over="ignore"):  # a gap beyond float range gives -inf: probability 0
        shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean softmax cross-entropy computed from logits (never log(softmax))."""
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(y)), y].mean(dtype=np.float64))


def l2_penalty(params: Params, l2: float) -> float:
    return 0.5 * l2 * float(np.sum(params.W1 * params.W1, dtype=np.float64)
                            + np.sum(params.W2 * params.W2, dtype=np.float64))


def loss_and_grads(params: Params, X: np.ndarray, y: np.ndarray, l2: float
                   ) -> tuple[float, Params]:
    """The full objective (cross-entropy + L2 penalty) and its gradient. Reference
    implementation: clear rather than fast; the training loop uses a fused in-place version."""
    Z1 = X @ params.W1 + params.b1  # (B, H)
    A1 = np.maximum(Z1, 0)
    logits = A1 @ params.W2 + params.b2  # (B, C)
    B = len(y)
    logp = log_softmax(logits)
    loss = -logp[np.arange(B), y].mean() + l2_penalty(params, l2)
    dlogits = np.exp(logp)
    dlogits[np.arange(B), y] -= 1
    dlogits /= B  # (B, C)
    dW2 = A1.T @ dlogits + l2 * params.W2
    db2 = dlogits.sum(axis=0)
    dA1 = dlogits @ params.W2.T
    dZ1 = dA1 * (Z1 > 0)
    dW1 = X.T @ dZ1 + l2 * params.W1
    db1 = dZ1.sum(axis=0)
    return float(loss), Params(dW1, db1, dW2, db2)


def evaluate(params: Params, X: np.ndarray, y: np.ndarray, chunk: int = 4096
             ) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a whole set, in chunks to bound memory."""
    total_loss = 0.0
    correct = 0
    for start in range(0, len(X), chunk):
        logits = forward(params, X[start:start + chunk])
        yb = y[start:start + chunk]
        logp = log_softmax(logits)
        total_loss += float(-logp[np.arange(len(yb)), yb].sum(dtype=np.float64))
        correct += int((logits.argmax(axis=1) == yb).sum())
    n = max(len(X), 1)
    return total_loss / n, correct / n


def predict_proba(params: Params, X: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(forward(params, X)))


def raw_inputs(params: Params, X: np.ndarray) -> np.ndarray:
    """Raw features (N, D) as the model takes them: standardised by its own x_mean and x_std
    where it has them (float32 in any case)."""
    X = np.asarray(X, dtype=np.float32)
    if params.scaling is None:
        return X
    mean, std = params.scaling
    return (X - mean) / std


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def save_params(path: str | os.PathLike, params: Params) -> None:
    """Write W1, b1, W2, b2 (float32), and x_mean, x_std where the model has them, to an .npz,
    atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = params.as_dict()
    if params.scaling is not None:
        arrays.update(zip(SCALING_NAMES, params.scaling, strict=True))
    with atomic_write(path) as f:
        np.savez(f, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()})


def params_from_arrays(arrays: dict[str, np.ndarray], source: str = "model") -> Params:
    """Check names, shapes, dtypes and finiteness; raise ModelFileError naming `source`."""
    missing = [n for n in PARAM_NAMES if n not in arrays]
    if missing:
        raise ModelFileError(f"{source}: missing array(s) {', '.join(missing)}")
    extra = sorted(set(arrays) - set(PARAM_NAMES) - set(SCALING_NAMES))
    if extra:
        raise ModelFileError(f"{source}: unexpected array(s) {', '.join(extra)}")
    if (SCALING_NAMES[0] in arrays) != (SCALING_NAMES[1] in arrays):
        raise ModelFileError(f"{source}: x_mean and x_std go together; it holds only one of them")
    for n in PARAM_NAMES:
        if arrays[n].dtype != np.float32:
            raise ModelFileError(f"{source}: {n} has dtype {arrays[n].dtype}, expected float32")
    W1, b1, W2, b2 = (arrays[n] for n in PARAM_NAMES)
    if W1.ndim != 2 or W1.shape[0] < 1 or W1.shape[1] < 1:
        raise ModelFileError(f"{source}: W1 has shape {W1.shape}, expected (D, H)")
    H = W1.shape[1]
    C = W2.shape[1] if W2.ndim == 2 else 0
    if C < 2:
        raise ModelFileError(f"{source}: W2 has shape {W2.shape}, expected ({H}, C) with C >= 2 classes")
    expected = {"b1": (H,), "W2": (H, C), "b2": (C,)}
    for n, shape in expected.items():
        if arrays[n].shape != shape:
            raise ModelFileError(f"{source}: {n} has shape {arrays[n].shape}, expected {shape}")
    scaling = None
    if SCALING_NAMES[0] in arrays:
        for n in SCALING_NAMES:
            if arrays[n].dtype != np.float32 or arrays[n].shape != (W1.shape[0],):
                raise ModelFileError(f"{source}: {n} has dtype {arrays[n].dtype} and shape {arrays[n].shape}, "
                                     f"expected float32 ({W1.shape[0]},)")
        if not (arrays["x_std"] > 0).all():
            raise ModelFileError(f"{source}: x_std holds a value that is not positive")
        scaling = (arrays["x_mean"], arrays["x_std"])
    for n in (*PARAM_NAMES, *(SCALING_NAMES if scaling else ())):
        if not np.isfinite(arrays[n]).all():
            raise ModelFileError(f"{source}: {n} contains NaN or infinite values")
    return Params(W1, b1, W2, b2, scaling)


# Weights barely compress (float32 noise): an archive member that inflates more than this is not
# a model, e.g. a zip bomb. The largest model of the default grid (H = 1024) is 3.2 MB.
MAX_INFLATION = 64
MAX_MODEL_BYTES = 1 << 31


def check_npz_sizes(path: Path) -> None:
    """Refuse an .npz whose archive headers declare far more data than weights could need, before
    anything is decompressed (a zip bomb); a file that is no zip archive is left to np.load."""
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError):
        return
    total = sum(m.file_size for m in members)
    for m in members:
        if m.file_size > MAX_INFLATION * max(m.compress_size, 1) + (1 << 16):
            raise ModelFileError(f"{path}: refused: {m.filename} would inflate from "
                                 f"{m.compress_size} to {m.file_size} bytes, not model weights")
    if total > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: refused: its arrays would take {total} bytes")


def load_params(path: str | os.PathLike) -> Params:
    """Load an .npz written by save_params. Never unpickles: object arrays are refused, and so is
    an archive whose headers declare more data than weights could need."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a folder, not an .npz file")
    check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except ValueError as e:  # object arrays need pickle, which is refused
        raise ModelFileError(f"{path}: refused: holds pickled objects or is not an .npz ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise ModelFileError(f"{path}: not a readable .npz file ({e})") from None
    return params_from_arrays(arrays, str(path))

