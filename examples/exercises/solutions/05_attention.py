"""Exercise 5 (step 5, attention): write causal self-attention in NumPy.

For ``q, k, v`` of shape (..., T, d) (any leading batch or head axes):

    out = softmax(q k^T / sqrt(d) + M) v,   M[t, s] = 0 if s <= t else -inf

with the softmax over the last axis. Subtract each row's maximum before ``np.exp`` (the
masked entries are -inf, and exp(-inf) is 0, as wanted).

Check it: ``python -m tinygrad_lm exercises check 5`` (against
``F.scaled_dot_product_attention(q, k, v, is_causal=True)``).
"""
from __future__ import annotations

import numpy as np


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each position's weighted average of the values of itself and the positions before."""
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)  # (..., T, T)
    scores = np.where(np.triu(np.ones((T, T), dtype=bool), k=1), -np.inf, scores)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True) @ v
