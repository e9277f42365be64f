"""Step 7: a Transformer block by hand, checked against ``models.gpt.Block``.

Everything the GPT adds around step 5's attention: token and position embeddings (a
lookup is a one-hot matrix product), LayerNorm, the GELU MLP, residual connections, the
pre-LayerNorm block, and the initialisation that keeps the residual stream's scale the same
at every depth. Each piece is written from Tensor operations and compared with the library.

    python examples/tutorial/07_transformer_block.py [--quick]
"""
from __future__ import annotations

import argparse
import math
from importlib import import_module
from typing import Sequence

import numpy as np

import tinygrad_lm as tl
from tinygrad_lm import nn
from tinygrad_lm.models.gpt import GPT, MLP, Block, GPTConfig

from _tutorial import check  # this folder's shared helper

multi_head = import_module("05_attention").multi_head  # step 5's attention, reused as is


def max_diff(a: tl.Tensor, b: tl.Tensor) -> float:
    """The largest absolute elementwise difference."""
    return float(np.abs(a.numpy() - b.numpy()).max())


# ----------------------------------------------------------------------------- the pieces


def embed(idx: np.ndarray, wte: tl.Tensor, wpe: tl.Tensor) -> tl.Tensor:
    """Token ids (B, T) to vectors (B, T, C): a row of wte per token plus a row of wpe per
    position. Picking row i is multiplying by the one-hot vector e_i, written out here."""
    V, T = wte.shape[0], idx.shape[1]
    one_hot = tl.Tensor(np.eye(V, dtype=np.float32)[idx])  # (B, T, V): a single 1 per row
    return one_hot @ wte + wpe[:T]  # (B, T, C) + (T, C): the positions broadcast over B


def layer_norm(x: tl.Tensor, weight: tl.Tensor, bias: tl.Tensor, eps: float = 1e-5) -> tl.Tensor:
    """Each vector of the last axis to mean 0 and variance 1, then a learned scale and shift."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # divided by C, not C - 1
    return (x - mu) / (var + eps).sqrt() * weight + bias


def gelu(x: tl.Tensor) -> tl.Tensor:
    """x Phi(x), with Phi the standard normal CDF: a ReLU whose corner is rounded."""
    return 0.5 * x * (1 + (x / math.sqrt(2)).erf())


def mlp(x: tl.Tensor, m: MLP) -> tl.Tensor:
    """Widen each position's vector 4x, GELU, project back: (B, T, C) -> (B, T, C)."""
    return m.c_proj(gelu(m.c_fc(x)))


def block(x: tl.Tensor, b: Block, n_head: int) -> tl.Tensor:
    """Pre-LayerNorm: each sub-layer reads a normalised copy of the residual stream x and
    adds its output to x, which itself is never normalised or scaled."""
    x = x + multi_head(layer_norm(x, b.ln_1.weight, b.ln_1.bias), b.attn.c_attn,
                       b.attn.c_proj, n_head)
    return x + mlp(layer_norm(x, b.ln_2.weight, b.ln_2.bias), b.mlp)


# ----------------------------------------------------------------------------- the checks


def check_embeddings(V: int, C: int, T: int) -> None:
    """The one-hot product equals the library's lookup, and its gradient is a scatter-add:
    row v of d wte is the sum of d out over the positions that hold token v."""
    tl.manual_seed(0)
    wte, wpe = nn.Embedding(V, C), nn.Embedding(T, C)
    idx = np.random.default_rng(0).integers(0, V, size=(2, T))
    ours, theirs = embed(idx, wte.weight, wpe.weight), wte(idx) + wpe(np.arange(T))
    dout = tl.randn(2, T, C)
    grads_ours = tl.grad((ours * dout).sum(), [wte.weight, wpe.weight])
    grads_theirs = tl.grad((theirs * dout).sum(), [wte.weight, wpe.weight])
    scatter = np.zeros((V, C), dtype=np.float32)
    np.add.at(scatter, idx.reshape(-1), dout.numpy().reshape(-1, C))
    check(max_diff(ours, theirs) == 0, "one_hot @ wte + wpe equals the lookups")
    check(np.allclose(grads_ours[0].numpy(), scatter, atol=1e-6)
          and max_diff(grads_ours[0], grads_theirs[0]) < 1e-6,
          "d wte is d out scatter-added to the rows of the tokens used")
    check(max_diff(grads_ours[1], grads_theirs[1]) < 1e-6, "d wpe is d out summed over the batch")


def check_layer_norm(C: int) -> None:
    """Our composition against nn.LayerNorm's fused op, values and the three gradients."""
    tl.manual_seed(1)
    ln = nn.LayerNorm(C)
    ln.weight.data[...] = tl.randn(C).data  # not the ones and zeros of a fresh layer
    ln.bias.data[...] = tl.randn(C).data
    x = (tl.randn(4, C) * 3 + 1).requires_grad_()
    ours, theirs = layer_norm(x, ln.weight, ln.bias), ln(x)
    y = layer_norm(x, tl.ones(C), tl.zeros(C)).numpy()
    print(f"  normalised rows: mean {np.abs(y.mean(-1)).max():.1e}, variance "
          f"{y.var(-1).min():.4f} to {y.var(-1).max():.4f}")
    wanted = [x, ln.weight, ln.bias]
    dout = tl.randn(4, C)
    worst = max(max_diff(a, b) for a, b in zip(tl.grad((ours * dout).sum(), wanted),
                                               tl.grad((theirs * dout).sum(), wanted)))
    check(max_diff(ours, theirs) < 1e-5, "layer_norm equals nn.LayerNorm")
    check(worst < 1e-4, "and so do its gradients for x, weight and bias")


def check_block(B: int, T: int, C: int, n_head: int) -> None:
    """Our block against the GPT's Block with the same weights: output and every gradient."""
    tl.manual_seed(2)
    config = GPTConfig(block_size=T, n_embd=C, n_head=n_head)
    b = Block(config)
    x = tl.randn(B, T, C, requires_grad=True)
    check(max_diff(mlp(x, b.mlp), b.mlp(x)) < 1e-5, "mlp with our gelu equals the GPT's MLP")
    ours, theirs = block(x, b, n_head), b(x)
    wanted = [x] + [p for _, p in b.named_parameters()]
    grads_ours = tl.grad(ours.sum(), wanted)
    grads_theirs = tl.grad(theirs.sum(), wanted)
    worst = max(max_diff(g, h) for g, h in zip(grads_ours, grads_theirs))
    print(f"  x of shape {x.shape}: output difference {max_diff(ours, theirs):.1e}, largest "
          f"gradient difference {worst:.1e} over x and {len(wanted) - 1} parameters (float32)")
    check(max_diff(ours, theirs) < 1e-5, "our block equals models.gpt.Block")
    check(worst < 1e-4, "and so do the gradients for x and every parameter")


def stream_stds(model: GPT, x: tl.Tensor) -> list[float]:
    """The residual stream's standard deviation after the embeddings and after each block."""
    stds = [float(x.numpy().std())]
    for b in model.transformer.h:
        x = b(x)
        stds.append(float(x.numpy().std()))
    return stds


@tl.no_grad()
def initialisation(n_layer: int, C: int, T: int) -> tuple[list[float], list[float]]:
    """The GPT's init (N(0, 0.02), the projections into the stream 0.02 / sqrt(2 n_layer))
    against the same without the scaled projections: the stream's std layer by layer."""
    tl.manual_seed(3)
    model = GPT(GPTConfig(block_size=T, vocab_size=64, n_layer=n_layer, n_head=4, n_embd=C))
    idx = np.random.default_rng(0).integers(0, 64, size=(8, T))
    x = model.transformer.wte(idx) + model.transformer.wpe(np.arange(T))  # (8, T, C)
    scaled = stream_stds(model, x)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):  # every sub-layer's last Linear writes to the stream
            p.data[...] = tl.randn(*p.shape).data * 0.02
    plain = stream_stds(model, x)
    print(f"  residual stream std over {n_layer} blocks, embeddings then each block:")
    print("    std 0.02 everywhere:         " + " ".join(f"{s:.3f}" for s in plain))
    print(f"    0.02 / sqrt(2 * {n_layer}) on c_proj: " + " ".join(f"{s:.3f}" for s in scaled))
    growth_plain, growth_scaled = plain[-1] / plain[0], scaled[-1] / scaled[0]
    check(growth_scaled < 0.75 * growth_plain,
          "the scaled projections keep the stream's growth well below the plain init's")
    return plain, scaled


def residual_gradients(n_layer: int, C: int, T: int) -> None:
    """d loss / d x at the bottom of a stack of blocks, with and without the x + ..."""
    tl.manual_seed(4)
    model = GPT(GPTConfig(block_size=T, vocab_size=64, n_layer=n_layer, n_head=4, n_embd=C))
    norms = {}
    for residual in (True, False):
        x = tl.randn(2, T, C, requires_grad=True)
        h = x
        for b in model.transformer.h:
            if residual:
                h = b(h)
            else:  # the same sub-layers, each replacing the stream instead of adding to it
                h = b.attn(b.ln_1(h))
                h = b.mlp(b.ln_2(h))
        (dx,) = tl.grad(h.sum(), x)
        norms[residual] = float(np.linalg.norm(dx.numpy()))
    print(f"  |d sum(out) / d x| through {n_layer} blocks: {norms[True]:.3g} with the residual "
          f"connections, {norms[False]:.3g} without")
    check(norms[True] > 1000 * norms[False],
          "the residual connections carry over 1000 times more gradient to the input")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes")
    args = parser.parse_args(argv)
    B, T, C, n_head, n_layer = (2, 8, 16, 2, 8) if args.quick else (4, 32, 64, 4, 12)
    print("1. embeddings: a lookup is a one-hot product")
    check_embeddings(V=10, C=C, T=T)
    print("2. LayerNorm")
    check_layer_norm(C)
    print("3. the block: attention and MLP, each added to the residual stream")
    check_block(B, T, C, n_head)
    print("4. residual connections carry the gradient")
    residual_gradients(n_layer, C=32, T=T)
    print("5. initialisation")
    initialisation(n_layer, C=64, T=T)


if __name__ == "__main__":
    main()
