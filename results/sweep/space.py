"""The search space as typed: the grid's comma-separated lists and the rungs parsed and checked,
and the grid's seeded order.

Leaves out the settings' declarations and defaults (settings.py) and which rungs early stopping
uses (halving.py).
"""
from __future__ import annotations

import math

import numpy as np


class SpaceError(ValueError):
    """A hyperparameter list is malformed; the message names the flag and the value."""


def _items(flag: str, text: str) -> list[str]:
    items = [s.strip() for s in str(text).split(",")]
    if not text or not str(text).strip() or any(not s for s in items):
        raise SpaceError(f"{flag}: empty list or empty item in {text!r}; give comma-separated values")
    return items


def _numbers(flag: str, text: str, kind, what: str) -> list:
    """Each comma-separated item as `kind` (int or float); SpaceError naming the flag and item
    that is not one."""
    out = []
    for s in _items(flag, text):
        try:
            out.append(kind(s))
        except ValueError:
            raise SpaceError(f"{flag}: {s!r} is not {what}") from None
    return out


def parse_int_list(flag: str, text: str) -> tuple[int, ...]:
    out = _numbers(flag, text, int, "a whole number")
    for v in out:
        if v < 1:
            raise SpaceError(f"{flag}: {v} must be a positive integer")
    return _unique(flag, out)


def parse_rungs(flag: str, text: str) -> tuple:
    """Rungs in epochs: whole epochs (1, 2, 4) and fractions of the first epoch (0.25), as ints
    and floats, increasing. Malformed input raises SpaceError naming `flag`."""
    out = _numbers(flag, text, float, "a number")
    rungs = tuple(int(v) if math.isfinite(v) and v == int(v) else v for v in out)
    problem = check_rungs(rungs)
    if problem:
        raise SpaceError(f"{flag}: {text}: {problem}")
    return rungs


def check_rungs(rungs) -> str | None:
    """Why `rungs` are unusable, or None: each a whole number of epochs or a fraction of the
    first epoch (strictly between 0 and 1), strictly increasing."""
    if not rungs:
        return "give at least one rung"
    for r in rungs:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            return f"{r!r} is not a positive number of epochs"
        if r >= 1 and r != int(r):
            return f"{r} is neither a whole number of epochs nor a fraction of the first (below 1)"
    if any(a >= b for a, b in zip(rungs, rungs[1:], strict=False)):
        return "rungs must be increasing"
    return None


def parse_float_list(flag: str, text: str, *, positive: bool) -> tuple[float, ...]:
    out = _numbers(flag, text, float, "a number")
    for s, v in zip(_items(flag, text), out, strict=True):  # messages quote the value as typed
        if not math.isfinite(v):
            raise SpaceError(f"{flag}: {s!r} must be finite")
        if positive and v <= 0:
            raise SpaceError(f"{flag}: {s} must be positive")
        if v < 0:
            raise SpaceError(f"{flag}: {s} must be non-negative")
    return _unique(flag, out)


def _unique(flag, values):
    if len(set(values)) != len(values):
        raise SpaceError(f"{flag}: repeated value in {','.join(map(str, values))}")
    return tuple(sorted(values))


def shuffled(configs: list[dict], seed: int) -> list[dict]:
    """The same configurations in a seeded random order.

    Asynchronous successive halving promotes a trial when it beats the trials that reached its
    rung *before* it. In natural order each new learning rate beats all earlier ones, so almost
    everything is promoted; a random order makes early arrivals a fair sample."""
    order = np.random.default_rng(seed).permutation(len(configs))
    return [configs[i] for i in order]
