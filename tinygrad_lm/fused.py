"""Fused hot paths: graph nodes that save what their backward needs and call a kernel.

Composed of primitives, softmax or layer norm would record a dozen nodes and keep a dozen
temporaries; fused, each is one node. The arithmetic lives in the kernel layer
(tinygrad_lm/kernels: ``reference.py`` reads like the derivations in docs/layers.md,
``cpu.py`` and ``cuda.py`` run the same math compiled); a node here only picks the kernels
for its arrays (``kernels.for_array``), calls them and keeps their results for backward.

Each class also keeps its composition of primitives as ``reference``: the tests check that
both agree (forward and backward), and the engine differentiates ``reference`` when a
higher-order gradient is asked for (``create_graph=True``).
"""
from __future__ import annotations

import math
from typing import Any

from . import backend, kernels
from .autograd import Function
from .tensor import Tensor, cat, where


def _xp(array: Any) -> Any:
    return backend.device_of(array).xp


class Softmax(Function):
    """y = exp(x) / sum exp(x); dx = y * (dout - sum(dout * y))."""

    @staticmethod
    def forward(ctx, x, axis):
        y = kernels.for_array(x).softmax(x, axis)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dout):
        (y,) = ctx.saved_tensors
        return kernels.for_array(y).softmax_backward(y, dout, ctx.kwargs["axis"])

    @staticmethod
    def reference(x: Tensor, axis: int) -> Tensor:
        e = (x - x.max(axis, keepdims=True).detach()).exp()
        return e / e.sum(axis, keepdims=True)


class LogSoftmax(Function):
    """y = x - logsumexp(x); dx = dout - exp(y) * sum(dout)."""

    @staticmethod
    def forward(ctx, x, axis):
        y = kernels.for_array(x).log_softmax(x, axis)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dout):
        (y,) = ctx.saved_tensors
        return kernels.for_array(y).log_softmax_backward(y, dout, ctx.kwargs["axis"])

    @staticmethod
    def reference(x: Tensor, axis: int) -> Tensor:
        return x - x.logsumexp(axis, keepdims=True)


class CrossEntropy(Function):
    """Per-row loss -log softmax(z)[t] of logits z (N, C) and targets t (N,), 0 where
    t == ignore_index; d loss_i / dz_i = softmax(z_i) - onehot(t_i). With ``reduction``
    "sum" or "mean" the node returns the rows' sum or their mean over the ``count`` rows
    whose target counts, and backward spreads dout (or dout / count) over the rows: one node
    where the per-row losses, a sum and a scaling would be three.

    It keeps the logits (the graph holds them anyway) and each row's logsumexp: softmax(z)
    = exp(z - logsumexp(z)) comes back in backward with no N x C array kept in between.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index, reduction="none", count=1):
        losses, log_norm = kernels.for_array(logits).cross_entropy(logits, targets, ignore_index)
        ctx.save_for_backward(logits, log_norm, targets)
        if reduction == "none":
            return losses
        total = losses.sum(dtype=losses.dtype)
        return total if reduction == "sum" else total * losses.dtype.type(1.0 / count)

    @staticmethod
    def backward(ctx, dout):
        logits, log_norm, targets = ctx.saved_tensors
        reduction, count = ctx.kwargs.get("reduction", "none"), ctx.kwargs.get("count", 1)
        if reduction != "none":  # d(sum)/d loss_i = 1, d(mean)/d loss_i = 1 / count
            xp = _xp(logits)
            scale = xp.asarray(dout if reduction == "sum" else dout * (1.0 / count), logits.dtype)
            dout = xp.broadcast_to(scale, targets.shape)
        return kernels.for_array(logits).cross_entropy_backward(
            logits, log_norm, targets, ctx.kwargs["ignore_index"], dout), None

    @staticmethod
    def reference(logits: Tensor, targets: Tensor, ignore_index: int, reduction: str = "none",
                  count: int = 1) -> Tensor:
        valid = targets != ignore_index
        safe = where(valid, targets, 0)
        picked = logits.log_softmax(axis=1)[Tensor.arange(logits.shape[0], device=logits.device), safe]
        losses = -picked * valid.astype(logits.dtype)
        if reduction == "none":
            return losses
        return losses.sum() if reduction == "sum" else losses.sum() * (1.0 / count)


class LayerNorm(Function):
    """y = xhat * w + b with xhat = (x - mean) * rstd over the last axis;
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) where g = dout * w.

    It keeps x and each row's mean and rstd (xhat is rebuilt from them in backward, in the
    same pass that uses it).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        rows = x.reshape(-1, x.shape[-1])
        y, mean, rstd = kernels.for_array(x).layer_norm(rows, weight, bias, eps)
        ctx.save_for_backward(rows, mean, rstd, weight)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dout):
        rows, mean, rstd, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        dx, dw, db = kernels.for_array(rows).layer_norm_backward(
            dout.reshape(rows.shape), rows, mean, rstd, weight)
        return (dx.reshape(dout.shape) if need_x else None), (dw if need_w else None), \
            (db if need_b else None)

    @staticmethod
    def reference(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        centered = x - x.mean(-1, keepdims=True)
        y = centered / ((centered * centered).mean(-1, keepdims=True) + eps).sqrt()
        if weight is not None:
            y = y * weight
        return y + bias if bias is not None else y


class RMSNorm(Function):
    """y = xhat * w with xhat = x * rstd, rstd = 1 / sqrt(mean(x^2) + eps) over the last axis;
    dx = rstd * (g - xhat * mean(g * xhat)) where g = dout * w.

    It keeps x and each row's rstd (xhat is rebuilt from them in backward).
    """

    @staticmethod
    def forward(ctx, x, weight, eps):
        rows = x.reshape(-1, x.shape[-1])
        y, rstd = kernels.for_array(x).rms_norm(rows, weight, eps)
        ctx.save_for_backward(rows, rstd, weight)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dout):
        rows, rstd, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        dx, dw = kernels.for_array(rows).rms_norm_backward(dout.reshape(rows.shape), rows, rstd,
                                                           weight)
        return (dx.reshape(dout.shape) if need_x else None), (dw if need_w else None)

    @staticmethod
    def reference(x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
        y = x / ((x * x).mean(-1, keepdims=True) + eps).sqrt()
        return y * weight if weight is not None else y


class SwiGLU(Function):
    """The gate of a SwiGLU MLP: y = silu(a) * b with silu(a) = a sigmoid(a);
    da = dout * b * s (1 + a (1 - s)) with s = sigmoid(a), db = dout * silu(a).

    It keeps a and b (the graph holds them anyway: they are the outputs of w1 and w3);
    backward recomputes sigmoid(a) in the pass that uses it.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels.for_array(a).swiglu(a, b)

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        da, db = kernels.for_array(a).swiglu_backward(a, b, dout)
        return (da if need_a else None), (db if need_b else None)

    @staticmethod
    def reference(a: Tensor, b: Tensor) -> Tensor:
        return a * a.sigmoid() * b


class Rotary(Function):
    """RoPE: each pair (x1, x2) of x's last axis turns by its position's angle theta,
    (x1 cos - x2 sin, x1 sin + x2 cos); a rotation's transpose turns it back, so
    dx = the same rotation of dout by -theta.

    It keeps only the (T, d/2) cos and sin tables: backward needs no x.
    """

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return kernels.for_array(x).rotary(x, cos, sin)

    @staticmethod
    def backward(ctx, dout):
        cos, sin = ctx.saved_tensors
        return kernels.for_array(dout).rotary(dout, cos, -sin), None, None

    @staticmethod
    def reference(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


class Linear(Function):
    """y = x W^T + b over the last axis of x, the leading axes folded into one GEMM;
    dx = dout W, dW = dout^T x, db = sum of dout over the leading axes.

    Composed, the product and the sum would be two nodes, and the graph would keep the
    product alive until backward although nothing needs it; fused, the bias is added in
    place and only x and W are kept.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        rows = x.reshape(-1, x.shape[-1])  # a view unless x is a non-contiguous view
        out = rows @ weight.T
        if bias is not None:
            out += bias
        ctx.save_for_backward(rows, weight)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, dout):
        rows, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        dout_rows = dout.reshape(-1, dout.shape[-1])
        dx = (dout_rows @ weight).reshape(dout.shape[:-1] + (weight.shape[1],)) if need_x else None
        dw = dout_rows.T @ rows if need_w else None
        db = kernels.for_array(dout_rows).bias_backward(dout_rows) if need_b else None
        return dx, dw, db

    @staticmethod
    def reference(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        y = x @ weight.transpose(0, 1)
        return y + bias if bias is not None else y


class Gelu(Function):
    """Exact: y = x Phi(x), dy/dx = Phi(x) + x phi(x). Tanh form: y = x (1 + tanh u) / 2 with
    u = sqrt(2/pi) (x + 0.044715 x^3), dy/dx = (1 + t)/2 + x (1 - t^2) u'(x) / 2.

    It keeps only x: backward recomputes Phi(x) (or tanh u) in the pass that uses it.
    """

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        return kernels.for_array(x).gelu(x, approximate)

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        return kernels.for_array(x).gelu_backward(x, dout, ctx.kwargs["approximate"])

    @staticmethod
    def reference(x: Tensor, approximate: str) -> Tensor:
        if approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + inner.tanh())
        return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


class Attention(Function):
    """O = dropout(softmax(q k^T * scale + mask)) v over the last two axes, batched.
    With P the attention weights and dS the gradient of the scores:
    dv = P^T dO, dP = dO v^T, dS = P * (dP - sum(dP * P)), dq = dS k * scale, dk = dS^T q * scale.

    The weights P have a row per query and a column per key: at block 256 they outweigh q, k
    and v together. So forward keeps only each row's log-sum-exp L, and backward recomputes
    P = exp(q k^T * scale + mask - L), one extra matmul for a fraction of the memory (as
    flash attention does).
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, keep):
        out = _xp(q).empty(q.shape[:-1] + (v.shape[-1],), q.dtype)
        log_sum_exp = kernels.for_array(q).attention(q, k, v, mask, scale, keep, out)
        ctx.save_for_backward(q, k, v, log_sum_exp, out)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, log_sum_exp, out = ctx.saved_tensors
        dq, dk, dv = (_xp(q).empty_like(a) for a in (q, k, v))
        kernels.for_array(q).attention_backward(q, k, v, ctx.kwargs["mask"], ctx.kwargs["scale"],
                                                ctx.kwargs["keep"], log_sum_exp, out, dout,
                                                dq, dk, dv)
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        return (dq if need_q else None), (dk if need_k else None), (dv if need_v else None)

    @staticmethod
    def reference(q: Tensor, k: Tensor, v: Tensor, mask: Any, scale: float, keep: Any) -> Tensor:
        scores = q @ k.transpose(-1, -2) * scale
        if mask is not None:
            scores = scores + Tensor._make(mask)
        weights = scores.softmax(-1)
        if keep is not None:
            weights = weights * Tensor._make(keep)
        return weights @ v


def _heads(packed: Any, n_head: int) -> Any:
    """(B, T, 3C) packed q, k, v as a (3, B, n_head, T, C / n_head) view: no copy."""
    B, T, width = packed.shape
    return packed.reshape(B, T, 3, n_head, width // (3 * n_head)).transpose(2, 0, 3, 1, 4)


def _split_heads(merged: Any, n_head: int) -> Any:
    """(B, T, C) merged heads as a (B, n_head, T, C / n_head) view: no copy."""
    B, T, width = merged.shape
    return merged.reshape(B, T, n_head, width // n_head).transpose(0, 2, 1, 3)


class PackedAttention(Function):
    """Multi-head attention from the packed projections qkv = [q | k | v] (B, T, 3C) to the
    merged heads (B, T, C): the heads are strided views, so nothing is split or copied, and
    the gradient is written straight into one (B, T, 3C) array. The math is Attention's.
    """

    @staticmethod
    def forward(ctx, qkv, n_head, mask, scale, keep):
        B, T, width = qkv.shape
        out = _xp(qkv).empty((B, T, width // 3), qkv.dtype)
        out_heads = _split_heads(out, n_head)
        log_sum_exp = kernels.for_array(qkv).attention(*_heads(qkv, n_head), mask, scale, keep,
                                                       out_heads)
        ctx.save_for_backward(qkv, log_sum_exp, out_heads)  # out: c_proj keeps it anyway
        return out

    @staticmethod
    def backward(ctx, dout):
        qkv, log_sum_exp, out_heads = ctx.saved_tensors
        n_head = ctx.kwargs["n_head"]
        dqkv = _xp(qkv).empty_like(qkv)
        kernels.for_array(qkv).attention_backward(
            *_heads(qkv, n_head), ctx.kwargs["mask"], ctx.kwargs["scale"], ctx.kwargs["keep"],
            log_sum_exp, out_heads, _split_heads(dout, n_head), *_heads(dqkv, n_head))
        return dqkv

    @staticmethod
    def reference(qkv: Tensor, n_head: int, mask: Any, scale: float, keep: Any) -> Tensor:
        B, T, width = qkv.shape
        q, k, v = (part.reshape(B, T, n_head, width // (3 * n_head)).transpose(1, 2)
                   for part in qkv.split(width // 3, axis=2))
        out = Attention.reference(q, k, v, mask, scale, keep)  # (B, nh, T, hs)
        return out.transpose(1, 2).reshape(B, T, width // 3)


class Embedding(Function):
    """out = weight[ids]: a row of the table per id; dweight[r] = sum of dout's rows whose id
    is r (a scatter-add). The ids carry no gradient."""

    @staticmethod
    def forward(ctx, weight, ids, num_embeddings):
        ctx.save_for_backward(ids)
        return weight[ids]

    @staticmethod
    def backward(ctx, dout):
        (ids,) = ctx.saved_tensors
        num_embeddings = ctx.kwargs["num_embeddings"]
        return kernels.for_array(dout).embedding_backward(ids, dout, num_embeddings), None

    @staticmethod
    def reference(weight: Tensor, ids: Tensor, num_embeddings: int) -> Tensor:
        return weight[ids]
