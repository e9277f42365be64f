"""Step 3: the ideas of step 1 on tinygrad_lm Tensors: whole arrays instead of scalars.

Broadcasting and how backward undoes it (``sum_to``), ``tl.gradcheck`` (including a
deliberately wrong backward that it catches), a second derivative with ``tl.grad(...,
create_graph=True)``, and ``tl.no_grad``, ending with linear regression by hand.

    python examples/tutorial/03_tensors.py [--quick]
"""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

import tinygrad_lm as tl

from _tutorial import check  # this folder's shared helper


def broadcasting() -> None:
    """In a * b + c, b (3,) is reused for both rows of a (2, 3) and c () for all six
    elements; the adjoint of reuse is a sum, which the engine applies with ``sum_to``."""
    a = tl.Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    b = tl.Tensor([10.0, 20.0, 30.0], requires_grad=True)
    c = tl.Tensor(0.5, requires_grad=True)
    w = tl.Tensor([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0]])  # weights so that dout is not all ones
    y = a * b + c                                          # (2, 3)
    (y * w).sum().backward()
    print(f"y = a * b + c has shape {y.shape}")
    dout_b = w * a                                         # d loss / d b, one row per use of b
    print(f"  d loss/d b before sum_to: {dout_b.tolist()}")
    print(f"  after sum_to({b.shape}):    {dout_b.sum_to(b.shape).tolist()} = b.grad "
          f"{b.grad.tolist()}")
    print(f"  c.grad = {c.grad.item()} (the sum of all six weights)")
    check(np.allclose(b.grad.numpy(), (w.numpy() * a.numpy()).sum(axis=0)),
          "b.grad is dout summed over the broadcast axis")
    check(np.isclose(c.grad.item(), w.numpy().sum()), "c.grad is dout summed over every axis")
    check(np.allclose(a.grad.numpy(), w.numpy() * b.numpy()), "a.grad needs no sum: a was not "
          "broadcast")


class Square(tl.Function):
    """x^2 with a hand-written backward: d/dx x^2 = 2x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        return dout * 2 * x


class BuggySquare(Square):
    """The same forward with a classic mistake in backward: the factor 2 is missing."""

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        return dout * x


def gradient_checks(size: int) -> None:
    """``tl.gradcheck`` compares backward with central differences, element by element, in
    float64 (in float32 the differences would be swamped by rounding)."""
    tl.manual_seed(0)
    x = tl.randn(size, 3, dtype=tl.float64, requires_grad=True)
    w = tl.randn(3, 2, dtype=tl.float64, requires_grad=True)
    bias = tl.randn(2, dtype=tl.float64, requires_grad=True)

    def layer(x, w, bias):
        return (x @ w + bias).tanh().log_softmax(axis=-1)

    check(tl.gradcheck(layer, (x, w, bias)), f"gradcheck of log_softmax(tanh(x @ w + bias)), "
          f"x of shape {x.shape}")
    check(tl.gradcheck(Square.apply, x), "gradcheck of a custom Function, Square")
    try:
        tl.gradcheck(BuggySquare.apply, x)
        caught = None
    except tl.GradcheckError as err:
        caught = str(err)
        print(f"  gradcheck on BuggySquare says: {caught[:94]}...")
    check(caught is not None, "gradcheck catches the backward that forgot the factor 2")


def second_derivative() -> None:
    """With create_graph=True the backward pass is itself recorded, so the gradient can be
    differentiated again: d/dx tanh = 1 - t^2, d2/dx2 tanh = -2 t (1 - t^2)."""
    x = tl.Tensor([-1.0, 0.0, 0.5, 2.0], dtype=tl.float64, requires_grad=True)
    (dy,) = tl.grad(x.tanh().sum(), x, create_graph=True)
    (d2y,) = tl.grad(dy.sum(), x)
    t = np.tanh(x.numpy())
    print(f"x = {x.tolist()}\n  tanh'  = {(np.round(dy.numpy(), 6) + 0.0).tolist()}"
          f"\n  tanh'' = {(np.round(d2y.numpy(), 6) + 0.0).tolist()}")
    check(np.allclose(dy.numpy(), 1 - t ** 2), "first derivative of tanh is 1 - tanh^2")
    check(np.allclose(d2y.numpy(), -2 * t * (1 - t ** 2)),
          "second derivative of tanh is -2 tanh (1 - tanh^2)")
    check(tl.gradgradcheck(lambda v: v.tanh() * v, x), "gradgradcheck of x tanh(x)")


def linear_regression(steps: int) -> None:
    """Fit y = 3 x - 1 (plus noise) by gradient descent, updating .data by hand as an
    optimizer does; predictions are made under no_grad, which records no graph."""
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, size=(64, 1)).astype(np.float32)
    ys = 3 * xs - 1 + 0.05 * rng.standard_normal((64, 1)).astype(np.float32)
    x, y = tl.Tensor(xs), tl.Tensor(ys)
    w = tl.zeros(1, 1, requires_grad=True)
    b = tl.zeros(1, requires_grad=True)
    lr = 0.2
    for step in range(steps):
        loss = ((x @ w + b - y) ** 2).mean()
        w.grad, b.grad = None, None
        loss.backward()
        w.data -= lr * w.grad.data      # raw arrays: the update is not part of any graph
        b.data -= lr * b.grad.data
        if step % (steps // 4) == 0 or step == steps - 1:
            print(f"  step {step:3d}  loss {loss.item():.5f}  w {w.item():+.4f}  b {b.item():+.4f}")
    with tl.no_grad():
        prediction = x @ w + b
    check(prediction.grad_fn is None and not prediction.requires_grad,
          "under no_grad nothing is recorded")
    check(abs(w.item() - 3) < 0.05 and abs(b.item() + 1) < 0.05, "fitted w close to 3, b to -1")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller checks, fewer steps")
    args = parser.parse_args(argv)
    print("1. broadcasting, undone by sum_to")
    broadcasting()
    print("2. gradcheck")
    gradient_checks(size=2 if args.quick else 6)
    print("3. a second derivative")
    second_derivative()
    print("4. linear regression by hand, then no_grad")
    linear_regression(steps=80 if args.quick else 200)


if __name__ == "__main__":
    main()
