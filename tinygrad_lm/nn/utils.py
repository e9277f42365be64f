"""Training utilities that act on a model's gradients."""
from __future__ import annotations

import math
from typing import Iterable

from .. import kernels
from ..config import no_grad
from ..tensor import Tensor


@no_grad()
def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float) -> Tensor:
    """Scale all gradients so their global 2-norm is at most ``max_norm``; returns the norm
    before clipping (as a 0-d tensor, like PyTorch).

    >>> from tinygrad_lm import Tensor
    >>> p = Tensor([0.0, 0.0], requires_grad=True); p.grad = Tensor([3.0, 4.0])
    >>> clip_grad_norm_([p], 1.0).item(), [round(v, 4) for v in p.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    # each gradient's sum of squares stays on its device; the total is read back once
    total = math.sqrt(float(sum(kernels.for_array(g.data).sum_of_squares(g.data)
                                for g in grads)))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in params:
            if p.grad is not None:  # a new array: gradient arrays may be shared
                p.grad = Tensor._make(p.grad.data * p.grad.dtype.type(coef))
    return Tensor(total, dtype=grads[0].dtype, device=grads[0].device)
