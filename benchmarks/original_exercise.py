"""The original exercise's approach, written faithfully as a peer for bench_peers.py: a float64
NumPy MLP, plain minibatch SGD (batch 256, 10 epochs), every combination trained one after
another in one process (NumPy's BLAS uses every core), then the best retrained.

Leaves out everything the tool adds (float32, parallel trials, early stopping, checkpoints).
The math is the tool's (He init, softmax cross-entropy from logits, L2 on weights as
(l2 / 2) * ||W||^2), in float64, so a difference in results is the method's, not the model's.
"""
from __future__ import annotations

import time

import numpy as np


class Float64MLP:
    def __init__(self, hidden: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.W1 = self.rng.standard_normal((784, hidden)) * np.sqrt(2.0 / 784)
        self.b1 = np.zeros(hidden)
        self.W2 = self.rng.standard_normal((hidden, 10)) * np.sqrt(2.0 / hidden)
        self.b2 = np.zeros(10)

    def logits(self, X):
        return np.maximum(X @ self.W1 + self.b1, 0) @ self.W2 + self.b2

    def accuracy(self, X, y):
        return float(np.mean(self.logits(X).argmax(1) == y))

    def step(self, X, y, lr, l2):
        Z1 = X @ self.W1 + self.b1
        A1 = np.maximum(Z1, 0)
        s = A1 @ self.W2 + self.b2
        s -= s.max(1, keepdims=True)
        P = np.exp(s)
        P /= P.sum(1, keepdims=True)
        P[np.arange(len(y)), y] -= 1
        P /= len(y)
        dW2 = A1.T @ P + l2 * self.W2
        db2 = P.sum(0)
        dZ1 = (P @ self.W2.T) * (Z1 > 0)
        dW1 = X.T @ dZ1 + l2 * self.W1
        db1 = dZ1.sum(0)
        self.W1 -= lr * dW1
        self.b1 -= lr * db1
        self.W2 -= lr * dW2
        self.b2 -= lr * db2

    def fit(self, X, y, lr, l2, epochs=10, batch=256, X_val=None, y_val=None):
        """Train; returns the validation accuracy after each epoch."""
        history = []
        for _ in range(epochs):
            order = self.rng.permutation(len(X))
            for s in range(0, len(X), batch):
                idx = order[s:s + batch]
                self.step(X[idx], y[idx], lr, l2)
            if X_val is not None:
                history.append(self.accuracy(X_val, y_val))
        return history


def search(configs, X, y, X_val, y_val, seed=0, epochs=10):
    """Every configuration one after another; returns rows (config, val accuracy, seconds)."""
    rows = []
    for c in configs:
        t0 = time.perf_counter()
        model = Float64MLP(c["hidden_size"], seed)
        accs = model.fit(X, y, c["learning_rate"], c["l2"], epochs, X_val=X_val, y_val=y_val)
        rows.append({**c, "val_accuracy": max(accs), "seconds": time.perf_counter() - t0})
    return rows
