"""Exercise 8 (step 8, training the GPT): write the learning-rate schedule.

``lr_at(step, lr, warmup, max_iters, min_lr)`` for steps counted from 0:

- warm-up, ``step < warmup``: rise linearly, ``lr * (step + 1) / (warmup + 1)``;
- past the end, ``step >= max_iters``: ``min_lr``;
- in between, half a cosine from ``lr`` down to ``min_lr``: with
  ``progress = (step - warmup) / (max_iters - warmup)``,
  ``min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2``.

Check it: ``python -m tinygrad_lm exercises check 8`` (against ``CosineWarmup``).
"""
from __future__ import annotations

import math


def lr_at(step: int, lr: float, warmup: int, max_iters: int, min_lr: float) -> float:
    """The learning rate that step ``step`` uses."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= max_iters:
        return min_lr
    progress = (step - warmup) / (max_iters - warmup)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
