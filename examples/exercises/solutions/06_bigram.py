"""Exercise 6 (step 6, a bigram model): count the bigram table and score it.

``bigram_probs(ids, V)`` returns the (V, V) matrix P[i, j] = P(next = j | current = i):
count every pair ``(ids[t], ids[t + 1])``, add one to every cell (add-one smoothing, so no
pair has probability 0), and divide each row by its sum.

``nll(probs, ids)`` returns the mean over the pairs of ``-log probs[ids[t], ids[t + 1]]``:
the cross-entropy in nats that training minimises.

Check it: ``python -m tinygrad_lm exercises check 6``.
"""
from __future__ import annotations

import numpy as np


def bigram_probs(ids: np.ndarray, V: int) -> np.ndarray:
    """Add-one smoothed P(next | current) from the pairs of ``ids``."""
    counts = np.ones((V, V))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, ids: np.ndarray) -> float:
    """The mean negative log-probability of each next id."""
    return float(-np.log(probs[ids[:-1], ids[1:]]).mean())
