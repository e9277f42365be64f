"""Fused CUDA kernels for the work around the matmuls, used on ``cuda`` devices.

Written with NumPy-style calls, GELU or layer norm is half a dozen CuPy kernels, each one a
launch and a full trip through GPU memory. Here each becomes one elementwise kernel (plus a
row reduction where the math needs one), written with CuPy's ``ElementwiseKernel`` and
``ReductionKernel``: the body is CUDA C++ for one element, and CuPy supplies the loop, the
broadcasting and the type ``T`` (float or double, from the arrays).

Each kernel's source is plain data (:class:`Elementwise`, :class:`Reduction`), kept apart
from CuPy, so the tests compile the very same bodies for the CPU with a C++ compiler and
check their math against NumPy on machines without a GPU (tests/test_cuda_kernels.py).
The math of each kernel is the backward derived in docs/layers.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from . import backend


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

# xhat = (x - mean) rstd; y = xhat w + b
LAYER_NORM_FORWARD = Elementwise(
    "T x, T mean, T rstd, T w, T b", "T xhat, T y",
    "xhat = (x - mean) * rstd; y = xhat * w + b;",
    "tinygrad_lm_layer_norm_forward")

# mean over a row of g = dy w, and of g xhat
LAYER_NORM_MEAN_G = Reduction(
    "T dy, T w, T inv_width", "T mean_g",
    "dy * w", "a + b", "mean_g = a * inv_width", "0",
    "tinygrad_lm_layer_norm_mean_g")
LAYER_NORM_MEAN_GX = Reduction(
    "T dy, T w, T xhat, T inv_width", "T mean_gx",
    "dy * w * xhat", "a + b", "mean_gx = a * inv_width", "0",
    "tinygrad_lm_layer_norm_mean_gx")

# dx = rstd (g - mean(g) - xhat mean(g xhat))
LAYER_NORM_BACKWARD = Elementwise(
    "T dy, T w, T xhat, T rstd, T mean_g, T mean_gx", "T dx",
    "dx = rstd * (dy * w - mean_g - xhat * mean_gx);",
    "tinygrad_lm_layer_norm_backward")

# sum over rows of dy xhat: the layer norm weight's gradient (reduced over axis 0)
SUM_OF_PRODUCTS = Reduction(
    "T x, T y", "T total", "x * y", "a + b", "total = a", "0",
    "tinygrad_lm_sum_of_products")

# log sum exp(z - zmax) over a row (zmax, the row's max, keeps exp from overflowing)
LOG_SUM_EXP_SHIFTED = Reduction(
    "T z, T zmax", "T log_sum",
    "exp(z - zmax)", "a + b", "log_sum = log(a)", "0",
    "tinygrad_lm_log_sum_exp_shifted")

# dz = (softmax(z) - onehot(target)) * scale, softmax(z) = exp(z - zmax - log_norm)
CROSS_ENTROPY_BACKWARD = Elementwise(
    "T z, T zmax, T log_norm, T scale, S target, S column", "T dz",
    "dz = (exp(z - zmax - log_norm) - (column == target ? (T)1 : (T)0)) * scale;",
    "tinygrad_lm_cross_entropy_backward")

# one Adam/AdamW step of a parameter and its two moments, in place (see optim/adam.py)
ADAM_STEP = Elementwise(
    "T grad, T l2, T decay, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2,"
    " T step_size, T rescale, T eps",
    "T param, T m, T v",
    "T g = grad + l2 * param;"
    " m = beta1 * m + one_minus_beta1 * g;"
    " v = beta2 * v + one_minus_beta2 * g * g;"
    " param = param * decay - step_size * m / (sqrt(v) * rescale + eps);",
    "tinygrad_lm_adam_step")


def applies_to(xp: Any) -> bool:
    """True when arrays of the module ``xp`` go through these kernels: CuPy's, not NumPy's."""
    return xp is not backend.CPU.xp


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
