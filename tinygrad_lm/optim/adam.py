"""Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay): one
implementation, PyTorch's update equations."""
from __future__ import annotations

import math
from typing import Any, Iterable

from .. import cuda_kernels, parallel
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
        self._flat: dict[tuple[int, ...], tuple[Any, Any, list[Any], list[Any]]] = {}

    @no_grad()
    def step(self) -> None:
        """One Adam (or AdamW) update of every parameter that has a gradient."""
        previous, self._flat = self._flat, {}  # keep only the layouts this step uses
        for group in self.param_groups:
            cohorts: dict[tuple[Any, ...], list[Tensor]] = {}
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
                cohorts.setdefault((state["step"], p.dtype, p.device), []).append(p)
            for (t, _, _), params in cohorts.items():
                if cuda_kernels.applies_to(params[0].device_obj.xp):
                    self._update_on_gpu(params, t, group)
                else:
                    self._update(params, t, group, previous)

    def _update(self, params: list[Tensor], t: int, group: dict[str, Any],
                previous: dict[tuple[int, ...], Any]) -> None:
        """Update ``params`` (same step count, dtype, on the cpu) with one pass over flat
        arrays: a handful of big array ops instead of a dozen small ones per parameter."""
        lr, (beta1, beta2), eps, wd = (group["lr"], group["betas"], group["eps"],
                                       group["weight_decay"])
        xp, cast = params[0].device_obj.xp, params[0].dtype.type
        m, v = self._flat_moments(params, previous)
        g = xp.concatenate([p.grad.data.reshape(-1) for p in params])  # a fresh array: scratch
        if wd and not self.decoupled:
            g += cast(wd) * xp.concatenate([p.data.reshape(-1) for p in params])
        step_size = cast(lr / (1 - beta1 ** t))
        rescale = cast(1 / math.sqrt(1 - beta2 ** t))

        def block(i: slice) -> None:  # m, v updated in place; g[i] becomes the update
            gi, mi, vi = g[i], m[i], v[i]
            mi *= cast(beta1)
            mi += gi * cast(1 - beta1)
            vi *= cast(beta2)
            gi *= gi
            gi *= cast(1 - beta2)
            vi += gi
            xp.sqrt(vi, out=gi)  # update = step_size * m / (sqrt(v) * rescale + eps)
            gi *= rescale
            gi += cast(eps)
            xp.divide(mi, gi, out=gi)
            gi *= step_size

        parallel.for_blocks(g.size, parallel.rows_per_block(1, g.size), block)
        start = 0
        for p in params:
            if wd and self.decoupled:
                p.data *= cast(1 - lr * wd)
            p.data -= g[start:start + p.data.size].reshape(p.data.shape)
            start += p.data.size

    def _update_on_gpu(self, params: list[Tensor], t: int, group: dict[str, Any]) -> None:
        """The same update on a GPU: one fused kernel per parameter reads its gradient and
        rewrites the parameter and both moments in place (cuda_kernels.ADAM_STEP)."""
        lr, (beta1, beta2), eps, wd = (group["lr"], group["betas"], group["eps"],
                                       group["weight_decay"])
        l2, decay = (0.0, 1 - lr * wd) if self.decoupled else (wd, 1.0)
        step_size, rescale = lr / (1 - beta1 ** t), 1 / math.sqrt(1 - beta2 ** t)
        for p in params:
            state = self.state[id(p)]
            grad = p.grad.data.astype(p.data.dtype, copy=False)
            cuda_kernels.run(cuda_kernels.ADAM_STEP, grad, l2, decay, beta1, 1 - beta1,
                             beta2, 1 - beta2, step_size, rescale, eps,
                             p.data, state["exp_avg"].data, state["exp_avg_sq"].data)

    def _flat_moments(self, params: list[Tensor],
                      previous: dict[tuple[int, ...], Any]) -> tuple[Any, Any]:
        """The moments of ``params`` laid end to end in two flat arrays (from ``previous``
        step's layouts when they still hold). The per-parameter state (what ``state_dict``
        saves) holds views into them; when a view has been replaced (``load_state_dict``, a
        new parameter list) the arrays are gathered anew."""
        key = tuple(id(p) for p in params)
        flat = previous.get(key)
        states = [self.state[id(p)] for p in params]
        if flat is None or any(s["exp_avg"].data is not mv or s["exp_avg_sq"].data is not vv
                               for s, mv, vv in zip(states, flat[2], flat[3])):
            xp = params[0].device_obj.xp
            m = xp.concatenate([s["exp_avg"].data.reshape(-1) for s in states])
            v = xp.concatenate([s["exp_avg_sq"].data.reshape(-1) for s in states])
            m_views, v_views, start = [], [], 0
            for p, s in zip(params, states):
                stop = start + p.data.size
                m_views.append(m[start:stop].reshape(p.data.shape))
                v_views.append(v[start:stop].reshape(p.data.shape))
                s["exp_avg"], s["exp_avg_sq"] = Tensor._make(m_views[-1]), Tensor._make(v_views[-1])
                start = stop
            flat = (m, v, m_views, v_views)
        self._flat[key] = flat
        return flat[0], flat[1]


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), as in PyTorch."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
