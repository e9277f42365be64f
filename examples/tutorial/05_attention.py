"""Step 5: causal self-attention written by hand from Tensor ops, then checked against the
library's fused ``F.scaled_dot_product_attention`` and the GPT's attention layer.

The fused op computes the same function with one graph node and a backward derived by hand
(docs/layers.md); this script shows that its output and its gradients equal those of the
composition, that it is causal, and that the GPT's ``CausalSelfAttention`` is exactly the
hand-written multi-head version.

    python examples/tutorial/05_attention.py [--quick]
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

import numpy as np

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import nn
from tinygrad_lm.models.gpt import CausalSelfAttention, GPTConfig

from _tutorial import check  # this folder's shared helper


def causal_weights(q: tl.Tensor, k: tl.Tensor) -> tl.Tensor:
    """softmax(q k^T / sqrt(hs), future masked out) for q, k of shape (B, nh, T, hs)."""
    T, hs = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T, T): query row, key column
    future = tl.Tensor(np.triu(np.ones((T, T), dtype=bool), k=1))  # key after query: hidden
    scores = scores.masked_fill(future, -math.inf)  # exp(-inf) = 0: no weight on the future
    return scores.softmax(axis=-1)  # each row sums to 1


def causal_attention(q: tl.Tensor, k: tl.Tensor, v: tl.Tensor) -> tl.Tensor:
    """Each position's output: the average of the values, weighted by causal_weights."""
    return causal_weights(q, k) @ v  # (B, nh, T, hs)


def fused_attention(q: tl.Tensor, k: tl.Tensor, v: tl.Tensor) -> tl.Tensor:
    """The same computation as one graph node."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def graph_nodes(t: tl.Tensor) -> list[str]:
    """The names of the distinct nodes below ``t``: what its backward will visit."""
    names, seen, stack = [], set(), [t]
    while stack:
        node = stack.pop().grad_fn
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.append(node.name)
        stack.extend(node.parents)
    return names


def max_diff(a: tl.Tensor, b: tl.Tensor) -> float:
    """The largest absolute elementwise difference."""
    return float(np.abs(a.numpy() - b.numpy()).max())


def compare_with_fused(B: int, nh: int, T: int, hs: int) -> None:
    """Outputs and gradients of both versions, in float64 so they must agree to ~1e-12."""
    q, k, v = (tl.randn(B, nh, T, hs, dtype=tl.float64, requires_grad=True) for _ in range(3))
    dout = tl.randn(B, nh, T, hs, dtype=tl.float64)  # an arbitrary upstream gradient
    results = {}
    for name, attention in (("by hand", causal_attention), ("fused", fused_attention)):
        out = attention(q, k, v)
        nodes = graph_nodes(out)
        grads = tl.grad((out * dout).sum(), [q, k, v])
        results[name] = (out, grads)
        print(f"  {name:>7}: a graph of {len(nodes)}: {', '.join(reversed(nodes))}")
    (out_h, grads_h), (out_f, grads_f) = results["by hand"], results["fused"]
    print(f"  q, k, v of shape {q.shape}: largest difference {max_diff(out_h, out_f):.1e} in "
          f"the output, {max(max_diff(a, b) for a, b in zip(grads_h, grads_f)):.1e} in the "
          "gradients")
    check(max_diff(out_h, out_f) < 1e-12, "the fused forward equals the composition")
    for label, gh, gf in zip("qkv", grads_h, grads_f):
        check(max_diff(gh, gf) < 1e-12, f"the fused gradient for {label} equals the composition's")
    small = [t.detach().requires_grad_() for t in (q[:1, :1, :4], k[:1, :1, :4], v[:1, :1, :4])]
    check(tl.gradcheck(fused_attention, small), "gradcheck of the fused op (central differences)")


def check_causal(T: int, hs: int) -> None:
    """Changing the last position's key and value must leave every earlier output as is."""
    q, k, v = (tl.randn(1, 1, T, hs) for _ in range(3))
    before = fused_attention(q, k, v).numpy()
    k2, v2 = k.numpy().copy(), v.numpy().copy()
    k2[..., -1, :] += 5.0
    v2[..., -1, :] -= 5.0
    after = fused_attention(q, tl.Tensor(k2), tl.Tensor(v2)).numpy()
    changed = np.abs(after - before).max(axis=-1)[0, 0]  # (T,): per query position
    print(f"  changing position {T - 1}'s key and value moves the outputs at positions "
          f"{np.flatnonzero(changed > 0).tolist()}")
    check(bool(np.all(changed[:-1] == 0)) and changed[-1] > 0,
          "only the last position sees the last position")


def multi_head(x: tl.Tensor, c_attn: nn.Linear, c_proj: nn.Linear, n_head: int) -> tl.Tensor:
    """Multi-head causal self-attention from (B, T, C) to (B, T, C), written out."""
    B, T, C = x.shape
    q, k, v = c_attn(x).split(C, axis=2)  # three (B, T, C) projections of the same input

    def heads(t: tl.Tensor) -> tl.Tensor:  # (B, T, C) -> (B, nh, T, hs): heads become a batch axis
        return t.reshape(B, T, n_head, C // n_head).transpose(1, 2)

    y = causal_attention(heads(q), heads(k), heads(v))  # (B, nh, T, hs)
    return c_proj(y.transpose(1, 2).reshape(B, T, C))  # heads side by side again, then mixed


def compare_with_gpt_layer(B: int, T: int, C: int, n_head: int) -> None:
    """The GPT's CausalSelfAttention against multi_head() with the same weights (float32)."""
    layer = CausalSelfAttention(GPTConfig(block_size=T, n_embd=C, n_head=n_head))
    x = tl.randn(B, T, C, requires_grad=True)
    wanted = [x, layer.c_attn.weight, layer.c_proj.weight]
    out_gpt = layer(x)
    out_hand = multi_head(x, layer.c_attn, layer.c_proj, n_head)
    grads_gpt = tl.grad(out_gpt.sum(), wanted)
    grads_hand = tl.grad(out_hand.sum(), wanted)
    worst = max(max_diff(a, b) for a, b in zip(grads_gpt, grads_hand))
    print(f"  x of shape {x.shape}, {n_head} heads: output difference "
          f"{max_diff(out_gpt, out_hand):.1e}, gradient difference {worst:.1e} (float32)")
    check(max_diff(out_gpt, out_hand) < 1e-5, "CausalSelfAttention equals the hand-written one")
    check(worst < 1e-4, "and so do its gradients for x, c_attn.weight and c_proj.weight")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes")
    args = parser.parse_args(argv)
    tl.manual_seed(0)
    B, nh, T, hs = (2, 2, 6, 6) if args.quick else (4, 4, 64, 12)
    print("1. by hand against the fused op")
    compare_with_fused(B, nh, T, hs)
    print("2. causality")
    check_causal(T, hs)
    print("3. the GPT's attention layer")
    compare_with_gpt_layer(B, T, nh * hs, nh)


if __name__ == "__main__":
    main()
