"""Step 1: a scalar autograd engine from scratch, checked, then used to train a tiny MLP.

Plain Python only (``math`` and ``random``). Each number is a ``Value`` that remembers the
Values it was computed from together with the local derivative with respect to each;
``backward()`` applies the chain rule from the output back to every input.

    python examples/tutorial/01_scalar_engine.py [--quick]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from typing import Sequence, Union

Number = Union[int, float]


# ----------------------------------------------------------------------------- the engine


class Value:
    """A scalar that records how it was computed, so that its derivatives can be found.

    ``parents`` pairs each input with the local derivative d(self)/d(input), known as soon
    as the forward value is; ``grad`` receives d(output)/d(self) during ``backward``.
    """

    __slots__ = ("data", "grad", "parents")

    def __init__(self, data: Number, parents: tuple[tuple[Value, float], ...] = ()) -> None:
        self.data = float(data)
        self.grad = 0.0
        self.parents = parents

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # Primitives: the result, and for each input the local derivative d(result)/d(input).
    def __add__(self, other: Value | Number) -> Value:
        other = lift(other)
        return Value(self.data + other.data, ((self, 1.0), (other, 1.0)))

    def __mul__(self, other: Value | Number) -> Value:
        other = lift(other)
        return Value(self.data * other.data, ((self, other.data), (other, self.data)))

    def __pow__(self, k: Number) -> Value:
        """x^k for a constant k: d/dx x^k = k x^(k-1)."""
        return Value(self.data ** k, ((self, k * self.data ** (k - 1)),))

    def exp(self) -> Value:
        """d/dx e^x = e^x: the output itself."""
        e = math.exp(self.data)
        return Value(e, ((self, e),))

    def log(self) -> Value:
        """d/dx ln x = 1/x."""
        return Value(math.log(self.data), ((self, 1.0 / self.data),))

    def tanh(self) -> Value:
        """d/dx tanh x = 1 - tanh(x)^2."""
        t = math.tanh(self.data)
        return Value(t, ((self, 1.0 - t * t),))

    def relu(self) -> Value:
        """d/dx max(x, 0) = 1 where x > 0, else 0."""
        return Value(max(self.data, 0.0), ((self, 1.0 if self.data > 0 else 0.0),))

    # Compositions of the primitives: their derivatives come for free from the chain rule.
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-lift(other))

    def __truediv__(self, other: Value | Number) -> Value:
        return self * lift(other) ** -1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return lift(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return lift(other) / self

    def backward(self) -> None:
        """Set ``v.grad`` to d(self)/d(v) for every Value v below self.

        Walking the topological order backwards reaches a Value only after every Value that
        used it, so its ``grad`` is complete before it is passed on. Contributions are added
        with ``+=``: a Value used twice (``x * x``) receives two. Intermediate results start
        from zero; leaves keep accumulating across calls, so a training loop zeroes them.
        """
        order = topological_order(self)
        for v in order:
            if v.parents:
                v.grad = 0.0
        self.grad += 1.0
        for v in reversed(order):
            for parent, local in v.parents:
                parent.grad += local * v.grad


def lift(x: Value | Number) -> Value:
    """A Value as is; a plain number as a constant Value (a leaf nobody trains)."""
    return x if isinstance(x, Value) else Value(x)


def topological_order(root: Value) -> list[Value]:
    """Every Value that ``root`` depends on (root included), each after all of its inputs.

    A depth-first search with an explicit stack rather than recursion: a chain of n
    operations would need n nested Python calls, and Python stops at about 1000.
    """
    order: list[Value] = []
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        v, inputs_listed = stack.pop()
        if inputs_listed:
            order.append(v)
        elif id(v) not in seen:
            seen.add(id(v))
            stack.append((v, True))  # popped again once all of its inputs are listed
            stack.extend((parent, False) for parent, _ in v.parents)
    return order


# ----------------------------------------------------------------------------- using it


def check(ok: bool, what: str) -> None:
    """Print a passed check; stop with exit status 1 at a failed one."""
    if not ok:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")


def f(x: Value, y: Value) -> Value:
    """Every primitive and composition, with x used several times (so += matters)."""
    a = x * y + x ** 2 - y / x
    return (a.tanh() + 2 + (x - y).relu() + (y * 0.5).exp()).log()


def check_derivatives() -> None:
    """Compare backward() with central differences (f(x+h) - f(x-h)) / 2h."""
    h = 1e-5
    for x0, y0 in [(1.5, -0.8), (0.7, 1.3)]:  # relu active at the first point, not the second
        x, y = Value(x0), Value(y0)
        out = f(x, y)
        out.backward()
        dx = (f(Value(x0 + h), Value(y0)).data - f(Value(x0 - h), Value(y0)).data) / (2 * h)
        dy = (f(Value(x0), Value(y0 + h)).data - f(Value(x0), Value(y0 - h)).data) / (2 * h)
        print(f"f({x0}, {y0}) = {out.data:.6f}   df/dx: backward {x.grad:.8f}, "
              f"numeric {dx:.8f}   df/dy: backward {y.grad:.8f}, numeric {dy:.8f}")
        for name, analytic, numeric in (("x", x.grad, dx), ("y", y.grad, dy)):
            check(abs(analytic - numeric) <= 1e-7 * (1 + abs(numeric)),
                  f"df/d{name} at ({x0}, {y0}) matches central differences")


def check_long_chain(n: int) -> None:
    """x added to itself n times: far deeper than the recursion limit, and dy/dx = n."""
    x = Value(0.5)
    y = Value(0.0)
    for _ in range(n):
        y = y + x
    y.backward()
    print(f"a chain of {n} additions (the recursion limit is {sys.getrecursionlimit()}): "
          f"dy/dx = {x.grad:g}")
    check(x.grad == n, "backward through a chain deeper than the recursion limit")


class MLP:
    """Fully connected layers of tanh units, the last one linear: sizes (2, 4, 1) here."""

    def __init__(self, sizes: Sequence[int], rng: random.Random) -> None:
        # layer -> one row per output unit -> its weights, then its bias as the last entry
        self.layers = [[[Value(rng.uniform(-1, 1)) for _ in range(n_in + 1)]
                        for _ in range(n_out)] for n_in, n_out in zip(sizes, sizes[1:])]

    def parameters(self) -> list[Value]:
        """Every weight and bias, the leaves that training updates."""
        return [p for layer in self.layers for row in layer for p in row]

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        h = list(x)
        for i, layer in enumerate(self.layers):
            h = [sum((w * hi for w, hi in zip(row, h)), row[-1]) for row in layer]
            if i < len(self.layers) - 1:
                h = [v.tanh() for v in h]
        return h[0]


def train_mlp(steps: int, lr: float, seed: int) -> None:
    """Fit the XOR pattern (the sign of x1 * x2) on 8 points with plain gradient descent."""
    points = [(a * r, b * r) for r in (1.0, 0.5) for a in (-1, 1) for b in (-1, 1)]
    targets = [1.0 if x1 * x2 > 0 else -1.0 for x1, x2 in points]
    model = MLP([2, 4, 1], random.Random(seed))
    params = model.parameters()
    print(f"MLP 2-4-1 ({len(params)} parameters) on {len(points)} XOR points, {steps} steps")
    losses = []
    for step in range(steps):
        predictions = [model(p) for p in points]
        loss = sum((p - t) ** 2 for p, t in zip(predictions, targets)) / len(points)
        for p in params:
            p.grad = 0.0
        loss.backward()
        for p in params:
            p.data -= lr * p.grad
        losses.append(loss.data)
        if step % (steps // 5) == 0 or step == steps - 1:
            print(f"  step {step:4d}  loss {loss.data:.4f}")
    correct = sum((model(p).data > 0) == (t > 0) for p, t in zip(points, targets))
    print(f"  {correct}/{len(points)} points on the right side")
    check(losses[-1] < 0.1 * losses[0], "the loss fell to less than a tenth of its start")
    check(correct == len(points), "every point classified correctly")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer training steps")
    args = parser.parse_args(argv)
    print("1. derivatives against central differences")
    check_derivatives()
    print("2. an iterative topological sort")
    check_long_chain(5_000 if args.quick else 50_000)
    print("3. training")
    train_mlp(steps=300 if args.quick else 1000, lr=0.1, seed=0)


if __name__ == "__main__":
    main()
