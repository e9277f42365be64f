"""Exercise 9 (step 9, sampling): write top-p filtering and the inverse-CDF draw.

``top_p_filter(probs, p)``: sort the tokens from likeliest down; keep each token while the
tokens ranked above it hold less than ``p`` of the mass (so the kept prefix is the shortest
whose mass reaches ``p``); set the others to 0 and divide by the kept mass. Return the
result in the original token order.

``draw(probs, u)`` for ``u`` in [0, 1): token i owns the interval [F(i-1), F(i)) of the
cumulative sums F, whose width is probs[i]; return the token whose interval holds
``u * F(last)`` (so that ``probs`` need not sum to exactly 1).

Check it: ``python -m tinygrad_lm exercises check 9`` (hand-made cases, then against the
library's ``sample_next``).
"""
from __future__ import annotations

import numpy as np


def top_p_filter(probs: np.ndarray, p: float) -> np.ndarray:
    """The nucleus of ``probs``, renormalised; zeros elsewhere."""
    raise NotImplementedError("exercise 9: write top_p_filter")


def draw(probs: np.ndarray, u: float) -> int:
    """The token whose cumulative interval holds ``u``."""
    raise NotImplementedError("exercise 9: write draw")
