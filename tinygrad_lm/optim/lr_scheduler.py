"""Learning-rate schedules: each ``step()`` sets every group's ``lr`` for the next step."""
from __future__ import annotations

import math
from typing import Any, Callable

from .optimizer import Optimizer


class LRScheduler:
    """Base: keeps the groups' initial lrs and a step counter; ``factor(step)`` or ``lr_at``
    gives the lr of a step."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def lr_at(self, base_lr: float, step: int) -> float:
        """The learning rate of ``step`` for a group whose initial lr is ``base_lr``."""
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_step)

    def step(self) -> None:
        """Advance one step and set every group's ``lr`` for it."""
        self.last_step += 1
        self._apply()

    def __repr__(self) -> str:
        settings = self.extra_repr()
        return (f"{type(self).__name__}({settings}{', ' if settings else ''}"
                f"last_step={self.last_step}, lr={self.get_last_lr()})")

    def extra_repr(self) -> str:
        """The schedule's own settings, for ``repr``."""
        return ""

    def get_last_lr(self) -> list[float]:
        """The current lr of every parameter group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The step counter and initial lrs, to resume the schedule."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved and set the lrs for that step."""
        self.last_step = int(state["last_step"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._apply()


class LambdaLR(LRScheduler):
    """lr = base_lr * fn(step)."""

    def __init__(self, optimizer: Optimizer, fn: Callable[[int], float]) -> None:
        self.fn = fn
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.fn(step)

    def extra_repr(self) -> str:
        return f"fn={getattr(self.fn, '__name__', self.fn)}"


class CosineWarmup(LRScheduler):
    """Linear warm-up from 0 to base_lr over ``warmup`` steps, cosine decay to ``min_lr`` at
    ``max_iters``, then constant ``min_lr`` (nanoGPT's schedule).

    >>> from tinygrad_lm import Tensor
    >>> from tinygrad_lm.optim import SGD
    >>> sched = CosineWarmup(SGD([Tensor([0.0], requires_grad=True)], lr=1.0), 1, 3, 0.0)
    >>> [round(sched.lr_at(1.0, s), 4) for s in range(5)]
    [0.5, 1.0, 0.5, 0.0, 0.0]
    >>> sched
    CosineWarmup(warmup=1, max_iters=3, min_lr=0.0, last_step=0, lr=[0.5])
    """

    def __init__(self, optimizer: Optimizer, warmup: int, max_iters: int, min_lr: float) -> None:
        if warmup < 0 or max_iters < 0:
            raise ValueError(f"CosineWarmup: warmup and max_iters must be >= 0, got {warmup}, "
                             f"{max_iters}")
        self.warmup, self.max_iters, self.min_lr = warmup, max_iters, min_lr
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        if step < self.warmup:
            return base_lr * (step + 1) / (self.warmup + 1)
        if step >= self.max_iters:
            return self.min_lr
        progress = (step - self.warmup) / max(1, self.max_iters - self.warmup)
        return self.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (base_lr - self.min_lr)

    def extra_repr(self) -> str:
        return f"warmup={self.warmup}, max_iters={self.max_iters}, min_lr={self.min_lr}"
