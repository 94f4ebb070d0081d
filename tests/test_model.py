"""mlp_core.model: gradients against finite differences, a hand-worked example, dtypes, files."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from mlp_core.model import (
    ModelFileError,
    Params,
    cross_entropy,
    evaluate,
    forward,
    init_params,
    l2_penalty,
    load_params,
    loss_and_grads,
    save_params,
)


def _random_problem(H=7, B=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = init_params(H, rng).astype(dtype)
    p.b1 = rng.normal(size=H).astype(dtype) * 0.1
    p.b2 = rng.normal(size=10).astype(dtype) * 0.1
    X = rng.random((B, 784)).astype(dtype)
    y = rng.integers(0, 10, size=B)
    return p, X, y


def test_gradient_matches_central_finite_differences_float64():
    p, X, y = _random_problem()
    l2 = 0.05
    _, grads = loss_and_grads(p, X, y, l2)
    rng = np.random.default_rng(1)
    eps = 1e-6
    for name in ("W1", "b1", "W2", "b2"):
        arr = getattr(p, name)
        g = getattr(grads, name)
        # every entry of the small arrays, a random sample of W1's
        flat_idx = range(arr.size) if arr.size <= 100 else rng.choice(arr.size, 60, replace=False)
        for i in flat_idx:
            idx = np.unravel_index(i, arr.shape)
            old = arr[idx]
            arr[idx] = old + eps
            up, _ = loss_and_grads(p, X, y, l2)
            arr[idx] = old - eps
            down, _ = loss_and_grads(p, X, y, l2)
            arr[idx] = old
            numeric = (up - down) / (2 * eps)
            assert numeric == pytest.approx(g[idx], rel=1e-5, abs=1e-8), (name, idx)


def test_hand_worked_example():
    # H = 2. Input pixel 0 = 2, pixel 1 = 1. Unit 0 sees +pixel0, unit 1 sees -pixel1 + 0.5.
    W1 = np.zeros((784, 2))
    W1[0, 0], W1[1, 1] = 1.0, -1.0
    b1 = np.array([0.0, 0.5])
    W2 = np.zeros((2, 10))
    W2[0, 3] = math.log(3) / 2  # hidden unit 0 (=2) votes for class 3
    p = Params(W1, b1, W2, np.zeros(10))
    X = np.zeros((1, 784))
    X[0, 0], X[0, 1] = 2.0, 1.0
    # Z1 = [2, -0.5] -> A1 = [2, 0]; logits: class 3 = ln 3, others 0
    # softmax: class 3 = 3 / (9 + 3) = 1/4, others 1/12; CE for y = 3 is ln 4
    logits = forward(p, X)
    np.testing.assert_allclose(logits[0], [0, 0, 0, math.log(3), 0, 0, 0, 0, 0, 0], atol=1e-15)
    assert cross_entropy(logits, np.array([3])) == pytest.approx(math.log(4))
    l2 = 0.1
    penalty = 0.05 * (1 + 1 + (math.log(3) / 2) ** 2)
    assert l2_penalty(p, l2) == pytest.approx(penalty)
    loss, g = loss_and_grads(p, X, np.array([3]), l2)
    assert loss == pytest.approx(math.log(4) + penalty)
    dlogits = np.full(10, 1 / 12)
    dlogits[3] = 0.25 - 1
    np.testing.assert_allclose(g.b2, dlogits)
    np.testing.assert_allclose(g.W2[0], 2 * dlogits + l2 * W2[0])
    np.testing.assert_allclose(g.W2[1], 0)  # unit 1 is off
    # dA1[0] = dlogits . W2[0] = -0.75 * ln3/2; it flows to W1[:, 0] through pixels 0 and 1
    dA = -0.75 * math.log(3) / 2
    assert g.b1[0] == pytest.approx(dA)
    assert g.b1[1] == 0.0
    assert g.W1[0, 0] == pytest.approx(2 * dA + l2 * 1.0)
    assert g.W1[1, 0] == pytest.approx(1 * dA)
    assert g.W1[1, 1] == pytest.approx(l2 * -1.0)  # only the penalty: unit 1 is off


def test_float32_stays_float32():
    p, X, y = _random_problem(dtype=np.float32)
    assert all(a.dtype == np.float32 for a in p.as_dict().values())
    assert forward(p, X).dtype == np.float32
    _, g = loss_and_grads(p, X, y, 0.01)
    assert all(a.dtype == np.float32 for a in g.as_dict().values())


def test_he_init_and_zero_biases():
    p = init_params(512, np.random.default_rng(0))
    assert p.W1.shape == (784, 512) and p.W2.shape == (512, 10)
    assert p.W1.std() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert p.W2.std() == pytest.approx(math.sqrt(2 / 512), rel=0.1)
    assert not p.b1.any() and not p.b2.any()


def test_extreme_logits_give_finite_loss():
    logits = np.array([[1e4, -1e4, 0, 0, 0, 0, 0, 0, 0, 0],
                       [-3e38, 3e38, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.float32)
    loss = cross_entropy(logits, np.array([1, 1]))
    assert math.isfinite(loss)
    assert loss == pytest.approx(1e4, rel=1e-6)  # row 0 is 2e4 off, row 1 exactly right


def test_evaluate_matches_direct_computation():
    p, X, y = _random_problem(B=50, dtype=np.float32)
    loss, acc = evaluate(p, X, y, chunk=7)
    logits = forward(p, X)
    assert loss == pytest.approx(cross_entropy(logits, y), rel=1e-5)
    assert acc == np.mean(logits.argmax(1) == y)


# --- files ------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    p = init_params(16, np.random.default_rng(3))
    save_params(tmp_path / "m.npz", p)
    q = load_params(tmp_path / "m.npz")
    for n in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(getattr(p, n), getattr(q, n))
        assert getattr(q, n).dtype == np.float32
    assert not list(tmp_path.glob("*.part"))


def _arrays(H=4):
    p = init_params(H, np.random.default_rng(0))
    return p.as_dict()


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.pop("b2"), "missing array(s) b2"),
    (lambda a: a.update(W1=a["W1"][0]), "W1 has shape (4,), expected (D, H)"),
    (lambda a: a.update(W1=a["W1"][:, :3]), "b1 has shape (4,), expected (3,)"),
    (lambda a: a.update(W2=a["W2"][:, :1], b2=a["b2"][:1]), "expected (4, C) with C >= 2 classes"),
    (lambda a: a.update(W2=np.zeros((5, 10), np.float32)), "W2 has shape (5, 10), expected (4, 10)"),
    (lambda a: a.update(b1=a["b1"].astype(np.float64)), "b1 has dtype float64"),
    (lambda a: a["W2"].__setitem__((0, 0), np.nan), "W2 contains NaN"),
    (lambda a: a.update(extra=np.zeros(1, np.float32)), "unexpected array(s) extra"),
])
def test_load_rejects_malformed_models(tmp_path, mutate, message):
    arrays = _arrays()
    mutate(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError) as e:
        load_params(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    obj_npz = tmp_path / "objects.npz"
    np.savez(obj_npz, W1=np.array([Evil()], dtype=object), b1=np.zeros(1), W2=np.zeros(1), b2=np.zeros(1))
    raw_pickle = tmp_path / "model.pkl"
    raw_pickle.write_bytes(pickle.dumps({"W1": Evil()}))
    for path in (obj_npz, raw_pickle):
        with pytest.raises(ModelFileError, match="refused|not a readable"):
            load_params(path)
    assert not marker.exists()


def test_load_missing_and_garbage(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        load_params(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip")
    with pytest.raises(ModelFileError, match="junk.npz"):
        load_params(tmp_path / "junk.npz")
