"""Exercise 4 (step 4, an MLP with AdamW): write one AdamW update.

For a parameter ``p`` with gradient ``g`` at step ``t`` (counting from 1):

    p  = p * (1 - lr * weight_decay)          decoupled weight decay (the W of AdamW)
    m  = beta1 m + (1 - beta1) g              running mean of the gradient
    v  = beta2 v + (1 - beta2) g^2            running mean of its square
    m^ = m / (1 - beta1^t),  v^ = v / (1 - beta2^t)   (both start at 0: undo that bias)
    p  = p - lr m^ / (sqrt(v^) + eps)

Return the new ``(p, m, v)`` as NumPy arrays (do not change the arguments in place).

Check it: ``python -m tinygrad_lm exercises check 4`` (against ``tl.optim.AdamW``).
"""
from __future__ import annotations

import numpy as np


def adam_step(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float,
              beta1: float, beta2: float, eps: float,
              weight_decay: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One AdamW step: the new parameter and the two new running means."""
    raise NotImplementedError("exercise 4: write adam_step")
