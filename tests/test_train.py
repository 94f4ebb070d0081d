"""mlp_core.train: the fused step equals the reference math, determinism, resume, divergence,
validation of the config, and accuracy on real digits."""
from __future__ import annotations

import numpy as np
import pytest

from mlp_core.model import Params, evaluate, loss_and_grads
from mlp_core.train import MID_EPOCH, TrainConfig, Trainer, train


def strip(ms: list[dict]) -> list[dict]:
    """Metrics dicts without their timing, which differs run to run."""
    return [{k: v for k, v in m.items() if k != "time_s"} for m in ms]


def test_fused_step_matches_reference_gradients():
    rng = np.random.default_rng(0)
    cfg = TrainConfig(hidden_size=32, learning_rate=0.05, l2=0.01, batch_size=16)
    trainer = Trainer(cfg)
    before = trainer.params.copy()
    X = rng.random((16, 784), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    loss_sum, correct = trainer.step(X, y)
    ref = before.astype(np.float64)
    loss, g = loss_and_grads(ref, X.astype(np.float64), y, cfg.l2)
    data_loss = loss - 0.5 * cfg.l2 * ((ref.W1 ** 2).sum() + (ref.W2 ** 2).sum())
    assert loss_sum / 16 == pytest.approx(data_loss, rel=1e-5)
    for n in ("W1", "b1", "W2", "b2"):
        expected = getattr(ref, n) - cfg.learning_rate * getattr(g, n)
        np.testing.assert_allclose(getattr(trainer.params, n), expected, rtol=1e-4, atol=1e-6)
        assert getattr(trainer.params, n).dtype == np.float32


def test_momentum_step_matches_reference():
    rng = np.random.default_rng(1)
    cfg = TrainConfig(hidden_size=8, learning_rate=0.1, l2=0.0, batch_size=4, momentum=0.9)
    trainer = Trainer(cfg)
    w = trainer.params.copy().astype(np.float64)
    v = Params(*(np.zeros_like(a) for a in w.as_dict().values()))
    for _ in range(3):
        X = rng.random((4, 784), dtype=np.float32)
        y = rng.integers(0, 10, 4)
        _, g = loss_and_grads(w, X.astype(np.float64), y, 0.0)
        for n in ("W1", "b1", "W2", "b2"):
            setattr(v, n, 0.9 * getattr(v, n) - 0.1 * getattr(g, n))
            setattr(w, n, getattr(w, n) + getattr(v, n))
        trainer.step(X, y)
    for n in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(getattr(trainer.params, n), getattr(w, n), rtol=1e-4, atol=1e-6)


def _run(cfg, ds, trainer=None):
    return list(train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=trainer))


def test_same_seed_same_numbers_and_resume_is_exact(small_dataset):
    cfg = TrainConfig(hidden_size=32, learning_rate=0.05, l2=0.001, epochs=3, batch_size=100, seed=7)
    a, b = Trainer(cfg), Trainer(cfg)
    ma, mb = _run(cfg, small_dataset, a), _run(cfg, small_dataset, b)
    assert strip(ma) == strip(mb)
    np.testing.assert_array_equal(a.params.W1, b.params.W1)
    # stop after 2 epochs, round-trip the state through arrays, finish: bit-identical
    two = TrainConfig(**{**cfg.to_dict(), "epochs": 2})
    c = Trainer(two)
    _run(two, small_dataset, c)
    state = {k: np.array(v) for k, v in c.state_dict().items()}
    d = Trainer.from_state(cfg, state)
    last = _run(cfg, small_dataset, d)
    assert [m["epoch"] for m in last] == [3]
    assert strip(last) == strip(ma[2:])
    np.testing.assert_array_equal(d.params.W1, a.params.W1)
    # another seed, other numbers
    e = Trainer(TrainConfig(**{**cfg.to_dict(), "seed": 8}))
    _run(cfg, small_dataset, e)
    assert not np.array_equal(e.params.W1, a.params.W1)


def test_metrics_and_dtypes(small_dataset):
    cfg = TrainConfig(hidden_size=16, learning_rate=0.05, epochs=2)
    trainer = Trainer(cfg)
    ms = list(train(cfg, small_dataset.X_train, small_dataset.y_train, small_dataset.X_val,
                    small_dataset.y_val, small_dataset.X_test, small_dataset.y_test, trainer=trainer))
    assert [m["epoch"] for m in ms] == [1, 2]
    assert set(ms[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                          "test_loss", "test_accuracy", "time_s", "diverged", "val_images"}
    assert ms[0]["val_images"] == len(small_dataset.X_val)
    assert all(a.dtype == np.float32 for a in trainer.params.as_dict().values())
    assert small_dataset.X_train.dtype == np.float32


def test_divergence_is_detected_and_stops(small_dataset):
    cfg = TrainConfig(hidden_size=16, learning_rate=1e6, epochs=5)
    ms = _run(cfg, small_dataset)
    assert ms[-1]["diverged"] is True
    assert len(ms) < 5
    assert all(not m["diverged"] for m in ms[:-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_size": 0}, "hidden_size must be a positive integer"),
    ({"hidden_size": 2.5}, "hidden_size must be a positive integer"),
    ({"learning_rate": 0.0}, "learning_rate must be positive"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"l2": -0.1}, "l2 must be non-negative"),
    ({"l2": float("inf")}, "l2 must be a finite number"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": -1}, "batch_size must be a positive integer"),
    ({"momentum": 1.0}, "momentum must be in [0, 1)"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        TrainConfig(**kwargs)


def test_batch_larger_than_training_set_is_refused(small_dataset):
    cfg = TrainConfig(batch_size=100_000)
    with pytest.raises(ValueError, match="larger than the training set"):
        _run(cfg, small_dataset)


def test_reaches_93_percent_on_real_digits(small_dataset):
    """8,000 real MNIST digits (6,400 trained on), judged on 2,000 others."""
    cfg = TrainConfig(hidden_size=256, learning_rate=0.1, momentum=0.9, l2=0.001, epochs=5)
    ms = list(train(cfg, small_dataset.X_train, small_dataset.y_train, small_dataset.X_val,
                    small_dataset.y_val, small_dataset.X_test, small_dataset.y_test))
    assert len(small_dataset.X_test) == 2000
    assert ms[-1]["test_accuracy"] >= 0.93


def test_partial_reports_inside_the_first_epoch_change_nothing(small_dataset):
    ds = small_dataset
    cfg = TrainConfig(hidden_size=32, learning_rate=0.05, l2=0.001, epochs=2, batch_size=100, seed=3)
    plain, parted = Trainer(cfg), Trainer(cfg)
    ma = _run(cfg, ds, plain)
    mb, seen_at = [], []
    for m in train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=parted, fractions=(0.5, 0.25)):
        mb.append(m)
        seen_at.append(parted.epochs_done)
        if m.get(MID_EPOCH):  # validation is of the weights at that point
            assert (m["val_loss"], m["val_accuracy"]) == evaluate(parted.params, ds.X_val, ds.y_val)
    assert [m["epoch"] for m in mb] == [0.25, 0.5, 1, 2]
    assert [m.get(MID_EPOCH, False) for m in mb] == [True, True, False, False]
    assert seen_at == [0, 0, 1, 2]  # a partial report is not a finished epoch
    assert strip(mb[2:]) == strip(ma)  # the epochs are bit-identical with or without
    np.testing.assert_array_equal(parted.params.W1, plain.params.W1)
    # 6,400 images in 64 batches of 100: a quarter is 16 batches. Recomputed step by step.
    manual = Trainer(cfg)
    order = manual.rng.permutation(len(ds.X_train))
    loss = correct = 0
    for k in range(16):
        idx = order[100 * k:100 * (k + 1)]
        batch_loss, batch_correct = manual.step(ds.X_train[idx], ds.y_train[idx])
        loss, correct = loss + batch_loss, correct + batch_correct
    assert mb[0]["train_loss"] == pytest.approx(loss / 1600, rel=1e-12)
    assert mb[0]["train_accuracy"] == correct / 1600


def test_partial_points_beyond_the_last_batch_are_skipped(small_dataset):
    ds = small_dataset
    cfg = TrainConfig(hidden_size=8, epochs=1, batch_size=3200)  # two batches
    ms = list(train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, fractions=(0.1, 0.9)))
    assert [m["epoch"] for m in ms] == [0.1, 1]  # 0.1 rounds up to one batch, 0.9 to both


@pytest.mark.parametrize("bad", [(0.0,), (1.0,), (1.5,), (-0.25,), (0.25, 2)])
def test_partial_fractions_must_lie_inside_an_epoch(small_dataset, bad):
    ds = small_dataset
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        next(train(TrainConfig(hidden_size=8), ds.X_train, ds.y_train, ds.X_val, ds.y_val, fractions=bad))


def test_divergence_inside_the_first_epoch_ends_the_run(small_dataset):
    ds = small_dataset
    cfg = TrainConfig(hidden_size=16, learning_rate=1e6, epochs=5)
    ms = list(train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, fractions=(0.5,)))
    assert len(ms) == 1 and ms[0][MID_EPOCH] and ms[0]["diverged"] and ms[0]["epoch"] == 0.5


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_trainer_saved_inside_its_first_epoch_continues_it_bit_identically(small_dataset, momentum):
    """Saved at a report inside the first epoch (where the halving scheduler pauses a trial),
    round-tripped through arrays as a checkpoint does, and continued in a new Trainer: the same
    minibatch order, the same later reports and the same weights as a run never stopped."""
    cfg = TrainConfig(hidden_size=32, learning_rate=0.05, l2=0.001, epochs=2, batch_size=100,
                      seed=3, momentum=momentum)
    ds = small_dataset
    whole = Trainer(cfg)
    expected = list(train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=whole,
                          fractions=(0.25, 0.5)))
    assert [m["epoch"] for m in expected] == [0.25, 0.5, 1, 2]

    first = Trainer(cfg)
    run = train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=first, fractions=(0.25, 0.5))
    stopped_at = next(run)  # the report at 0.25; the run is abandoned there, as a pause does
    state = {k: np.array(v) for k, v in first.state_dict().items()}
    run.close()
    assert strip([stopped_at]) == strip(expected[:1])
    assert state["mid_epoch_counts"].tolist()[0] == round(0.25 * 64)  # 16 of 64 batches done

    again = Trainer.from_state(cfg, state)
    rest = list(train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=again, fractions=(0.25, 0.5)))
    assert strip(rest) == strip(expected[1:])  # 0.25 is not reported twice
    for n in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(getattr(again.params, n), getattr(whole.params, n))
    assert again.rng.bit_generator.state == whole.rng.bit_generator.state
    assert rest[0]["time_s"] >= stopped_at["time_s"]  # the epoch's seconds carry on
    # a state saved between epochs holds no mid-epoch part
    assert not any(k.startswith("mid_epoch") for k in whole.state_dict())


def test_scaled_partial_validation_uses_that_share_of_the_validation_set(small_dataset):
    """At 0.25 of the first epoch a scaled report validates on the first quarter of the
    validation images (1,600 here: 400), exactly as a full pass over those 400 would; the
    epochs' reports use all of them; the training is the same either way."""
    from mlp_core.model import evaluate
    from mlp_core.train import partial_val_images

    cfg = TrainConfig(hidden_size=16, learning_rate=0.05, epochs=1, seed=2)
    ds = small_dataset
    scaled, full = Trainer(cfg), Trainer(cfg)
    run = train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=scaled, fractions=(0.25,),
                scaled_partial_val=True)
    first = next(run)
    assert (first["val_loss"], first["val_accuracy"]) == evaluate(scaled.params, ds.X_val[:400], ds.y_val[:400])
    a = [first, *run]
    b = list(train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=full, fractions=(0.25,)))
    assert [m["val_images"] for m in a] == [400, 1600] and [m["val_images"] for m in b] == [1600, 1600]
    assert a[1]["val_accuracy"] == b[1]["val_accuracy"] and a[0]["train_loss"] == b[0]["train_loss"]
    np.testing.assert_array_equal(scaled.params.W1, full.params.W1)
    assert partial_val_images(12000, 0.25) == 3000 and partial_val_images(10, 0.3) == 3
    assert partial_val_images(5, 0.01) == 1 and partial_val_images(7, 1.0) == 7


def test_step_accepts_a_non_contiguous_batch():
    rng = np.random.default_rng(4)
    cfg = TrainConfig(hidden_size=16, learning_rate=0.05, l2=0.01, batch_size=8)
    a, b = Trainer(cfg), Trainer(cfg)
    X = rng.random((8, 784), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    a.step(X, y)
    b.step(np.asfortranarray(X), y)
    np.testing.assert_array_equal(a.params.W1, b.params.W1)
