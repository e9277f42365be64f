"""Exercise 1 (step 1, a scalar engine): write ``backward``.

The Values below record their parents with the local derivatives, as in step 1, but the
walk that applies the chain rule is missing. Write ``backward(root)`` so that every Value
below ``root`` gets ``grad`` = d root / d value:

1. list the Values in a topological order (each after all of its parents), without
   recursion: a chain of 5000 additions is deeper than Python's recursion limit;
2. set ``root.grad = 1`` and walk the order backwards, each Value passing
   ``local * v.grad`` to each parent, with ``+=``: a Value used twice receives both.

Check it: ``python -m tinygrad_lm exercises check 1``.
"""
from __future__ import annotations

import math


class Value:
    """A number, its gradient, and its parents paired with d(self)/d(parent)."""

    def __init__(self, data: float, parents: tuple = ()) -> None:
        self.data, self.grad, self.parents = float(data), 0.0, parents

    def __add__(self, other: Value) -> Value:
        return Value(self.data + other.data, ((self, 1.0), (other, 1.0)))

    def __mul__(self, other: Value) -> Value:
        return Value(self.data * other.data, ((self, other.data), (other, self.data)))

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, ((self, 1.0 - t * t),))


def backward(root: Value) -> None:
    """Set ``v.grad`` to d root / d v for every Value v that ``root`` depends on."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        v, parents_listed = stack.pop()
        if parents_listed:
            order.append(v)
        elif id(v) not in seen:
            seen.add(id(v))
            stack.append((v, True))
            stack.extend((parent, False) for parent, _ in v.parents)
    root.grad = 1.0
    for v in reversed(order):
        for parent, local in v.parents:
            parent.grad += local * v.grad
