"""Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay): one
implementation, PyTorch's update equations."""
from __future__ import annotations

from typing import Any, Iterable

from .. import kernels
from ..config import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    Adam adds ``weight_decay * p`` to g; AdamW instead multiplies p by (1 - lr wd) first.

    >>> from tinygrad_lm import Tensor
    >>> p = Tensor([1.0, -1.0], requires_grad=True)
    >>> opt = Adam([p], lr=0.1); p.sum().backward(); opt.step()
    >>> [round(v, 4) for v in p.tolist()]  # the first step moves each element by about lr
    [0.9, -1.1]
    """

    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"{type(self).__name__}: invalid eps {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    @no_grad()
    def step(self) -> None:
        """One Adam (or AdamW) update of every parameter that has a gradient: the kernel
        ``adam_step`` (tinygrad_lm/kernels) rewrites the parameter and its moments in place."""
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = (group["lr"], group["betas"], group["eps"],
                                           group["weight_decay"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(id(p))
                if state is None:
                    xp = p.device_obj.xp
                    state = self.state[id(p)] = {"step": 0,
                                                 "exp_avg": Tensor._make(xp.zeros_like(p.data)),
                                                 "exp_avg_sq": Tensor._make(xp.zeros_like(p.data))}
                state["step"] += 1
                kernels.for_array(p.data).adam_step(
                    p.data, p.grad.data, state["exp_avg"].data, state["exp_avg_sq"].data,
                    lr, beta1, beta2, eps, wd, self.decoupled, state["step"])


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), as in PyTorch."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
