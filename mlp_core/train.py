"""Minibatch SGD for the MLP: a validated config, a fused float32 training step and an epoch loop.

Leaves out where the data comes from and where metrics go: `train` yields one dict per epoch.
"""
from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from .model import N_IN, N_OUT, Params, evaluate, init_params

# Metric names, defined once; the search, the tables and the plots use these.
EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
TRAIN_ACCURACY = "train_accuracy"
VAL_LOSS = "val_loss"
VAL_ACCURACY = "val_accuracy"
TEST_LOSS = "test_loss"
TEST_ACCURACY = "test_accuracy"
TIME_S = "time_s"
VAL_IMAGES = "val_images"  # how many validation images val_loss and val_accuracy were measured on
DIVERGED = "diverged"
MID_EPOCH = "mid_epoch"  # the flag of a report from inside the first epoch (train(fractions=...))


# What each training value must be: (whole or real, the test, the requirement). The one place these
# are checked: TrainConfig on construction, and the sweep's settings (results/sweep/settings.py) for the
# flags that set these fields.
RULES = {
    "hidden_size": (int, lambda v: v >= 1, "must be a positive integer"),
    "learning_rate": (float, lambda v: v > 0, "must be positive"),
    "l2": (float, lambda v: v >= 0, "must be non-negative"),
    "epochs": (int, lambda v: v >= 1, "must be a positive integer"),
    "batch_size": (int, lambda v: v >= 1, "must be a positive integer"),
    "momentum": (float, lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "seed": (int, lambda v: v >= 0, "must be non-negative"),
    "n_inputs": (int, lambda v: v >= 1, "must be a positive integer"),
    "n_classes": (int, lambda v: v >= 2, "must be at least 2"),
}


def value_problem(name: str, value) -> str | None:
    """Why `value` cannot be the training value `name` (RULES), or None."""
    kind, ok, requirement = RULES[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if kind is int else numbers.Real):
        return requirement if kind is int else "must be a finite number"  # (a whole rule says so)
    if not math.isfinite(value):
        return "must be a finite number"
    return None if ok(value) else requirement


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run, checked once on construction."""

    hidden_size: int = 128
    learning_rate: float = 0.01
    l2: float = 0.001
    epochs: int = 10
    batch_size: int = 256
    momentum: float = 0.0
    seed: int = 0
    # The model's shape beside its hidden size: what the data brings (MNIST: 784 pixels, 10 digits)
    n_inputs: int = N_IN
    n_classes: int = N_OUT

    def __post_init__(self):
        for name in RULES:
            why = value_problem(name, getattr(self, name))
            if why:
                raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Holds parameters, optimiser state, the RNG and preallocated buffers for one run.

    The whole state needed to continue bit-identically (params, velocity, epochs done, RNG
    state) round-trips through `state_dict` / `from_state`, so a checkpoint resumes exactly."""

    def __init__(self, config: TrainConfig, params: Params | None = None,
                 rng: np.random.Generator | None = None):
        self.config = config
        self.rng = rng if rng is not None else np.random.default_rng(config.seed)
        self.params = params if params is not None else init_params(
            config.hidden_size, self.rng, n_inputs=config.n_inputs, n_classes=config.n_classes)
        self.velocity = (Params(*(np.zeros_like(a) for a in self.params.as_dict().values()))
                         if config.momentum > 0 else None)
        self.epochs_done = 0
        H, B = config.hidden_size, config.batch_size
        f32 = np.float32
        # Buffers reused by every step; views [:b] serve the last, shorter batch.
        D, C = config.n_inputs, config.n_classes
        self._X = np.empty((B, D), f32)
        self._Z1 = np.empty((B, H), f32)
        self._mask = np.empty((B, H), bool)
        self._logits = np.empty((B, C), f32)
        self._dA1 = np.empty((B, H), f32)
        self._dW1 = np.empty((D, H), f32)
        self._dW2 = np.empty((H, C), f32)
        self._rowmax = np.empty((B, 1), f32)
        self._rowsum = np.empty((B, 1), f32)
        self._ones = np.ones((C, 1), f32)
        self._rows = np.arange(B)
        # Set while an epoch is stopped at one of its fractions (epoch_parts yielded there): what
        # continuing it exactly needs. The RNG state from before the epoch's permutation (to draw
        # the same order again), the batches done, the running sums and the epoch's seconds so far.
        self.mid_epoch: dict | None = None

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays only (no pickle): params, velocity, epochs done and the RNG state as JSON."""
        state = dict(self.params.as_dict())
        if self.velocity is not None:
            state.update({"v_" + k: v for k, v in self.velocity.as_dict().items()})
        state["epochs_done"] = np.array(self.epochs_done, dtype=np.int64)
        state["rng_state"] = np.array(json.dumps(self.rng.bit_generator.state))
        if self.mid_epoch is not None:
            m = self.mid_epoch
            state["mid_epoch_rng_state"] = np.array(json.dumps(m["rng_state"]))
            state["mid_epoch_counts"] = np.array([m["batches"], m["correct"], m["seen"]], dtype=np.int64)
            state["mid_epoch_sums"] = np.array([m["loss_sum"], m["seconds"]], dtype=np.float64)
        return state

    @staticmethod
    def epoch_ended(state) -> int | None:
        """The epochs done when `state` (a state_dict, or an open .npz of one) was saved at an
        epoch's end; None for a state saved inside an epoch."""
        return None if "mid_epoch_counts" in state else int(state["epochs_done"])

    @classmethod
    def from_state(cls, config: TrainConfig, state: dict[str, np.ndarray]) -> Trainer:
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(str(state["rng_state"]))
        params = Params(*(np.array(state[k], dtype=np.float32) for k in ("W1", "b1", "W2", "b2")))
        trainer = cls(config, params=params, rng=rng)
        if trainer.velocity is not None and "v_W1" in state:
            trainer.velocity = Params(*(np.array(state["v_" + k], dtype=np.float32)
                                        for k in ("W1", "b1", "W2", "b2")))
        trainer.epochs_done = int(state["epochs_done"])
        if "mid_epoch_counts" in state:
            batches, correct, seen = (int(v) for v in state["mid_epoch_counts"])
            loss_sum, seconds = (float(v) for v in state["mid_epoch_sums"])
            trainer.mid_epoch = {"rng_state": json.loads(str(state["mid_epoch_rng_state"])),
                                 "batches": batches, "correct": correct, "seen": seen,
                                 "loss_sum": loss_sum, "seconds": seconds}
        return trainer

    # -- one step ----------------------------------------------------------------------------
    def step(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on a batch; returns (sum of cross-entropy over the batch, correct count)
        measured before the update. Same math as model.loss_and_grads, fused and in place."""
        p, cfg = self.params, self.config
        X = np.ascontiguousarray(X, dtype=np.float32)  # a no-op for run_epoch's batches
        b = len(y)
        Z1, mask, logits = self._Z1[:b], self._mask[:b], self._logits[:b]
        dA1, rowmax, rowsum = self._dA1[:b], self._rowmax[:b], self._rowsum[:b]
        rows = self._rows[:b]

        np.matmul(X, p.W1, out=Z1)
        Z1 += p.b1
        np.greater(Z1, 0, out=mask)
        np.maximum(Z1, 0, out=Z1)  # Z1 now holds A1
        np.matmul(Z1, p.W2, out=logits)
        logits += p.b2

        # The row maximum is read at the argmax the accuracy needs anyway: NumPy's max over a
        # class axis (10 wide for MNIST) costs several times argmax plus a gather. A NaN row gives NaN either way.
        top = logits.argmax(axis=1)
        correct = int(np.count_nonzero(top == y))
        rowmax[:, 0] = logits[rows, top]
        logits -= rowmax
        s_y = logits[rows, y]  # shifted logit of the true class (a copy)
        np.exp(logits, out=logits)
        np.matmul(logits, self._ones, out=rowsum)  # row sums; faster than np.sum over 10 columns
        # loss_i = log(sum_j exp(s_ij)) - s_iy: finite whatever the logits' scale
        loss_sum = float(np.sum(np.log(rowsum[:, 0]) - s_y, dtype=np.float64))
        # dlogits = (softmax - onehot) / b, written over logits. Without momentum it is scaled by
        # the learning rate here, on the small (b, 10) array, so every gradient below comes out
        # as its SGD step and no weight-sized array needs an extra pass.
        lr = np.float32(cfg.learning_rate)
        scale = np.float32(1.0 / b) * (lr if self.velocity is None else np.float32(1.0))
        logits *= (1.0 / rowsum) * scale
        logits[rows, y] -= scale

        np.matmul(Z1.T, logits, out=self._dW2)  # (H, 10)
        db2 = logits.sum(axis=0)
        np.matmul(logits, p.W2.T, out=dA1)  # (b, H)
        dA1 *= mask
        db1 = dA1.sum(axis=0)
        np.matmul(X.T, dA1, out=self._dW1)  # (D, H)
        self._apply((self._dW1, db1, self._dW2, db2))
        return loss_sum, correct

    def _apply(self, grads: tuple) -> None:
        """Update W1, b1, W2, b2 in place from their gradients (float32, overwritten). Plain SGD:
        the gradients are already their steps (scaled by the learning rate in `step`), and
        W <- W - lr * (dW + l2 * W) is computed as (1 - lr * l2) * W - lr * dW. With momentum:
        v <- mu * v - lr * (dW + l2 * W), W <- W + v. Biases are not decayed."""
        lr, l2 = np.float32(self.config.learning_rate), np.float32(self.config.l2)
        decay, mu = np.float32(1.0) - lr * l2, np.float32(self.config.momentum)
        p, v = self.params, self.velocity
        velocities = (v.W1, v.b1, v.W2, v.b2) if v is not None else (None,) * 4
        decayed = (True, False, True, False)  # weights, not biases
        for w, g, vel, weight in zip((p.W1, p.b1, p.W2, p.b2), grads, velocities, decayed, strict=True):
            if vel is None:
                if weight and l2 != 0:
                    w *= decay
                w -= g
            else:
                if weight and l2 != 0:
                    g += l2 * w
                vel *= mu
                g *= lr
                vel -= g
                w += vel

    def run_epoch(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """One pass in a fresh seeded order; returns the running (train loss, accuracy),
        each batch measured just before its update (as Keras reports it), so the epoch costs
        no extra pass over the training set."""
        *_, (_, loss, acc) = self.epoch_parts(X, y)  # the epoch's end, its last part
        return loss, acc

    def epoch_parts(self, X: np.ndarray, y: np.ndarray, fractions=()) -> Iterator[tuple[float, float, float]]:
        """One pass in a fresh seeded order, yielding (fraction, running train loss, running
        accuracy) after the batch that completes each of `fractions` (in (0, 1): the batch count
        rounded, at least one batch, never the last) and, last, (1.0, ...) at the epoch's end.
        The steps are those of an uninterrupted epoch, so the numbers are bit-identical either
        way. Abandoning the generator early leaves the epoch unfinished (`epochs_done` as it was).

        While it is stopped at a fraction, `mid_epoch` holds what continuing the epoch needs, and
        `state_dict` saves it: a Trainer restored from that state goes on from the next batch of
        the same order, bit-identically (fractions it already passed are not yielded again). Its
        "seconds" (0 here) is for the caller to keep the epoch's time so far in (`train` does)."""
        n, B = len(X), self.config.batch_size
        resume, self.mid_epoch = self.mid_epoch, None
        if resume is not None:
            self.rng.bit_generator.state = resume["rng_state"]
        start_state = self.rng.bit_generator.state
        order = self.rng.permutation(n)
        n_batches = -(-n // B)
        done = resume["batches"] if resume else 0
        stops = {}
        for f in sorted(fractions):
            k = max(1, round(f * n_batches))
            if done < k < n_batches:
                stops.setdefault(k, f)
        loss_sum, correct, seen = ((resume["loss_sum"], resume["correct"], resume["seen"])
                                   if resume else (0.0, 0, 0))
        for k, start in enumerate(range(done * B, n, B), start=done + 1):
            idx = order[start:start + B]
            Xb = self._X[:len(idx)]
            # mode="clip" (the indices are a permutation, so always in range): with the default
            # "raise" NumPy gathers into a temporary and copies it to `out`, twice the time.
            np.take(X, idx, axis=0, out=Xb, mode="clip")
            batch_loss, batch_correct = self.step(Xb, y[idx])
            loss_sum += batch_loss
            correct += batch_correct
            seen += len(idx)
            if k in stops:
                self.mid_epoch = {"rng_state": start_state, "batches": k, "correct": correct,
                                  "seen": seen, "loss_sum": loss_sum, "seconds": 0.0}
                yield stops[k], loss_sum / seen, correct / seen
                self.mid_epoch = None
        self.epochs_done += 1
        yield 1.0, loss_sum / n, correct / n


def train(config: TrainConfig, X_train: np.ndarray, y_train: np.ndarray,
          X_val: np.ndarray, y_val: np.ndarray, X_test: np.ndarray | None = None,
          y_test: np.ndarray | None = None, trainer: Trainer | None = None,
          fractions: tuple = (), scaled_partial_val: bool = False) -> Iterator[dict]:
    """Train for `config.epochs` (continuing `trainer` if given), yielding one metrics dict per
    epoch. Ends after an epoch whose loss or weights are not finite, with `diverged` True.
    The caller can read `trainer.params` between epochs (pass a Trainer to keep a handle).

    `fractions`: fractions of an epoch, in (0, 1), at which the *first* epoch also yields its
    metrics so far, marked MID_EPOCH True with `epoch` the fraction: the running train loss and
    accuracy of the batches so far and a full validation pass (early stopping can then judge a
    trial before its first epoch ends). Partial dicts never follow a finished epoch. A `trainer`
    saved at such a point (its `mid_epoch` state) continues that epoch where it stopped.
    With `scaled_partial_val`, the validation pass at fraction f covers only the first
    partial_val_images(len(X_val), f) validation images (a fixed subset, as random as the split:
    a validation pass then costs the same share of the training so far at every report);
    `val_images` in each dict says how many were used."""
    if len(X_train) == 0:
        raise ValueError("the training set is empty")
    if config.batch_size > len(X_train):
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({len(X_train)})")
    if any(not 0 < f < 1 for f in fractions):
        raise ValueError(f"fractions of an epoch must lie strictly between 0 and 1, got {fractions}")
    trainer = trainer or Trainer(config)
    while trainer.epochs_done < config.epochs:
        # an epoch continued from a mid-epoch state counts the seconds it had run before
        t0 = time.perf_counter() - (trainer.mid_epoch["seconds"] if trainer.mid_epoch else 0.0)
        first = fractions if trainer.epochs_done == 0 else ()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for fraction, train_loss, train_acc in trainer.epoch_parts(X_train, y_train, first):
                k = partial_val_images(len(X_val), fraction) if scaled_partial_val else len(X_val)
                metrics = _measure(trainer, train_loss, train_acc, X_val[:k], y_val[:k], X_test, y_test)
                metrics[VAL_IMAGES] = k
                if fraction < 1:
                    metrics.update({EPOCH: fraction, MID_EPOCH: True})
                metrics[TIME_S] = time.perf_counter() - t0
                if trainer.mid_epoch is not None:
                    trainer.mid_epoch["seconds"] = metrics[TIME_S]
                yield metrics
                if metrics[DIVERGED]:
                    return


def partial_val_images(n_val: int, fraction: float) -> int:
    """The validation images a scaled report at `fraction` of an epoch uses: that fraction of
    them, rounded up (all of them at the epoch's end)."""
    return min(n_val, max(1, math.ceil(round(fraction * n_val, 9))))


def _measure(trainer: Trainer, train_loss: float, train_acc: float, X_val, y_val, X_test, y_test) -> dict:
    """The metrics dict at the current point: the running train figures, validation (and test)
    on the current weights, and `diverged` when the loss or the weights are not finite."""
    diverged = not (math.isfinite(train_loss) and trainer.params.is_finite())
    metrics = {EPOCH: trainer.epochs_done, TRAIN_LOSS: train_loss, TRAIN_ACCURACY: train_acc}
    if diverged:
        metrics.update({VAL_LOSS: float("nan"), VAL_ACCURACY: float("nan")})
    else:
        metrics[VAL_LOSS], metrics[VAL_ACCURACY] = evaluate(trainer.params, X_val, y_val)
        if X_test is not None:
            metrics[TEST_LOSS], metrics[TEST_ACCURACY] = evaluate(trainer.params, X_test, y_test)
        diverged = not math.isfinite(metrics[VAL_LOSS])
    metrics[DIVERGED] = diverged
    return metrics
