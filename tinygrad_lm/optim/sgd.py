"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any, Iterable

from ..config import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's update: g = grad + wd p; b = mu b + (1 - dampening) g (b = g at the first
    step); g = g + mu b if nesterov else b; p -= lr g.

    >>> from tinygrad_lm import Tensor
    >>> p = Tensor([1.0, 2.0], requires_grad=True)
    >>> opt = SGD([p], lr=0.5); (p * p).sum().backward(); opt.step()
    >>> p.tolist()  # p - 0.5 * 2p
    [0.0, 0.0]
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    @no_grad()
    def step(self) -> None:
        """One SGD update of every parameter that has a gradient."""
        for group in self.param_groups:
            lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                cast = p.dtype.type
                g = p.grad.data
                if wd:
                    g = g + cast(wd) * p.data
                if mu:
                    state = self.state.setdefault(id(p), {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = Tensor._make(g.copy())
                    else:
                        buf.data *= cast(mu)
                        buf.data += cast(1 - damp) * g
                    g = g + cast(mu) * buf.data if nesterov else buf.data
                p.data -= cast(lr) * g
