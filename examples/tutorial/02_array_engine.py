"""Step 2: build your own array engine: step 1's walk with NumPy arrays in every node.

The engine is about 150 lines: a ``Tensor`` that holds an array and the ``Function`` that
made it, ``Function.apply`` that runs a forward and records the node, an iterative
topological sort, ``backward`` that walks it and accumulates vector-Jacobian products,
``sum_to`` that undoes broadcasting, and six ops (``Add``, ``Mul``, ``MatMul``, ``Tanh``,
``Exp``, ``Sum``). The rest of the file checks it against tinygrad_lm on random inputs.

    python examples/tutorial/02_array_engine.py [--quick]
"""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from _tutorial import check  # this folder's shared helper

# ----------------------------------------------------------------------------- the engine


class Tensor:
    """An array that remembers the Function that made it (``creator``; None for a leaf)."""

    def __init__(self, data: np.ndarray, creator: Function | None = None) -> None:
        self.data = np.asarray(data, dtype=np.float64)
        self.creator = creator
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __add__(self, other: Tensor) -> Tensor:
        return Add.apply(self, other)

    def __mul__(self, other: Tensor) -> Tensor:
        return Mul.apply(self, other)

    def __matmul__(self, other: Tensor) -> Tensor:
        return MatMul.apply(self, other)

    def tanh(self) -> Tensor:
        return Tanh.apply(self)

    def exp(self) -> Tensor:
        return Exp.apply(self)

    def sum(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def backward(self) -> None:
        """Fill ``.grad`` of every leaf below this one-element tensor with d(self)/d(leaf)."""
        grads = {id(self): np.ones_like(self.data)}  # d self / d self = 1
        for t in reversed(topological_order(self)):  # every consumer before its inputs
            g = grads.pop(id(t))  # complete: every consumer has added its share
            if t.creator is None:  # a leaf: the gradient comes to rest
                t.grad = g if t.grad is None else t.grad + g
                continue
            for x, gx in zip(t.creator.inputs, t.creator.backward(g)):
                gx = sum_to(gx, x.shape)  # undo broadcasting, in this one place
                grads[id(x)] = grads[id(x)] + gx if id(x) in grads else gx


class Function:
    """A graph node: ``forward`` on arrays, ``backward`` from d out to d each input."""

    inputs: tuple[Tensor, ...]

    @classmethod
    def apply(cls, *inputs: Tensor, **params: object) -> Tensor:
        """Run ``forward`` on the inputs' arrays; the output remembers this node."""
        fn = cls()
        fn.inputs, fn.params = inputs, params
        return Tensor(fn.forward(*(x.data for x in inputs)), creator=fn)

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, ...]:
        raise NotImplementedError


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor below ``root`` (root included), each after its inputs: step 1's
    iterative depth-first search, following ``creator.inputs`` instead of ``parents``."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, inputs_listed = stack.pop()
        if inputs_listed:
            order.append(t)
        elif id(t) not in seen:
            seen.add(id(t))
            stack.append((t, True))  # popped again once all of its inputs are listed
            stack.extend((x, False) for x in (t.creator.inputs if t.creator else ()))
    return order


def sum_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``.

    Broadcasting lines shapes up from the right: (2, 3) against (3,) treats (3,) as (1, 3)
    and copies the row; every copy sends back a gradient, and the copies' gradients add.
    """
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra)))  # the leading axes that were added
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)  # the axes of length 1 that were copied


class Add(Function):
    """d(a + b) = dout for both (broadcast shapes are summed back by sum_to)."""

    def forward(self, a, b):
        return a + b

    def backward(self, dout):
        return dout, dout


class Mul(Function):
    """d(a b)/da = b, d(a b)/db = a."""

    def forward(self, a, b):
        return a * b

    def backward(self, dout):
        a, b = (x.data for x in self.inputs)
        return dout * b, dout * a


class MatMul(Function):
    """C = A B: dA = dC B^T, dB = A^T dC (the shapes leave no other choice)."""

    def forward(self, a, b):
        return a @ b

    def backward(self, dout):
        a, b = (x.data for x in self.inputs)
        return dout @ b.T, a.T @ dout


class Tanh(Function):
    """d tanh(x) = 1 - tanh(x)^2, from the output it saved."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return (dout * (1 - self.out ** 2),)


class Exp(Function):
    """d e^x = e^x: the output itself."""

    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return (dout * self.out,)


class Sum(Function):
    """Every summed element contributes once: the gradient is dout copied back over the
    summed axis (put back as a length-1 axis first when keepdims dropped it)."""

    def forward(self, x):
        return x.sum(axis=self.params["axis"], keepdims=self.params["keepdims"])

    def backward(self, dout):
        (x,) = self.inputs
        if self.params["axis"] is not None and not self.params["keepdims"]:
            dout = np.expand_dims(dout, self.params["axis"])
        return (np.broadcast_to(dout, x.shape),)


# ----------------------------------------------------------------------------- checking it


def model(x, w, b, c, v):
    """Every op, broadcasting two ways ((n,) against (m, n); a column from keepdims), and
    ``h`` used twice: the same code runs on this engine's Tensors and on tinygrad_lm's."""
    h = (x @ w + b).tanh()  # (m, n), b (n,) broadcast over the rows
    s = (h * c).sum(axis=1, keepdims=True)  # (m, 1), c () broadcast everywhere
    return (h * s.exp() * v).sum()  # s broadcast over the columns, v (m, 1) too


def compare_with_tinygrad_lm(trials: int) -> None:
    """Same inputs through both engines: the same loss and the same five gradients."""
    import tinygrad_lm as tl

    rng = np.random.default_rng(0)
    worst, shapes_ok = 0.0, True
    for _ in range(trials):
        m, k, n = rng.integers(1, 6, size=3)
        arrays = [rng.standard_normal(s) for s in ((m, k), (k, n), (n,), (), (m, 1))]
        ours = [Tensor(a) for a in arrays]
        theirs = [tl.Tensor(a, dtype=tl.float64, requires_grad=True) for a in arrays]
        loss, loss_tl = model(*ours), model(*theirs)
        loss.backward()
        loss_tl.backward()
        worst = max(worst, abs(loss.data - loss_tl.item()),
                    *(np.abs(a.grad - b.grad.numpy()).max() for a, b in zip(ours, theirs)))
        shapes_ok = shapes_ok and all(a.grad.shape == a.shape for a in ours)
    print(f"  {trials} random sizes (m, k, n) from 1 to 5: largest difference {worst:.1e}")
    check(shapes_ok, "every gradient has its input's shape")
    check(worst < 1e-12, "loss and gradients equal tinygrad_lm's")


def broadcast_example() -> tuple[np.ndarray, np.ndarray]:
    """b (3,) is used by both rows of a (2, 3): its gradient is dout summed over the rows."""
    a = Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    b = Tensor(np.array([10.0, 20.0, 30.0]))
    w = Tensor(np.array([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0]]))  # so that dout is not all ones
    ((a * b) * w).sum().backward()
    print(f"  d loss / d(a * b) = w = {w.data.tolist()}; times a, then summed over the rows:")
    print(f"  b.grad = {b.grad.tolist()}")
    check(b.grad.tolist() == [3.0, 13.0, -6.0], "b.grad is w * a summed over the broadcast axis")
    return w.data * a.data, b.grad  # one row per use of b, and their sum


def check_sum_to() -> None:
    """Each case: the broadcast shape, the input's shape, the sum that must come out."""
    g = np.arange(24.0).reshape(2, 3, 4)
    cases = [((4,), g.sum(axis=(0, 1))), ((3, 1), g.sum(axis=(0, 2))[:, None]),
             ((1, 3, 4), g.sum(axis=0, keepdims=True)), ((), g.sum()), ((2, 3, 4), g)]
    for shape, wanted in cases:
        got = sum_to(g, shape)
        check(got.shape == shape and np.array_equal(got, wanted),
              f"sum_to from {g.shape} to {shape}")


def check_long_chain(n: int) -> None:
    """The walk is iterative, as in step 1: a chain n ops deep is no problem."""
    x = Tensor(np.array([0.5, -0.5]))
    y = x
    for _ in range(n):
        y = y + x
    y.sum().backward()
    check(np.array_equal(x.grad, [n + 1.0, n + 1.0]), f"backward through a chain of {n} adds")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer random trials")
    args = parser.parse_args(argv)
    print("1. broadcasting, undone by sum_to")
    broadcast_example()
    check_sum_to()
    print("2. a deep graph")
    check_long_chain(5_000)
    print("3. against tinygrad_lm")
    compare_with_tinygrad_lm(trials=20 if args.quick else 200)


if __name__ == "__main__":
    main()
