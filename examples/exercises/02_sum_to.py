"""Exercise 2 (step 2, an array engine): write ``sum_to``.

When an input of shape ``shape`` was broadcast to a larger shape in the forward pass, the
gradient that comes back has the larger shape: one entry per copy. Each copy's gradient
adds to the original, so ``sum_to`` sums over

1. the leading axes that broadcasting added (``grad.ndim - len(shape)`` of them), then
2. the axes where ``shape`` has a 1 and ``grad`` does not, keeping them as length 1.

Example: ``sum_to(g, (3, 1))`` for ``g`` of shape (2, 3, 4) sums axis 0, then axis 2 of
what is left, and returns shape (3, 1). Use NumPy only.

Check it: ``python -m tinygrad_lm exercises check 2``.
"""
from __future__ import annotations

import numpy as np


def sum_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``grad`` summed over the broadcast axes, back to ``shape``."""
    raise NotImplementedError("exercise 2: write sum_to")
