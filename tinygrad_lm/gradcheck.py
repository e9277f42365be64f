"""Numerical gradient checks: compare backward with central differences in float64.

The check projects the output on a fixed random direction ``v`` so one backward gives the
analytic vector-Jacobian product ``v^T J``; each of its elements is then compared with the
central difference ``v . (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``. A mismatch names
the input, the element, both values and their difference, and gives that element's true
Jacobian entries.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

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


def compare(fn: Callable[..., Any], inputs: "Tensor | Sequence[Tensor]", eps: float = 1e-6,
            seed: int = 0) -> Iterator[tuple[int, tuple[int, ...], float, float]]:
    """Yield ``(input index, element, analytic, numerical)`` for every element of every input
    that requires grad: the raw material of ``gradcheck`` (and of ``tinygrad-lm gradcheck``)."""
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
        values = np.zeros(x.shape) if g is None else g.numpy().astype(np.float64)
        for element in np.ndindex(*x.shape):  # works for strided views and CuPy alike
            original = float(x.data[element])
            x.data[element] = original + eps
            plus = projected()
            x.data[element] = original - eps
            minus = projected()
            x.data[element] = original
            yield i, tuple(int(e) for e in element), float(values[element]), (plus - minus) / (2 * eps)


def gradcheck(fn: Callable[..., Any], inputs: "Tensor | Sequence[Tensor]", eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
              seed: int = 0) -> bool:
    """True when ``fn``'s backward matches central differences for every input element.

    ``inputs`` should be float64 tensors; those with ``requires_grad`` are checked. On a
    mismatch the error names the worst element and lists its true Jacobian entries, d
    output / d element, by backward and by central differences.

    >>> x = Tensor(np.array([0.5, -1.0]), requires_grad=True)  # a float64 array stays float64
    >>> gradcheck(lambda t: (t * t).tanh(), x)
    True
    """
    inputs = _as_tuple(inputs)
    worst, failures = None, 0
    for i, element, value, numeric in compare(fn, inputs, eps, seed):
        allowed = atol + rtol * abs(numeric)
        if not abs(value - numeric) <= allowed:
            if not raise_exception:
                return False
            failures += 1
            if worst is None or abs(value - numeric) > abs(worst[2] - worst[3]):
                worst = (i, element, value, numeric, allowed)
    if worst is None:
        return True
    i, element, value, numeric, allowed = worst
    entries = "".join(f"\n    {name}: {a:.10g} vs {n:.10g}"
                      for name, a, n in _jacobian_column(fn, inputs, i, element, eps))
    raise GradcheckError(
        f"gradcheck: input {i} (shape {inputs[i].shape}), element {element}, the worst of "
        f"{failures} mismatched element(s). The derivative of sum(v * output), v a fixed random "
        f"direction, by this element: backward {value:.10g} vs numerical {numeric:.10g} "
        f"(difference {abs(value - numeric):.3g}, allowed {allowed:.3g}). Its Jacobian entries "
        f"d output / d input {i}[{element}], backward vs numerical, largest differences first:"
        f"{entries}")


def _jacobian_column(fn: Callable[..., Any], inputs: tuple[Tensor, ...], i: int,
                     element: tuple[int, ...], eps: float,
                     shown: int = 6) -> list[tuple[str, float, float]]:
    """The ``shown`` entries of d output / d inputs[i][element] where backward and central
    differences differ most, as (output element, backward, numerical); entries that both
    call 0 are left out."""
    x = inputs[i]
    original = float(x.data[element])
    sides = []
    for value in (original + eps, original - eps):
        x.data[element] = value
        sides.append([o.numpy().astype(np.float64) for o in _outputs(fn, inputs)
                      if o.dtype.kind == "f"])
    x.data[element] = original
    outputs = [o for o in _outputs(fn, inputs) if o.dtype.kind == "f"]
    rows = []
    for j, (out, plus, minus) in enumerate(zip(outputs, *sides)):
        for k in list(np.ndindex(*out.shape))[:1000]:  # one backward per output element
            analytic = 0.0
            if out.requires_grad:
                onehot = np.zeros(out.shape)
                onehot[k] = 1.0
                (g,) = grad(out, [x], Tensor(onehot, dtype=out.dtype, device=out.device),
                            retain_graph=True, allow_unused=True)
                analytic = 0.0 if g is None else float(g.numpy()[element])
            name = f"output {j}[{k}]" if len(outputs) > 1 else f"output[{k}]"
            numeric = float(plus[k] - minus[k]) / (2 * eps)
            if analytic or numeric:
                rows.append((name, analytic, numeric))
    rows.sort(key=lambda row: -abs(row[1] - row[2]))
    return rows[:shown]


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
