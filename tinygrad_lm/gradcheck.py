"""Numerical gradient checks: compare backward with central differences in float64.

The check projects the output on a fixed random direction ``v`` so one backward gives the
analytic vector-Jacobian product ``v^T J``; each of its elements is then compared with the
central difference ``v . (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``. A mismatch names
the input, the element, both values and their difference.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .autograd import grad
from .tensor import Tensor, cat


class GradcheckError(RuntimeError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def _as_tuple(inputs: "Tensor | Sequence[Tensor]") -> tuple[Tensor, ...]:
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _outputs(fn: Callable[..., Any], inputs: tuple[Tensor, ...]) -> list[Tensor]:
    out = fn(*inputs)
    return [out] if isinstance(out, Tensor) else [o for o in out if isinstance(o, Tensor)]


def gradcheck(fn: Callable[..., Any], inputs: "Tensor | Sequence[Tensor]", eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
              seed: int = 0) -> bool:
    """True when ``fn``'s backward matches central differences for every input element.

    ``inputs`` should be float64 tensors; those with ``requires_grad`` are checked.
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise GradcheckError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 "
                                 "inputs (float32 round-off swamps the differences)")
    outputs = [o for o in _outputs(fn, inputs) if o.dtype.kind == "f"]
    rng = np.random.default_rng(seed)
    directions = [Tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=o.device)
                  for o in outputs]

    def projected() -> float:  # grad mode stays on: fn may itself take gradients
        outs = [o for o in _outputs(fn, inputs) if o.dtype.kind == "f"]
        return sum(float((o.data * v.data).sum()) for o, v in zip(outs, directions))

    differentiable = [(o, v) for o, v in zip(outputs, directions) if o.requires_grad]
    analytic = grad([o for o, _ in differentiable], [inputs[i] for i in checked],
                    [v for _, v in differentiable], allow_unused=True) if differentiable else \
        (None,) * len(checked)
    for i, g in zip(checked, analytic):
        x = inputs[i]
        analytic_i = np.zeros(x.shape) if g is None else g.numpy().astype(np.float64)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs the input
        if flat.base is None and x.size and not np.shares_memory(flat, x.data):
            raise GradcheckError(f"gradcheck: input {i} is not contiguous; pass a contiguous copy")
        for j in range(x.size):
            original = flat[j].item()
            flat[j] = original + eps
            plus = projected()
            flat[j] = original - eps
            minus = projected()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            value = analytic_i.reshape(-1)[j]
            if not abs(value - numeric) <= atol + rtol * abs(numeric):
                if not raise_exception:
                    return False
                element = np.unravel_index(j, x.shape) if x.ndim else ()
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {x.shape}), element {tuple(int(e) for e in element)}: "
                    f"analytic {value:.10g} vs numerical {numeric:.10g} "
                    f"(difference {abs(value - numeric):.3g}, allowed {atol + rtol * abs(numeric):.3g})")
    return True


def gradgradcheck(fn: Callable[..., Any], inputs: "Tensor | Sequence[Tensor]", eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
                  seed: int = 0) -> bool:
    """``gradcheck`` of the first derivative: checks second derivatives of ``fn``.

    The first derivative is taken with ``create_graph=True`` against a fixed random
    direction, so what is checked is the gradient of a vector-Jacobian product.
    """
    inputs = _as_tuple(inputs)
    checked = [t for t in inputs if t.requires_grad]
    outputs = [o for o in _outputs(fn, inputs) if o.dtype.kind == "f"]
    rng = np.random.default_rng(seed + 1)
    directions = [Tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=o.device)
                  for o in outputs]

    def first_derivative(*xs: Tensor) -> Tensor:
        outs = [o for o in _outputs(fn, xs) if o.dtype.kind == "f" and o.requires_grad]
        wanted = [x for x in xs if x.requires_grad]
        grads = grad(outs, wanted, directions[:len(outs)], create_graph=True, allow_unused=True)
        return cat([(g if g is not None else Tensor.zeros_like(x)).reshape(-1)
                    for g, x in zip(grads, wanted)])

    if not checked:
        return True
    return gradcheck(first_derivative, inputs, eps, atol, rtol, raise_exception, seed)
