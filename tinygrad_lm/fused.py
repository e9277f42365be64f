"""Fused hot paths: one forward and one hand-derived backward on raw arrays each.

Composed of primitives, softmax or layer norm would record a dozen nodes and keep a dozen
temporaries; fused, they keep what the backward needs and nothing else. Each class keeps its
composition of primitives as ``reference``: the tests check that both agree (forward and
backward), and the engine differentiates ``reference`` when a higher-order gradient is asked
for (``create_graph=True``). Derivations: docs/layers.md.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from . import backend, cuda_kernels, parallel
from .autograd import Function
from .tensor import Tensor, where


def _xp(array: Any) -> Any:
    return backend.device_of(array).xp


def _by_blocks(xp: Any, rows: int, row_elements: int, fn: Callable[[slice], None],
               uses_blas: bool = False) -> None:
    """``fn`` over blocks of rows on the CPU's threads (parallel.py); on a GPU, one call over
    all the rows (a kernel is already parallel)."""
    if xp is not backend.CPU.xp:
        fn(slice(None))
    else:
        parallel.for_blocks(rows, parallel.rows_per_block(row_elements, rows), fn, uses_blas)


def _row_sums(xp: Any, a: Any) -> Any:
    """Sums over the last axis, kept as a length-1 axis, by one matrix-vector product: BLAS
    runs it about 5x faster than NumPy's reduction over short rows (a LayerNorm row of 128,
    an attention row of 64)."""
    width = a.shape[-1]
    return (a.reshape(-1, width) @ xp.ones(width, a.dtype)).reshape(a.shape[:-1] + (1,))


def _column_sums(xp: Any, a: Any) -> Any:
    """Sums of the 2-d ``a`` over its rows by one vector-matrix product (2-3x faster than
    NumPy's reduction over axis 0)."""
    return xp.ones(a.shape[0], a.dtype) @ a


def _sum_in_order(partials: dict[Any, Any], zero: Any) -> Any:
    """``zero`` plus the per-block partial results, added in block order (the key None: the
    one GPU block), so the sum is the same whatever thread finished first."""
    total = zero
    for start in sorted(partials, key=lambda start: start or 0):
        total = total + partials[start]
    return total


def _softmax(x: Any, axis: int) -> Any:
    xp = _xp(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


class Softmax(Function):
    """y = exp(x) / sum exp(x); dx = y * (dout - sum(dout * y))."""

    @staticmethod
    def forward(ctx, x, axis):
        y = _softmax(x, axis)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dout):
        (y,) = ctx.saved_tensors
        axis = ctx.kwargs["axis"]
        return y * (dout - (dout * y).sum(axis=axis, keepdims=True))

    @staticmethod
    def reference(x: Tensor, axis: int) -> Tensor:
        e = (x - x.max(axis, keepdims=True).detach()).exp()
        return e / e.sum(axis, keepdims=True)


class LogSoftmax(Function):
    """y = x - logsumexp(x); dx = dout - exp(y) * sum(dout)."""

    @staticmethod
    def forward(ctx, x, axis):
        xp = _xp(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dout):
        (y,) = ctx.saved_tensors
        xp = _xp(y)
        return dout - xp.exp(y) * dout.sum(axis=ctx.kwargs["axis"], keepdims=True)

    @staticmethod
    def reference(x: Tensor, axis: int) -> Tensor:
        return x - x.logsumexp(axis, keepdims=True)


class CrossEntropy(Function):
    """Per-row loss -log softmax(z)[t] of logits z (N, C) and targets t (N,), 0 where
    t == ignore_index; d loss_i / dz_i = softmax(z_i) - onehot(t_i).

    It keeps the logits (the graph holds them anyway), each row's max m and
    log sum exp(z - m): softmax(z) = exp(z - m - log sum exp(z - m)) comes back in backward
    with no N x C array kept in between.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index):
        xp = _xp(logits)
        valid = targets != ignore_index
        safe = xp.where(valid, targets, 0)
        row_max = logits.max(axis=1, keepdims=True)
        if cuda_kernels.applies_to(xp):
            log_norm = cuda_kernels.run(cuda_kernels.LOG_SUM_EXP_SHIFTED, logits, row_max, axis=1)
        else:
            log_norm = xp.log(_row_sums(xp, xp.exp(logits - row_max))[:, 0])
        picked = logits[xp.arange(logits.shape[0]), safe] - row_max[:, 0]
        losses = (log_norm - picked) * valid
        ctx.save_for_backward(logits, row_max, log_norm, safe, valid)
        return losses

    @staticmethod
    def backward(ctx, dout):
        logits, row_max, log_norm, safe, valid = ctx.saved_tensors
        xp = _xp(logits)
        scale = (dout * valid)[:, None]
        if cuda_kernels.applies_to(xp):
            columns = xp.arange(logits.shape[1], dtype=xp.int64)  # (int8 ids would wrap)
            targets = safe[:, None].astype(xp.int64, copy=False)
            return cuda_kernels.run(cuda_kernels.CROSS_ENTROPY_BACKWARD, logits, row_max,
                                    log_norm[:, None], scale, targets, columns), None
        dlogits = logits - row_max  # softmax, in a fresh array
        dlogits -= log_norm[:, None]
        xp.exp(dlogits, out=dlogits)
        dlogits *= scale
        dlogits[xp.arange(logits.shape[0]), safe] -= scale[:, 0]
        return dlogits, None

    @staticmethod
    def reference(logits: Tensor, targets: Tensor, ignore_index: int) -> Tensor:
        valid = targets != ignore_index
        safe = where(valid, targets, 0)
        picked = logits.log_softmax(axis=1)[Tensor.arange(logits.shape[0], device=logits.device), safe]
        return -picked * valid.astype(logits.dtype)


class LayerNorm(Function):
    """y = xhat * w + b with xhat = (x - mean) * rstd over the last axis;
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) where g = dout * w.

    On the CPU both passes go over blocks of rows on the thread pool; the weight and bias
    gradients are summed per block, then over the blocks. On a GPU each pass is a row
    reduction or two and one elementwise kernel.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        xp = _xp(x)
        width = x.shape[-1]
        rows = x.reshape(-1, width)
        if cuda_kernels.applies_to(xp):
            mean = rows.mean(axis=1, keepdims=True)
            rstd = cuda_kernels.run(cuda_kernels.LAYER_NORM_RSTD, rows, mean, 1.0 / width, eps,
                                    axis=1, keepdims=True)
            xhat, y = cuda_kernels.run(cuda_kernels.LAYER_NORM_FORWARD, rows, mean, rstd,
                                       1 if weight is None else weight.astype(x.dtype, copy=False),
                                       0 if bias is None else bias.astype(x.dtype, copy=False))
            ctx.save_for_backward(xhat, rstd, weight)
            return y.reshape(x.shape)
        xhat = xp.empty_like(rows)
        rstd = xp.empty((rows.shape[0], 1), x.dtype)
        y = xp.empty_like(rows)
        inv_width = x.dtype.type(1.0 / width)

        def block(i: slice) -> None:
            mean = _row_sums(xp, rows[i])
            mean *= inv_width
            centered = xp.subtract(rows[i], mean, out=xhat[i])
            variance = _row_sums(xp, xp.square(centered))
            variance *= inv_width
            r = xp.sqrt(variance + eps, out=rstd[i])
            xp.divide(1, r, out=r)
            centered *= r  # xhat, in place
            if weight is None:
                y[i] = centered
            else:
                xp.multiply(centered, weight, out=y[i])
            if bias is not None:
                y[i] += bias

        _by_blocks(xp, rows.shape[0], width, block, uses_blas=True)  # (the row sums)
        ctx.save_for_backward(xhat, rstd, weight)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dout):
        xhat, rstd, weight = ctx.saved_tensors
        xp = _xp(xhat)
        need_x, need_w, need_b = ctx.needs_input_grad
        width = xhat.shape[-1]
        dout_rows = dout.reshape(-1, width)
        if cuda_kernels.applies_to(xp):
            dx = _layer_norm_dx_on_gpu(dout_rows, xhat, rstd, weight) if need_x else None
            dw = cuda_kernels.run(cuda_kernels.SUM_OF_PRODUCTS, dout_rows, xhat, axis=0) \
                if need_w else None
            db = dout_rows.sum(axis=0) if need_b else None
            return (dx.reshape(dout.shape) if need_x else None), dw, db
        dx = xp.empty_like(xhat) if need_x else None
        inv_width = xhat.dtype.type(1.0 / width)
        partial_w, partial_b = {}, {}  # by block: summed in block order, the same every run

        def block(i: slice) -> None:
            d = dout_rows[i]
            if need_w:
                partial_w[i.start] = _column_sums(xp, d * xhat[i])
            if need_b:
                partial_b[i.start] = _column_sums(xp, d)
            if need_x:
                g = d * weight if weight is not None else d.copy()
                g_mean = _row_sums(xp, g)
                g_mean *= inv_width
                gx_mean = _row_sums(xp, g * xhat[i])
                gx_mean *= inv_width
                g -= g_mean
                g -= xp.multiply(xhat[i], gx_mean, out=dx[i])
                xp.multiply(g, rstd[i], out=dx[i])

        _by_blocks(xp, xhat.shape[0], width, block, uses_blas=True)
        dw = _sum_in_order(partial_w, xp.zeros(width, xhat.dtype)) if need_w else None
        db = _sum_in_order(partial_b, xp.zeros(width, xhat.dtype)) if need_b else None
        return (dx.reshape(dout.shape) if need_x else None), dw, db

    @staticmethod
    def reference(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        centered = x - x.mean(-1, keepdims=True)
        y = centered / ((centered * centered).mean(-1, keepdims=True) + eps).sqrt()
        if weight is not None:
            y = y * weight
        return y + bias if bias is not None else y


def _layer_norm_dx_on_gpu(dout_rows: Any, xhat: Any, rstd: Any, weight: Any) -> Any:
    """LayerNorm's dx by two row reductions, mean(g) and mean(g xhat), and one kernel."""
    w = 1 if weight is None else weight.astype(xhat.dtype, copy=False)
    inv_width = 1.0 / xhat.shape[-1]
    mean_g = cuda_kernels.run(cuda_kernels.LAYER_NORM_MEAN_G, dout_rows, w, inv_width,
                              axis=1, keepdims=True)
    mean_gx = cuda_kernels.run(cuda_kernels.LAYER_NORM_MEAN_GX, dout_rows, w, xhat, inv_width,
                               axis=1, keepdims=True)
    return cuda_kernels.run(cuda_kernels.LAYER_NORM_BACKWARD, dout_rows, w, xhat, rstd, mean_g,
                            mean_gx)


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
        db = _column_sums(_xp(dout_rows), dout_rows) if need_b else None
        return dx, dw, db

    @staticmethod
    def reference(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        y = x @ weight.transpose(0, 1)
        return y + bias if bias is not None else y


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

_GELU_TAYLOR_BELOW = {2: 1e-2, 4: 1e-4, 8: 1e-8}
"""By itemsize: below this |x|, Phi(x) = 1/2 + x / sqrt(2 pi) to the dtype's precision (the
next term is x^3 / (6 sqrt(2 pi))), while y / x would lose digits to subnormals."""


def _batch_block(array: Any, i: slice, ndim: int) -> Any:
    """The rows ``i`` of a mask that may or may not have the batch axis of ``ndim``-d scores."""
    return array[i] if array.ndim == ndim and array.shape[0] != 1 else array


def _scores(xp: Any, scaled_q: Any, k: Any, mask: Any, i: slice, ndim: int) -> Any:
    """(q * scale) k^T + mask for the batch rows ``i``, in a fresh array."""
    scores = xp.matmul(scaled_q, xp.swapaxes(k[i], -1, -2))
    if mask is not None:
        scores += _batch_block(mask, i, ndim)
    return scores


def _by_batch_blocks(xp: Any, q: Any, k: Any, v: Any, fn: Callable[[slice], None]) -> None:
    """``fn`` over blocks of the leading (batch) axis, when q, k and v all have it unbroadcast;
    otherwise one call over everything."""
    if q.ndim < 3 or not q.shape[0] == k.shape[0] == v.shape[0] or \
            not q.ndim == k.ndim == v.ndim:
        fn(slice(None))
        return
    per_item = q.size // q.shape[0] // q.shape[-1] * k.shape[-2]  # scores per batch item
    _by_blocks(xp, q.shape[0], per_item, fn, uses_blas=True)


class Gelu(Function):
    """Exact: y = x Phi(x), dy/dx = Phi(x) + x phi(x). Tanh form: y = x (1 + tanh u) / 2 with
    u = sqrt(2/pi) (x + 0.044715 x^3), dy/dx = (1 + t)/2 + x (1 - t^2) u'(x) / 2.

    The exact form keeps its input and its output, and backward reads Phi(x) back as y / x
    (near 0, where that ratio is 0 / 0, from Phi's Taylor series): the next layer keeps y
    anyway, so saving Phi(x) as well would cost one more array of the input's size. On a GPU
    each direction is one kernel, and backward recomputes Phi(x) from x.
    """

    @staticmethod
    def forward(ctx, x, approximate):
        xp = _xp(x)
        if approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            ctx.save_for_backward(x, t)
            return 0.5 * x * (1.0 + t)
        if cuda_kernels.applies_to(xp):
            out = cuda_kernels.run(cuda_kernels.GELU_FORWARD, x)
            ctx.save_for_backward(x, out)
            return out
        x = x if x.flags.c_contiguous else xp.ascontiguousarray(x)  # (which makes 0-d 1-d)
        flat, out = x.reshape(-1), xp.empty_like(x)
        out_flat = out.reshape(-1)

        def block(i: slice) -> None:  # Phi(x) = (1 + erf(x / sqrt 2)) / 2, then x Phi(x)
            c = backend.erf(flat[i] * x.dtype.type(1.0 / math.sqrt(2.0)), out=out_flat[i])
            c += 1
            c *= 0.5
            c *= flat[i]

        _by_blocks(xp, x.size, 1, block)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, saved = ctx.saved_tensors
        xp = _xp(x)
        if ctx.kwargs["approximate"] == "tanh":
            du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
            return dout * (0.5 * (1.0 + saved) + 0.5 * x * (1.0 - saved * saved) * du)
        if cuda_kernels.applies_to(xp):  # one kernel from x alone: no 0 / 0 to avoid
            return cuda_kernels.run(cuda_kernels.GELU_BACKWARD, x, dout)
        flat, y, dout = x.reshape(-1), saved.reshape(-1), dout.reshape(-1)
        grad = xp.empty_like(flat)
        cast = x.dtype.type
        tiny = cast(_GELU_TAYLOR_BELOW[x.dtype.itemsize])

        def block(i: slice) -> None:  # dout * (Phi(x) + x pdf(x)), in place in grad[i]
            xi, g = flat[i], grad[i]
            with xp.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 is replaced below
                cdf = xp.divide(y[i], xi)  # Phi = y / x, or near 0 its Taylor series:
            near_zero = xp.abs(xi) < tiny
            if near_zero.any():
                xp.copyto(cdf, xi * cast(1.0 / math.sqrt(2.0 * math.pi)) + cast(0.5),
                          where=near_zero)
            xp.multiply(xi, xi, out=g)
            g *= cast(-0.5)
            xp.exp(g, out=g)
            g *= cast(1.0 / math.sqrt(2.0 * math.pi))
            g *= xi
            g += cdf
            g *= dout[i]

        _by_blocks(xp, flat.size, 1, block)
        return grad.reshape(x.shape)

    @staticmethod
    def reference(x: Tensor, approximate: str) -> Tensor:
        if approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + inner.tanh())
        return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


def _attention_forward(xp: Any, q: Any, k: Any, v: Any, mask: Any, scale: float, keep: Any,
                       out: Any, log_sum_exp: Any) -> None:
    """Attention of (..., L, d) queries over (..., S, d) keys into ``out`` (..., L, dv),
    keeping each row's log-sum-exp; batch blocks on the pool. Work on the (L, S) weights is
    what costs, so the scale goes on q and the softmax's division on the (L, dv) output."""

    def block(i: slice) -> None:
        weights = _scores(xp, q[i] * q.dtype.type(scale), k, mask, i, q.ndim)
        row_max = weights.max(axis=-1, keepdims=True)
        weights -= row_max
        xp.exp(weights, out=weights)  # unnormalised: P = weights / total
        total = _row_sums(xp, weights)
        xp.add(row_max, xp.log(total), out=log_sum_exp[i])
        if keep is not None:
            weights *= keep[i]
        xp.matmul(weights, v[i], out=out[i])
        out[i] /= total

    _by_batch_blocks(xp, q, k, v, block)


def _attention_backward(xp: Any, q: Any, k: Any, v: Any, mask: Any, scale: float, keep: Any,
                        log_sum_exp: Any, out: Any, dout: Any, dq: Any, dk: Any, dv: Any) -> None:
    """The gradients into ``dq``, ``dk``, ``dv`` (None: not wanted), recomputing the weights
    from the log-sum-exp; batch blocks on the pool. sum(dP * P) over a row equals
    sum(dO * O) over the row's output, which is narrower: S keys against dv features."""
    cast = q.dtype.type

    def block(i: slice) -> None:
        scaled_q = q[i] * cast(scale)
        w = _scores(xp, scaled_q, k, mask, i, q.ndim)  # P = exp(scores - L), recomputed
        w -= log_sum_exp[i]
        xp.exp(w, out=w)
        if dv is not None:
            dropped = w if keep is None else w * keep[i]
            xp.matmul(xp.swapaxes(dropped, -1, -2), dout[i], out=dv[i])
        if dq is None and dk is None:
            return
        dscores = dout[i] @ xp.swapaxes(v[i], -1, -2)  # dP, then dS / scale in place
        if keep is not None:
            dscores *= keep[i]
        dscores -= _row_sums(xp, dout[i] * out[i])
        dscores *= w
        if dq is not None:
            xp.matmul(dscores, k[i], out=dq[i])
            dq[i] *= cast(scale)
        if dk is not None:
            xp.matmul(xp.swapaxes(dscores, -1, -2), scaled_q, out=dk[i])

    _by_batch_blocks(xp, q, k, v, block)


class Attention(Function):
    """O = dropout(softmax(q k^T * scale + mask)) v over the last two axes, batched.
    With P the attention weights and dS the gradient of the scores:
    dv = P^T dO, dP = dO v^T, dS = P * (dP - sum(dP * P)), dq = dS k * scale, dk = dS^T q * scale.

    The weights P have a row per query and a column per key: at block 256 they outweigh q, k
    and v together. So forward keeps only each row's log-sum-exp L, and backward recomputes
    P = exp(q k^T * scale + mask - L), one extra matmul for a fraction of the memory (as
    flash attention does). On the CPU both passes go through the batch in blocks on the
    thread pool: one block's scores stay in the cache through the whole softmax, and the
    blocks' matmuls and elementwise work run on all cores (``parallel.py``).
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, keep):
        xp = _xp(q)
        out = xp.empty(q.shape[:-1] + (v.shape[-1],), q.dtype)
        log_sum_exp = xp.empty(q.shape[:-1] + (1,), q.dtype)
        _attention_forward(xp, q, k, v, mask, scale, keep, out, log_sum_exp)
        ctx.save_for_backward(q, k, v, log_sum_exp, out)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, log_sum_exp, out = ctx.saved_tensors
        xp = _xp(q)
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        dq = xp.empty_like(q) if need_q else None
        dk = xp.empty_like(k) if need_k else None
        dv = xp.empty_like(v) if need_v else None
        _attention_backward(xp, q, k, v, ctx.kwargs["mask"], ctx.kwargs["scale"],
                            ctx.kwargs["keep"], log_sum_exp, out, dout, dq, dk, dv)
        return dq, dk, dv

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
        xp = _xp(qkv)
        B, T, width = qkv.shape
        out = xp.empty((B, T, width // 3), qkv.dtype)
        out_heads = _split_heads(out, n_head)
        log_sum_exp = xp.empty((B, n_head, T, 1), qkv.dtype)
        _attention_forward(xp, *_heads(qkv, n_head), mask, scale, keep, out_heads, log_sum_exp)
        ctx.save_for_backward(qkv, log_sum_exp, out_heads)  # out: c_proj keeps it anyway
        return out

    @staticmethod
    def backward(ctx, dout):
        qkv, log_sum_exp, out_heads = ctx.saved_tensors
        n_head = ctx.kwargs["n_head"]
        dqkv = _xp(qkv).empty_like(qkv)
        _attention_backward(_xp(qkv), *_heads(qkv, n_head), ctx.kwargs["mask"],
                            ctx.kwargs["scale"], ctx.kwargs["keep"], log_sum_exp, out_heads,
                            _split_heads(dout, n_head), *_heads(dqkv, n_head))
        return dqkv

    @staticmethod
    def reference(qkv: Tensor, n_head: int, mask: Any, scale: float, keep: Any) -> Tensor:
        B, T, width = qkv.shape
        q, k, v = (part.reshape(B, T, n_head, width // (3 * n_head)).transpose(1, 2)
                   for part in qkv.split(width // 3, axis=2))
        out = Attention.reference(q, k, v, mask, scale, keep)  # (B, nh, T, hs)
        return out.transpose(1, 2).reshape(B, T, width // 3)
