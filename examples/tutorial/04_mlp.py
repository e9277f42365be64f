"""Step 4: a neural network the library's way: an ``nn.Module``, mini-batches and AdamW.

The task is "two moons": two interleaved half-circles in the plane that no straight line
separates. The data is generated with NumPy; the model is a small ReLU MLP written as a
Module subclass; ``F.cross_entropy`` is the loss and ``optim.AdamW`` takes the steps.

    python examples/tutorial/04_mlp.py [--quick]
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

import numpy as np

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import nn, optim

from _tutorial import check  # this folder's shared helper


def two_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points per class: class 0 on the upper half-circle around (0, 0), class 1 on the
    lower one around (1, 0.5); float32 coordinates (2n, 2) centred near 0, int64 labels."""
    t = rng.uniform(0, math.pi, size=(2, n))
    upper = np.stack([np.cos(t[0]), np.sin(t[0])], axis=1)
    lower = np.stack([1 - np.cos(t[1]), 0.5 - np.sin(t[1])], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((2 * n, 2))
    x = (x - [0.5, 0.25]) / [1.0, 0.5]
    y = np.repeat(np.array([0, 1]), n)
    return x.astype(np.float32), y.astype(np.int64)


class MLP(nn.Module):
    """2 -> hidden -> hidden -> 2 logits. Assigning a Linear registers its parameters."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: tl.Tensor) -> tl.Tensor:
        h = self.fc1(x).relu()
        h = self.fc2(h).relu()
        return self.head(h)  # logits: cross_entropy applies the softmax itself


@tl.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean loss and accuracy on a whole split, without recording a graph."""
    model.eval()
    logits = model(tl.Tensor(x))
    loss = F.cross_entropy(logits, tl.Tensor(y)).item()
    accuracy = float((logits.argmax(axis=1).numpy() == y).mean())
    model.train()
    return loss, accuracy


def train(model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
          y_test: np.ndarray, epochs: int, batch_size: int,
          rng: np.random.Generator) -> list[tuple[float, float]]:
    """Mini-batch training with AdamW, printing the test loss and accuracy now and then;
    returns the mean training loss and the test loss of every epoch."""
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))  # a new shuffle every epoch
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            logits = model(tl.Tensor(x_train[batch]))
            loss = F.cross_entropy(logits, tl.Tensor(y_train[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        history.append((total / len(order), test_loss))
        if epoch % (epochs // 3) == 0 or epoch == 1:
            print(f"  epoch {epoch:3d}  train loss {total / len(order):.4f}  "
                  f"test loss {test_loss:.4f}  test accuracy {test_acc:6.1%}")
    return history


def experiment(quick: bool) -> dict:
    """Data, the linear baseline and the MLP, trained; what the checks and the picture use."""
    points, epochs, batch_size = (200, 12, 32) if quick else (1000, 30, 32)
    rng = np.random.default_rng(0)
    tl.manual_seed(0)
    x_train, y_train = two_moons(points, noise=0.15, rng=rng)
    x_test, y_test = two_moons(points // 2, noise=0.15, rng=rng)
    print(f"two moons: {len(y_train)} training and {len(y_test)} test points")

    print("a linear model, the baseline: one straight line cannot follow the moons")
    linear = nn.Linear(2, 2)
    train(linear, x_train, y_train, x_test, y_test, epochs, batch_size, rng)

    model = MLP(hidden=32)
    sizes = ", ".join(f"{name} {tuple(p.shape)}" for name, p in model.named_parameters())
    print(f"the MLP: {model.num_parameters()} parameters: {sizes}")
    first_loss, _ = evaluate(model, x_test, y_test)
    print(f"  before training: test loss {first_loss:.4f} (a coin flip scores ln 2 = "
          f"{math.log(2):.4f})")
    history = train(model, x_train, y_train, x_test, y_test, epochs, batch_size, rng)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, linear=linear,
                model=model, first_loss=first_loss, history=history)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points and epochs")
    args = parser.parse_args(argv)
    run = experiment(args.quick)
    _, linear_acc = evaluate(run["linear"], run["x_test"], run["y_test"])
    test_loss, test_acc = evaluate(run["model"], run["x_test"], run["y_test"])
    print(f"test accuracy: linear {linear_acc:.1%}, MLP {test_acc:.1%}")
    test_losses = [test for _, test in run["history"]]
    best = int(np.argmin(test_losses))
    print(f"the MLP's lowest test loss: {test_losses[best]:.4f} after epoch {best + 1}; after "
          f"the last: {test_loss:.4f} (training loss {run['history'][-1][0]:.4f})")
    check(test_loss < 0.5 * run["first_loss"], "the MLP's test loss fell below half its start")
    check(test_acc >= 0.95, "the MLP's test accuracy is at least 95%")
    check(test_acc >= linear_acc + 0.05, "the MLP beats the linear model by 5 points or more")


if __name__ == "__main__":
    main()
