"""The reference kernels: every fused op's forward and backward as plain array code.

Each function reads line for line like its derivation in docs/layers.md, written once for
NumPy and CuPy through ``xp``. They are what the gradient checks and the docs stand on;
``cpu.py`` and ``cuda.py`` compute the same functions faster, and the tests hold them equal.

Conventions: kernels take and return raw arrays (never Tensors); ``dout`` is the gradient
arriving from above; a backward returns the gradients of the forward's inputs in order.
"""
from __future__ import annotations

import math
from typing import Any

from .. import backend


def _xp(array: Any) -> Any:
    return backend.device_of(array).xp


# ----------------------------------------------------------------------------- GELU

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715


def gelu(x: Any, approximate: str) -> Any:
    """Exact: y = x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2.
    Tanh form: y = x (1 + tanh u) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3)."""
    if approximate == "tanh":
        u = SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x ** 3)
        return 0.5 * x * (1 + _xp(x).tanh(u))
    cdf = 0.5 * (1 + backend.erf(x / math.sqrt(2.0)))
    return x * cdf


def gelu_backward(x: Any, dout: Any, approximate: str) -> Any:
    """Exact: dx = dout (Phi(x) + x phi(x)) with phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
    Tanh form: dx = dout ((1 + t) / 2 + x (1 - t^2) u'(x) / 2), t = tanh u,
    u'(x) = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    xp = _xp(x)
    if approximate == "tanh":
        t = xp.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x ** 3))
        du = SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_CUBIC * x ** 2)
        return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    cdf = 0.5 * (1 + backend.erf(x / math.sqrt(2.0)))
    pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return dout * (cdf + x * pdf)


# ----------------------------------------------------------------------------- layer norm

def layer_norm(x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, Any, Any]:
    """Over each row of the 2-d ``x``: xhat = (x - mean) * rstd with
    rstd = 1 / sqrt(var + eps), then y = xhat * weight + bias (each optional).
    Returns y and the row statistics (mean, rstd), which backward needs with x."""
    xp = _xp(x)
    mean = x.mean(axis=1, keepdims=True)
    rstd = 1 / xp.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(dout: Any, x: Any, mean: Any, rstd: Any,
                        weight: Any) -> tuple[Any, Any, Any]:
    """With g = dout * weight: dx = rstd (g - mean(g) - xhat mean(g xhat)) per row;
    dweight = sum over rows of dout xhat; dbias = sum over rows of dout."""
    xhat = (x - mean) * rstd
    g = dout * weight if weight is not None else dout
    dx = rstd * (g - g.mean(axis=1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


# ----------------------------------------------------------------------------- RMS norm

def rms_norm(x: Any, weight: Any, eps: float) -> tuple[Any, Any]:
    """Over each row of the 2-d ``x``: xhat = x * rstd with rstd = 1 / sqrt(mean(x^2) + eps),
    then y = xhat * weight (optional). Returns y and each row's rstd, which backward needs
    with x. (Layer norm without the centering and the bias.)"""
    rstd = 1 / _xp(x).sqrt((x * x).mean(axis=1, keepdims=True) + eps)
    y = x * rstd
    return (y * weight if weight is not None else y), rstd


def rms_norm_backward(dout: Any, x: Any, rstd: Any, weight: Any) -> tuple[Any, Any]:
    """With g = dout * weight: dx = rstd (g - xhat mean(g xhat)) per row;
    dweight = sum over rows of dout xhat."""
    xhat = x * rstd
    g = dout * weight if weight is not None else dout
    dx = rstd * (g - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx, (dout * xhat).sum(axis=0)


# ----------------------------------------------------------------------------- SwiGLU gate

def _sigmoid(a: Any) -> Any:
    """1 / (1 + e^-a), from e^-|a| (which never overflows): e / (1 + e) for negative a."""
    xp = _xp(a)
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1, e) / (1 + e)


def swiglu(a: Any, b: Any) -> Any:
    """The gate of a SwiGLU MLP: y = silu(a) * b with silu(a) = a sigmoid(a)."""
    return a * _sigmoid(a) * b


def swiglu_backward(a: Any, b: Any, dout: Any) -> tuple[Any, Any]:
    """With s = sigmoid(a): silu'(a) = s + a s (1 - s) = s (1 + a (1 - s)), so
    da = dout * b * s (1 + a (1 - s)) and db = dout * a s."""
    s = _sigmoid(a)
    return dout * b * s * (1 + a * (1 - s)), dout * a * s


# ----------------------------------------------------------------------------- rotary positions

def rotary(x: Any, cos: Any, sin: Any) -> Any:
    """RoPE, rotate-half convention, for x (..., T, d) and cos, sin (T, d/2): each pair
    (x1, x2) = (x[..., i], x[..., i + d/2]) turns by its angle, (x1 cos - x2 sin,
    x1 sin + x2 cos). A rotation's transpose is the rotation back, so the backward is
    ``rotary(dout, cos, -sin)``."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return _xp(x).concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


# ----------------------------------------------------------------------------- softmax

def softmax(x: Any, axis: int) -> Any:
    """y = exp(x - max x) / sum exp(x - max x): subtracting the max keeps exp from
    overflowing and does not change y."""
    xp = _xp(x)
    if x.size == 0:  # (no max to subtract)
        return x.copy()
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(y: Any, dout: Any, axis: int) -> Any:
    """dx = y * (dout - sum(dout * y))."""
    return y * (dout - (dout * y).sum(axis=axis, keepdims=True))


def log_softmax(x: Any, axis: int) -> Any:
    """y = x - logsumexp(x), with logsumexp(x) = max x + log sum exp(x - max x)."""
    xp = _xp(x)
    if x.size == 0:  # (no max to subtract)
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(y: Any, dout: Any, axis: int) -> Any:
    """dx = dout - exp(y) * sum(dout)."""
    return dout - _xp(y).exp(y) * dout.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- cross-entropy

def cross_entropy(logits: Any, targets: Any, ignore_index: int) -> tuple[Any, Any]:
    """Per-row loss_i = logsumexp(z_i) - z_i[t_i] of logits z (N, C) and targets t (N,);
    0 where t_i == ignore_index. Returns the losses and each row's logsumexp, from which
    backward rebuilds softmax(z_i) = exp(z_i - logsumexp(z_i))."""
    xp = _xp(logits)
    row_max = logits.max(axis=1, keepdims=True)
    log_norm = row_max[:, 0] + xp.log(xp.exp(logits - row_max).sum(axis=1))
    valid = targets != ignore_index
    picked = logits[xp.arange(len(targets)), xp.where(valid, targets, 0)]
    return xp.where(valid, log_norm - picked, 0).astype(logits.dtype), log_norm


def cross_entropy_backward(logits: Any, log_norm: Any, targets: Any, ignore_index: int,
                           dout: Any) -> Any:
    """d loss_i / dz_i = softmax(z_i) - onehot(t_i), times dout_i; a row whose target is
    ignored gets zeros (not 0 * dout_i, which is NaN when dout_i is)."""
    xp = _xp(logits)
    valid = targets != ignore_index
    dlogits = xp.exp(logits - log_norm[:, None])
    dlogits[xp.arange(len(targets)), xp.where(valid, targets, 0)] -= 1
    return xp.where(valid[:, None], dlogits * dout[:, None], 0).astype(logits.dtype)


# ----------------------------------------------------------------------------- attention

def attention(q: Any, k: Any, v: Any, mask: Any, scale: float, keep: Any,
              out: Any) -> Any:
    """O = dropout(P) v with P = softmax(S), S = q k^T * scale + mask, over the last two
    axes of (..., L, d) queries and (..., S, d) keys. Writes O into ``out`` and returns each
    row's L = logsumexp(S), from which backward recomputes P = exp(S - L)."""
    xp = _xp(q)
    scores = q @ xp.swapaxes(k, -1, -2) * scale
    if mask is not None:
        scores = scores + mask
    row_max = scores.max(axis=-1, keepdims=True)
    log_sum_exp = row_max + xp.log(xp.exp(scores - row_max).sum(axis=-1, keepdims=True))
    weights = xp.exp(scores - log_sum_exp)
    if keep is not None:
        weights = weights * keep
    out[...] = weights @ v
    return log_sum_exp


def attention_backward(q: Any, k: Any, v: Any, mask: Any, scale: float, keep: Any,
                       log_sum_exp: Any, out: Any, dout: Any,
                       dq: Any, dk: Any, dv: Any) -> None:
    """dv = P'^T dO with P' = dropout(P); dP = dO v^T (times the dropout mask);
    dS = P * (dP - sum(dP * P)), where the row sum equals sum(dO * O);
    dq = dS k * scale, dk = dS^T q * scale. Writes into dq, dk, dv."""
    xp = _xp(q)
    scores = q @ xp.swapaxes(k, -1, -2) * scale
    if mask is not None:
        scores = scores + mask
    weights = xp.exp(scores - log_sum_exp)
    dropped = weights * keep if keep is not None else weights
    dv[...] = xp.swapaxes(dropped, -1, -2) @ dout
    dweights = dout @ xp.swapaxes(v, -1, -2)
    if keep is not None:
        dweights = dweights * keep
    dscores = weights * (dweights - (dout * out).sum(axis=-1, keepdims=True))
    dq[...] = dscores @ k * scale
    dk[...] = xp.swapaxes(dscores, -1, -2) @ q * scale


# ----------------------------------------------------------------------------- embedding

def embedding_backward(ids: Any, dout: Any, num_embeddings: int) -> Any:
    """dweight[r] = sum of dout's rows whose id is r (a scatter-add: an id that occurs
    twice gets both rows)."""
    xp = _xp(dout)
    dweight = xp.zeros((num_embeddings, dout.shape[-1]), dout.dtype)
    backend.index_add(dweight, (ids.reshape(-1),), dout.reshape(-1, dout.shape[-1]))
    return dweight


# ----------------------------------------------------------------------------- optimizers

def adam_step(param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool, step: int) -> None:
    """One Adam (``decoupled``: AdamW) update of ``param`` and its moments, in place:
    g = grad (+ wd p for Adam); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p = p (1 - lr wd for AdamW) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    xp = _xp(param)
    g = grad + weight_decay * param if weight_decay and not decoupled else grad
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    if weight_decay and decoupled:
        param *= 1 - lr * weight_decay
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    param -= (lr * m_hat / (xp.sqrt(v_hat) + eps)).astype(param.dtype)


def sum_of_squares(a: Any) -> Any:
    """sum a^2 over all elements (a 0-d array on a's device): gradient clipping's norm^2."""
    return (a * a).sum()


# ----------------------------------------------------------------------------- linear

def bias_backward(dout: Any) -> Any:
    """A bias added to every row gets the sum of the rows' gradients."""
    return dout.sum(axis=0)
