"""Draw the tutorial's pictures, docs/images/tutorial_NN_*.svg, one per step.

Each picture is computed by the step's own functions (imported from examples/tutorial/),
with the step's ``--quick`` sizes where training is involved, so that the whole set takes
seconds; tests/test_tutorial.py regenerates them and compares them with the committed
files byte for byte. Run: ``python scripts/make_tutorial_images.py [--out DIR]``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
from importlib import import_module
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "tutorial"), str(Path(__file__).parent)]
import tinygrad_lm as tl  # noqa: E402
from tinygrad_lm.train import PRESETS, TrainConfig  # noqa: E402

from svgplot import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, Axes, Figure, heatmap, mix  # noqa: E402


def step(name: str):
    """A tutorial script as a module (quietly: the pictures need its functions, not its
    printing)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return import_module(name)


def quietly(fn: Callable, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def char_label(c: str) -> str:
    return {" ": "␣", "\n": "\\n", "\t": "\\t"}.get(c, c)


# ----------------------------------------------------------------------------- step 1


def scalar_graph() -> Figure:
    """A tanh unit, o = tanh(x1 w1 + x2 w2 + b), after o.backward(): every Value with its
    data and grad; every edge with the local derivative it multiplies the grad by."""
    engine = step("01_scalar_engine")
    x1, w1, x2, w2, b = (engine.Value(v) for v in (1.5, -0.8, 0.5, 2.0, 1.0))
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    s = x1w1 + x2w2
    n = s + b
    o = n.tanh()
    o.backward()
    names = {id(v): k for k, v in dict(x1=x1, w1=w1, x2=x2, w2=w2, b=b, x1w1=x1w1, x2w2=x2w2,
                                       s=s, n=n, o=o).items()}
    order = engine.topological_order(o)
    depth: dict[int, int] = {}
    for v in order:
        depth[id(v)] = 1 + max((depth[id(p)] for p, _ in v.parents), default=-1)
    columns: dict[int, list] = {}
    for v in sorted(order, key=lambda v: list(names).index(id(v))):  # in the order written
        columns.setdefault(depth[id(v)], []).append(v)
    width, box_w, box_h = 190, 120, 46
    fig = Figure(40 + width * len(columns), 390)
    pos = {}
    for d, values in columns.items():
        for i, v in enumerate(values):
            pos[id(v)] = (20 + d * width, 40 + i * 68 + (5 - len(values)) * 34)
    for v in order:
        for parent, local in v.parents:
            (px, py), (cx, cy) = pos[id(parent)], pos[id(v)]
            x1_, y1_, x2_, y2_ = px + box_w, py + box_h / 2, cx, cy + box_h / 2
            fig.arrow(x1_, y1_, x2_, y2_)
            fig.text((x1_ + x2_) / 2, (y1_ + y2_) / 2 - 5, f"× {local:.3g}", size=10,
                     colour=RED)
    for v in order:
        x, y = pos[id(v)]
        leaf = not v.parents
        fig.rect(x, y, box_w, box_h, "#cfe2f3" if leaf else "#ffffff",
                 "#3d85c6" if leaf else "#666666", rx=4)
        fig.text(x + box_w / 2, y + 15, names[id(v)], size=12, bold=True)
        fig.text(x + box_w / 2, y + 29, f"data {v.data:.4g}", size=10)
        fig.text(x + box_w / 2, y + 41, f"grad {v.grad:.4g}", size=10, colour=RED)
    fig.text(fig.width / 2, 20, "o = tanh(x1·w1 + x2·w2 + b) after o.backward(): "
             "grad of a Value = sum over its arrows of (× local) × grad at the arrow's end",
             size=12)
    return fig


# ----------------------------------------------------------------------------- step 2


def broadcast_gradient() -> Figure:
    """Forward: b (3,) is copied into both rows; backward: the rows' gradients are summed."""
    per_use, b_grad = quietly(step("02_array_engine").broadcast_example)
    fig = Figure(700, 280)
    cell = 46

    def grid(x: float, y: float, values, title: str, fill: str) -> None:
        values = np.atleast_2d(values)
        fig.text(x + values.shape[1] * cell / 2, y - 8, title, size=12, bold=True)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                fig.rect(x + j * cell, y + i * cell, cell, cell, fill, "#666666")
                fig.text(x + j * cell + cell / 2, y + i * cell + cell / 2 + 4, f"{v:g}", size=12)

    left, right = 110, 420
    grid(left, 50, [[10, 20, 30]], "b (3,)", "#cfe2f3")
    grid(left, 150, [[10, 20, 30], [10, 20, 30]], "b broadcast to (2, 3)", "#eeeeee")
    for j in range(3):
        fig.arrow(left + j * cell + cell / 2, 50 + cell, left + j * cell + cell / 2, 150 - 22)
    fig.text(left + 1.5 * cell, 265, "forward: each b_j is copied to both rows", size=11)
    grid(right, 50, per_use, "d loss / d b, one row per copy", "#fff2cc")
    grid(right, 180, b_grad, "b.grad = sum_to(…, (3,))", "#d9ead3")
    for j in range(3):
        fig.arrow(right + j * cell + cell / 2, 50 + 2 * cell, right + j * cell + cell / 2,
                  180 - 22)
    fig.text(right + 1.5 * cell, 265, "backward: the copies' gradients add up", size=11)
    return fig


# ----------------------------------------------------------------------------- step 3


def tanh_derivatives() -> Figure:
    """tanh and its first two derivatives, both from tl.grad with create_graph=True."""
    x = tl.Tensor(np.linspace(-3, 3, 121), dtype=tl.float64, requires_grad=True)
    y = x.tanh()
    (dy,) = tl.grad(y.sum(), x, create_graph=True)
    (d2y,) = tl.grad(dy.sum(), x)
    fig = Figure(560, 330)
    ax = Axes(fig, 60, 30, 470, 250, (-3, 3), (-1.1, 1.1), "tanh and two derivatives, by tl.grad",
              "x", "", xticks=range(-3, 4), yticks=(-1, -0.5, 0, 0.5, 1))
    xs = x.numpy()
    ax.plot(xs, y.numpy(), BLUE, "tanh x")
    ax.plot(xs, dy.numpy(), ORANGE, "1st: 1 - t²")
    ax.plot(xs, d2y.numpy(), GREEN, "2nd: -2t (1 - t²)", dash=True)
    return fig


# ----------------------------------------------------------------------------- step 4


def mlp_boundary_and_curves() -> Figure:
    """The trained MLP's probability of class 1 over the plane, the test points on top; the
    training and test losses per epoch (the --quick run)."""
    mlp = step("04_mlp")
    run = quietly(mlp.experiment, quick=True)
    n = 44
    centres = -2.2 + 4.4 * (np.arange(n) + 0.5) / n  # of n x n cells covering the panel
    gx, gy = np.meshgrid(centres, centres)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    with tl.no_grad():
        p1 = run["model"](tl.Tensor(grid)).softmax(axis=-1).numpy()[:, 1].reshape(n, n)
    fig = Figure(860, 380)
    ax = Axes(fig, 50, 40, 300, 300, (-2.2, 2.2), (-2.2, 2.2), "the MLP's P(class 1), test points",
              xticks=(-2, -1, 0, 1, 2), yticks=(-2, -1, 0, 1, 2))
    cell = 300 / n
    levels = np.round(p1 * 8) / 8  # 9 shades: the boundary is the middle one
    for i in range(n):  # row i from the bottom; runs of one shade drawn as one rectangle
        j = 0
        while j < n:
            end = j
            while end + 1 < n and levels[i, end + 1] == levels[i, j]:
                end += 1
            fig.rect(50 + j * cell, 340 - (i + 1) * cell, (end - j + 1) * cell + 0.3, cell + 0.3,
                     mix("#c6dbef", "#fdd0a2", float(levels[i, j])))
            j = end + 1
    for (px, py), label in zip(run["x_test"], run["y_test"]):
        fig.circle(ax.px(px), ax.py(py), 2.6, ORANGE if label else BLUE, "#ffffff")
    fig.rect(50, 40, 300, 300, "none", "#333333")
    train_loss, test_loss = zip(*run["history"])
    epochs = range(1, len(train_loss) + 1)
    top = math.ceil(max(max(train_loss), max(test_loss)) * 10) / 10
    curves = Axes(fig, 460, 40, 370, 300, (1, len(train_loss)), (0, top),
                  "loss per epoch: the test loss turns up", "epoch", "cross-entropy",
                  xticks=range(2, len(train_loss) + 1, 2), yticks=np.arange(0, top + 1e-9, 0.1),
                  tick_format="{:.1f}")
    curves.plot(epochs, train_loss, BLUE, "training", marker=True)
    curves.plot(epochs, test_loss, RED, "test", marker=True)
    return fig


# ----------------------------------------------------------------------------- step 5


def attention_heatmaps() -> Figure:
    """The causal mask and one head's attention weights, random q and k, T = 8."""
    attention = step("05_attention")
    T = 8
    tl.manual_seed(0)
    q, k = tl.randn(1, 1, T, 4) * 1.5, tl.randn(1, 1, T, 4) * 1.5
    weights = attention.causal_weights(q, k).numpy()[0, 0]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    fig = Figure(720, 400)
    cell = 36
    heatmap(fig, 60, 60, cell, (~future).astype(float), 1.0, "the causal mask: who sees whom",
            row_labels=[f"q{t}" for t in range(T)], col_labels=[f"k{s}" for s in range(T)],
            masked=future, colour=GREEN)
    heatmap(fig, 400, 60, cell, weights, 1.0, "attention weights (rows sum to 1)",
            row_labels=[f"q{t}" for t in range(T)], col_labels=[f"k{s}" for s in range(T)],
            annotate="{:.2f}", masked=future)
    fig.text(60 + 4 * cell, 385, "grey: score set to -inf, weight exactly 0", size=11)
    fig.text(400 + 4 * cell, 385, "row t: how position t averages the values v0..vt", size=11)
    return fig


# ----------------------------------------------------------------------------- step 6


def bigram_tables() -> Figure:
    """P(next | current) for the 14 commonest characters: counted and learned (--quick)."""
    bigram = step("06_bigram")
    from tinygrad_lm.data import CharTokenizer, load_corpus

    text = load_corpus("stdlib")[:100_000]
    tok = CharTokenizer.train(text)
    ids = tok.encode(text)
    train_ids = ids[:int(0.9 * len(ids))]
    V = tok.vocab_size
    counted = bigram.count_bigrams(train_ids, V)
    model, _ = quietly(bigram.learn_bigram, train_ids, V, 150)
    learned = model.weight.softmax(axis=-1).numpy().astype(np.float64)
    common = np.argsort(-np.bincount(train_ids, minlength=V))[:14]
    labels = [char_label(tok.decode([int(i)])) for i in common]
    sub_c, sub_l = counted[np.ix_(common, common)], learned[np.ix_(common, common)]
    vmax = max(sub_c.max(), sub_l.max())
    fig = Figure(760, 440)
    cell = 22
    heatmap(fig, 60, 50, cell, sub_c, vmax, "counted", row_labels=labels, col_labels=labels,
            gamma=0.5)
    heatmap(fig, 430, 50, cell, sub_l, vmax, "learned by gradient descent", row_labels=labels,
            col_labels=labels, gamma=0.5)
    fig.text(380, 400, "row: the current character; column: the next one (the 14 commonest "
             f"of {V});", size=11)
    fig.text(380, 416, f"shade: √(P / {vmax:.2f}), so that small probabilities show", size=11)
    return fig


# ----------------------------------------------------------------------------- step 7


def residual_stds() -> Figure:
    """The residual stream's std after each of 12 blocks, with the two initialisations."""
    plain, scaled = quietly(step("07_transformer_block").initialisation, 12, 64, 32)
    fig = Figure(560, 330)
    top = math.ceil(max(plain) * 50) / 50
    ax = Axes(fig, 70, 30, 460, 250, (0, len(plain) - 1), (0, top),
              "residual stream std at initialisation", "blocks applied", "std",
              xticks=range(0, len(plain), 2), yticks=np.arange(0, top + 1e-9, 0.02),
              tick_format="{:g}")
    layers = range(len(plain))
    ax.plot(layers, plain, RED, "c_proj std 0.02", marker=True)
    ax.plot(layers, scaled, BLUE, "c_proj std 0.02 / √24", marker=True)
    return fig


# ----------------------------------------------------------------------------- steps 8, 9


def trained_gpt():
    """Step 8's loop on the tiny preset for 300 steps: the model and its history."""
    cfg = TrainConfig(**{**PRESETS["tiny"], "max_iters": 300, "eval_interval": 25})
    return quietly(step("08_gpt").train, cfg)


def training_curves(history: dict) -> Figure:
    """Training loss of every step, validation loss every 25, and the learning rate."""
    steps = range(1, len(history["train_loss"]) + 1)
    fig = Figure(860, 340)
    losses = history["train_loss"] + [v for _, v in history["val"]]
    bottom, top = math.floor(min(losses) * 2) / 2, math.ceil(max(losses) * 2) / 2
    ax = Axes(fig, 60, 30, 420, 250, (0, len(steps)), (bottom, top), "loss (tiny preset)",
              "step", "cross-entropy", xticks=range(0, len(steps) + 1, 50),
              yticks=np.arange(bottom, top + 1e-9, 0.5))
    ax.plot(steps, history["train_loss"], GREY, "training batch")
    val_steps, val = zip(*history["val"])
    ax.plot(val_steps, val, RED, "validation", marker=True)
    lr_top = max(history["lr"]) * 1.1
    ax2 = Axes(fig, 570, 30, 260, 250, (0, len(steps)), (0, lr_top), "learning rate", "step",
               xticks=range(0, len(steps) + 1, 100),
               yticks=np.linspace(0, max(history["lr"]), 5), tick_format="{:.1e}")
    ax2.plot(steps, history["lr"], PURPLE, "")
    fig.text(700, 325, "warm-up, then half a cosine down to min_lr", size=11)
    return fig


def sampling_bars(model, tok) -> Figure:
    """The next-token distribution after a prompt under each setting, 12 likeliest tokens."""
    sampling = step("09_sampling")
    context = "def __init__(self"
    dists = sampling.next_token_distributions(model, tok.encode(context))
    top = np.argsort(-dists["temperature 1"])[:12]
    fig = Figure(900, 360)
    fig.text(450, 18, f"P(next character | {context!r}), the 12 likeliest at temperature 1",
             size=13, bold=True)
    colours = [BLUE, BLUE, BLUE, GREEN, ORANGE]
    vmax = max(d[top].max() for d in dists.values())
    for panel, (name, probs) in enumerate(dists.items()):
        x0 = 40 + panel * 175
        fig.text(x0 + 70, 45, name, size=12, bold=True)
        for row, i in enumerate(top):
            y = 58 + row * 23
            fig.text(x0 - 4, y + 14, char_label(tok.decode([int(i)])), size=11, anchor="end")
            w = 130 * probs[i] / vmax
            fig.rect(x0, y, w, 18, colours[panel] if probs[i] > 0 else "none", "#999999")
            fig.text(x0 + w + 3, y + 13, f"{probs[i]:.2f}", size=9, anchor="start")
        fig.text(x0 + 70, 350, f"{sampling.effective_choices(probs):.1f} effective choices",
                 size=10)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model, tok, _, history = trained_gpt()
    model.eval()
    pictures = {"tutorial_01_graph.svg": scalar_graph,
                "tutorial_02_broadcast.svg": broadcast_gradient,
                "tutorial_03_tanh.svg": tanh_derivatives,
                "tutorial_04_mlp.svg": mlp_boundary_and_curves,
                "tutorial_05_attention.svg": attention_heatmaps,
                "tutorial_06_bigram.svg": bigram_tables,
                "tutorial_07_init.svg": residual_stds,
                "tutorial_08_training.svg": lambda: training_curves(history),
                "tutorial_09_sampling.svg": lambda: sampling_bars(model, tok)}
    for name, draw in pictures.items():
        path = args.out / name
        path.write_text(draw().svg(), encoding="utf-8")
        print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
