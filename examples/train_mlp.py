"""Train a small MLP to separate two interleaved spirals, once per optimizer.

The smallest complete use of the library: ``nn.Linear`` layers with ``nn.Tanh`` (or
``nn.ReLU``), ``F.cross_entropy`` as the loss, and SGD with momentum, Adam and AdamW taking
the steps. Every optimizer starts from the same initial weights (same seed), so the
accuracies they print are comparable.

    python examples/train_mlp.py [--device cpu|cuda] [--steps N] [--quick] [--activation relu]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

if __package__ in (None, ""):  # run as a script from anywhere: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_lm as tl  # noqa: E402
import tinygrad_lm.nn.functional as F  # noqa: E402
from tinygrad_lm import Tensor, nn, optim  # noqa: E402


def spirals(points_per_class: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two spirals, one per class, each turning 1.5 times around the origin; returns
    float32 coordinates (2N, 2) scaled to about [-1, 1] and int64 labels (2N,)."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.random(points_per_class)) * 3 * math.pi  # denser near the centre
    arms = []
    for label, phase in ((0, 0.0), (1, math.pi)):
        xy = np.stack([t * np.cos(t + phase), t * np.sin(t + phase)], axis=1)
        arms.append(xy + rng.standard_normal(xy.shape) * noise)
    x = np.concatenate(arms) / (3 * math.pi)
    y = np.repeat(np.array([0, 1]), points_per_class)
    return x.astype(np.float32), y.astype(np.int64)


def make_model(hidden: int, activation: str) -> nn.Module:
    """2 -> hidden -> hidden -> 2, with the chosen nonlinearity between the layers."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    return nn.Sequential(nn.Linear(2, hidden), act(), nn.Linear(hidden, hidden), act(),
                         nn.Linear(hidden, 2))


OPTIMIZERS: dict[str, Callable[[list], optim.Optimizer]] = {
    "sgd+momentum": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: optim.Adam(params, lr=0.01),
    "adamw": lambda params: optim.AdamW(params, lr=0.01, weight_decay=1e-4),
}


def accuracy(model: nn.Module, x: Tensor, y: np.ndarray) -> float:
    with tl.no_grad():
        predicted = model(x).argmax(axis=1).numpy()
    return float((predicted == y).mean())


def train(name: str, x: Tensor, y: Tensor, steps: int, hidden: int, activation: str,
          seed: int) -> tuple[nn.Module, float]:
    """Full-batch training from a seeded init; returns the model and its final loss."""
    tl.manual_seed(seed)
    model = make_model(hidden, activation).to(x.device)
    opt = OPTIMIZERS[name](list(model.parameters()))
    loss = None
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return model, float(loss.item()) if loss is not None else math.nan


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default 1500, 600 quick)")
    parser.add_argument("--quick", action="store_true", help="fewer points and steps")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width (default 32)")
    parser.add_argument("--activation", choices=["tanh", "relu"], default="tanh")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps if args.steps is not None else (600 if args.quick else 1500)
    points = 100 if args.quick else 300

    x_train, y_train = spirals(points, noise=0.02, seed=args.seed)
    x_test, y_test = spirals(points, noise=0.02, seed=args.seed + 1)
    x = Tensor(x_train, device=args.device)
    y = Tensor(y_train, device=args.device)
    xt = Tensor(x_test, device=args.device)
    print(f"two spirals: {len(y_train)} training and {len(y_test)} test points, "
          f"MLP 2-{args.hidden}-{args.hidden}-2 ({args.activation}), {steps} full-batch steps "
          f"on {args.device}")
    results = {}
    for name in OPTIMIZERS:
        start = time.perf_counter()
        model, loss = train(name, x, y, steps, args.hidden, args.activation, args.seed)
        seconds = time.perf_counter() - start
        train_acc, test_acc = accuracy(model, x, y_train), accuracy(model, xt, y_test)
        results[name] = test_acc
        print(f"{name:>13}: loss {loss:.4f}  train accuracy {train_acc:6.1%}  "
              f"test accuracy {test_acc:6.1%}  ({seconds:.1f}s)")
    return results


if __name__ == "__main__":
    main()
