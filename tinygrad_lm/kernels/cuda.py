"""The fast CUDA kernels: reference.py's functions as fused CuPy kernels, for ``cuda`` arrays.

Written with NumPy-style calls, GELU or layer norm is half a dozen CuPy kernels, each one a
launch and a full trip through GPU memory. Here each becomes one elementwise kernel (plus a
row reduction where the math needs one), written with CuPy's ``ElementwiseKernel`` and
``ReductionKernel``: the body is CUDA C++ for one element, and CuPy supplies the loop, the
broadcasting and the type ``T`` (float or double, from the arrays).

Each kernel's source is plain data (:class:`Elementwise`, :class:`Reduction`), kept apart
from CuPy, so the tests compile the very same bodies for the CPU with a C++ compiler and
check them against reference.py on machines without a GPU (tests/test_cuda_kernels.py).
Softmax, attention (its matmuls are cuBLAS's), the embedding backward (``scatter_add``), the
gradient norm and the bias gradient are already one or two CuPy calls each: for those the
reference functions serve as they are.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .. import backend
from . import reference
from .reference import (attention, attention_backward, bias_backward,  # noqa: F401
                        embedding_backward, log_softmax, log_softmax_backward, softmax,
                        softmax_backward, sum_of_squares)


@dataclass(frozen=True)
class Elementwise:
    """``operation`` runs once per element: inputs are values, outputs are references into
    their arrays (so an output passed in can be read as well as written)."""

    in_params: str
    out_params: str
    operation: str
    name: str


@dataclass(frozen=True)
class Reduction:
    """``map_expr`` maps each element to ``b``; ``a = reduce_expr`` folds them from
    ``identity``; ``post_map_expr`` turns the folded ``a`` into the output."""

    in_params: str
    out_params: str
    map_expr: str
    reduce_expr: str
    post_map_expr: str
    identity: str
    name: str


# y = x Phi(x), with Phi(x) = (1 + erf(x / sqrt 2)) / 2
GELU_FORWARD = Elementwise(
    "T x", "T y",
    "y = x * ((T)0.5 + (T)0.5 * erf(x * (T)0.7071067811865476));",
    "tinygrad_lm_gelu_forward")

# dx = dy (Phi(x) + x phi(x)), with phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
GELU_BACKWARD = Elementwise(
    "T x, T dy", "T dx",
    "T cdf = (T)0.5 + (T)0.5 * erf(x * (T)0.7071067811865476);"
    " T pdf = exp((T)-0.5 * x * x) * (T)0.3989422804014327;"
    " dx = dy * (cdf + x * pdf);",
    "tinygrad_lm_gelu_backward")

# rstd = 1 / sqrt(mean((x - mean)^2) + eps), one value per row
LAYER_NORM_RSTD = Reduction(
    "T x, T mean, T inv_width, T eps", "T rstd",
    "(x - mean) * (x - mean)", "a + b", "rstd = (T)1 / sqrt(a * inv_width + eps)", "0",
    "tinygrad_lm_layer_norm_rstd")

# y = (x - mean) rstd w + b
LAYER_NORM_FORWARD = Elementwise(
    "T x, T mean, T rstd, T w, T b", "T y",
    "y = (x - mean) * rstd * w + b;",
    "tinygrad_lm_layer_norm_forward")

# mean over a row of g = dy w, and of g xhat, xhat = (x - mean) rstd
LAYER_NORM_MEAN_G = Reduction(
    "T dy, T w, T inv_width", "T mean_g",
    "dy * w", "a + b", "mean_g = a * inv_width", "0",
    "tinygrad_lm_layer_norm_mean_g")
LAYER_NORM_MEAN_GX = Reduction(
    "T dy, T w, T x, T mean, T rstd, T inv_width", "T mean_gx",
    "dy * w * (x - mean) * rstd", "a + b", "mean_gx = a * inv_width", "0",
    "tinygrad_lm_layer_norm_mean_gx")

# dx = rstd (g - mean(g) - xhat mean(g xhat))
LAYER_NORM_BACKWARD = Elementwise(
    "T dy, T w, T x, T mean, T rstd, T mean_g, T mean_gx", "T dx",
    "dx = rstd * (dy * w - mean_g - (x - mean) * rstd * mean_gx);",
    "tinygrad_lm_layer_norm_backward")

# sum over rows of dy xhat: the layer norm weight's gradient (reduced over axis 0)
LAYER_NORM_WEIGHT_GRAD = Reduction(
    "T dy, T x, T mean, T rstd", "T total", "dy * (x - mean) * rstd", "a + b", "total = a",
    "0", "tinygrad_lm_layer_norm_weight_grad")

# y = silu(a) b, silu(a) = a sigmoid(a); sigmoid from exp of a non-positive argument only
SWIGLU_FORWARD = Elementwise(
    "T a, T b", "T y",
    "T s = a >= (T)0 ? (T)1 / ((T)1 + exp(-a)) : exp(a) / ((T)1 + exp(a));"
    " y = a * s * b;",
    "tinygrad_lm_swiglu_forward")

# da = dy b s (1 + a (1 - s)), db = dy a s, with s = sigmoid(a)
SWIGLU_BACKWARD = Elementwise(
    "T a, T b, T dy", "T da, T db",
    "T s = a >= (T)0 ? (T)1 / ((T)1 + exp(-a)) : exp(a) / ((T)1 + exp(a));"
    " da = dy * b * s * ((T)1 + a * ((T)1 - s));"
    " db = dy * a * s;",
    "tinygrad_lm_swiglu_backward")

# RoPE: the pair (x1, x2) turns by the angle whose cosine and sine are c and s
ROTARY = Elementwise(
    "T x1, T x2, T c, T s", "T y1, T y2",
    "y1 = x1 * c - x2 * s; y2 = x1 * s + x2 * c;",
    "tinygrad_lm_rotary")

# log sum exp(z - zmax) over a row (zmax, the row's max, keeps exp from overflowing)
LOG_SUM_EXP_SHIFTED = Reduction(
    "T z, T zmax", "T log_sum",
    "exp(z - zmax)", "a + b", "log_sum = log(a)", "0",
    "tinygrad_lm_log_sum_exp_shifted")

# dz = (softmax(z) - onehot(target)) dout, softmax(z) = exp(z - logsumexp(z)); 0 if ignored
CROSS_ENTROPY_BACKWARD = Elementwise(
    "T z, T log_norm, T dout, S target, S column, S ignore", "T dz",
    "dz = target == ignore ? (T)0"
    " : (exp(z - log_norm) - (column == target ? (T)1 : (T)0)) * dout;",
    "tinygrad_lm_cross_entropy_backward")

# one Adam/AdamW step of a parameter and its two moments, in place (reference.adam_step)
ADAM_STEP = Elementwise(
    "T grad, T l2, T decay, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2,"
    " T step_size, T rescale, T eps",
    "T param, T m, T v",
    "T g = grad + l2 * param;"
    " m = beta1 * m + one_minus_beta1 * g;"
    " v = beta2 * v + one_minus_beta2 * g * g;"
    " param = param * decay - step_size * m / (sqrt(v) * rescale + eps);",
    "tinygrad_lm_adam_step")


@functools.lru_cache(maxsize=None)
def compiled(kernel: "Elementwise | Reduction", sum_in_float: bool = False) -> Any:
    """The CuPy kernel for ``kernel`` (built once; CuPy compiles it on the first call for
    each dtype and caches the binary on disk). ``sum_in_float`` makes a reduction add up in
    float rather than in ``T``: for half inputs, whose 11-bit sums would drift."""
    import cupy

    if isinstance(kernel, Elementwise):
        return cupy.ElementwiseKernel(kernel.in_params, kernel.out_params, kernel.operation,
                                      kernel.name)
    return cupy.ReductionKernel(kernel.in_params, kernel.out_params, kernel.map_expr,
                                kernel.reduce_expr, kernel.post_map_expr, kernel.identity,
                                kernel.name, reduce_type="float" if sum_in_float else None)


def run(kernel: "Elementwise | Reduction", *args: Any, **kwargs: Any) -> Any:
    """Call ``kernel`` on CuPy arrays and scalars (``axis``/``keepdims`` for reductions)."""
    half = isinstance(kernel, Reduction) and any(
        getattr(a, "dtype", None) is not None and a.dtype.kind == "f" and a.dtype.itemsize == 2
        for a in args)
    return compiled(kernel, half)(*args, **kwargs)


def _xp(array: Any) -> Any:
    return backend.device_of(array).xp


def gelu(x: Any, approximate: str) -> Any:
    """reference.gelu: one elementwise kernel (the tanh form: reference's CuPy calls)."""
    if approximate == "tanh":
        return reference.gelu(x, approximate)
    return run(GELU_FORWARD, x)


def gelu_backward(x: Any, dout: Any, approximate: str) -> Any:
    """reference.gelu_backward: one elementwise kernel (the tanh form: reference's)."""
    if approximate == "tanh":
        return reference.gelu_backward(x, dout, approximate)
    return run(GELU_BACKWARD, x, dout)


def layer_norm(x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, Any, Any]:
    """reference.layer_norm: the row means, an rstd reduction, one kernel for y."""
    mean = x.mean(axis=1, keepdims=True)
    rstd = run(LAYER_NORM_RSTD, x, mean, 1.0 / x.shape[1], eps, axis=1, keepdims=True)
    y = run(LAYER_NORM_FORWARD, x, mean, rstd,
            1 if weight is None else weight.astype(x.dtype, copy=False),
            0 if bias is None else bias.astype(x.dtype, copy=False))
    return y, mean, rstd


def layer_norm_backward(dout: Any, x: Any, mean: Any, rstd: Any,
                        weight: Any) -> tuple[Any, Any, Any]:
    """reference.layer_norm_backward: two row reductions, one kernel for dx, one column
    reduction for the weight."""
    w = 1 if weight is None else weight.astype(x.dtype, copy=False)
    inv_width = 1.0 / x.shape[1]
    mean_g = run(LAYER_NORM_MEAN_G, dout, w, inv_width, axis=1, keepdims=True)
    mean_gx = run(LAYER_NORM_MEAN_GX, dout, w, x, mean, rstd, inv_width, axis=1,
                  keepdims=True)
    dx = run(LAYER_NORM_BACKWARD, dout, w, x, mean, rstd, mean_g, mean_gx)
    return dx, run(LAYER_NORM_WEIGHT_GRAD, dout, x, mean, rstd, axis=0), dout.sum(axis=0)


def rms_norm(x: Any, weight: Any, eps: float) -> tuple[Any, Any]:
    """reference.rms_norm: layer norm's kernels with the mean held at 0 (RMS norm is layer
    norm without the centering): an rstd reduction, one kernel for y."""
    rstd = run(LAYER_NORM_RSTD, x, 0, 1.0 / x.shape[1], eps, axis=1, keepdims=True)
    y = run(LAYER_NORM_FORWARD, x, 0, rstd,
            1 if weight is None else weight.astype(x.dtype, copy=False), 0)
    return y, rstd


def rms_norm_backward(dout: Any, x: Any, rstd: Any, weight: Any) -> tuple[Any, Any]:
    """reference.rms_norm_backward: layer norm's kernels with the mean, and mean(g), at 0."""
    w = 1 if weight is None else weight.astype(x.dtype, copy=False)
    mean_gx = run(LAYER_NORM_MEAN_GX, dout, w, x, 0, rstd, 1.0 / x.shape[1], axis=1,
                  keepdims=True)
    dx = run(LAYER_NORM_BACKWARD, dout, w, x, 0, rstd, 0, mean_gx)
    return dx, run(LAYER_NORM_WEIGHT_GRAD, dout, x, 0, rstd, axis=0)


def swiglu(a: Any, b: Any) -> Any:
    """reference.swiglu: one elementwise kernel."""
    return run(SWIGLU_FORWARD, a, b.astype(a.dtype, copy=False))


def swiglu_backward(a: Any, b: Any, dout: Any) -> tuple[Any, Any]:
    """reference.swiglu_backward: one elementwise kernel with two outputs."""
    return run(SWIGLU_BACKWARD, a, b.astype(a.dtype, copy=False),
               dout.astype(a.dtype, copy=False))


def rotary(x: Any, cos: Any, sin: Any) -> Any:
    """reference.rotary: one elementwise kernel over the two halves, then their join."""
    half = x.shape[-1] // 2
    y1, y2 = run(ROTARY, x[..., :half], x[..., half:], cos.astype(x.dtype, copy=False),
                 sin.astype(x.dtype, copy=False))
    return _xp(x).concatenate([y1, y2], axis=-1)


def cross_entropy(logits: Any, targets: Any, ignore_index: int) -> tuple[Any, Any]:
    """reference.cross_entropy: a log-sum-exp row reduction."""
    xp = _xp(logits)
    row_max = logits.max(axis=1, keepdims=True)
    log_norm = row_max[:, 0] + run(LOG_SUM_EXP_SHIFTED, logits, row_max, axis=1)
    valid = targets != ignore_index
    picked = logits[xp.arange(len(targets)), xp.where(valid, targets, 0)]
    return xp.where(valid, log_norm - picked, 0).astype(logits.dtype, copy=False), log_norm


def cross_entropy_backward(logits: Any, log_norm: Any, targets: Any, ignore_index: int,
                           dout: Any) -> Any:
    """reference.cross_entropy_backward: one elementwise kernel."""
    xp = _xp(logits)
    columns = xp.arange(logits.shape[1], dtype=xp.int64)  # (int8 ids would wrap)
    return run(CROSS_ENTROPY_BACKWARD, logits, log_norm[:, None],
               dout.astype(logits.dtype, copy=False)[:, None],
               targets.astype(xp.int64, copy=False)[:, None], columns, ignore_index)


def adam_step(param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool, step: int) -> None:
    """reference.adam_step: one kernel rewrites the parameter and both moments."""
    l2, decay = (0.0, 1.0 - lr * weight_decay) if decoupled else (weight_decay, 1.0)
    run(ADAM_STEP, grad.astype(param.dtype, copy=False), l2, decay, beta1, 1 - beta1, beta2,
        1 - beta2, lr / (1 - beta1 ** step), 1 / (1 - beta2 ** step) ** 0.5, eps, param, m, v)
