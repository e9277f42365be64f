"""Exercise 7 (step 7, a Transformer block): write LayerNorm's backward by hand.

Forward, over the last axis of size C: ``mu = mean(x)``, ``var = mean((x - mu)^2)``,
``rstd = 1 / sqrt(var + eps)``, ``xhat = (x - mu) rstd``, ``y = xhat * weight + bias``.

Backward, given ``dout`` = d loss / d y of the same shape as x:

    dbias   = dout summed over every axis but the last
    dweight = (dout * xhat) summed the same way
    dxhat   = dout * weight
    dx      = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

(the two means over the last axis: the gradient through mu, and through var). Derive the
last line yourself if you can: xhat's rows always have mean 0 and variance 1, and the two
subtracted terms remove exactly the parts of dxhat that would change those.

Check it: ``python -m tinygrad_lm exercises check 7`` (against tinygrad_lm's layer_norm).
"""
from __future__ import annotations

import numpy as np


def layer_norm_backward(dout: np.ndarray, x: np.ndarray, weight: np.ndarray,
                        eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dweight, dbias)`` of LayerNorm over the last axis."""
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    axes = tuple(range(x.ndim - 1))
    dxhat = dout * weight
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
