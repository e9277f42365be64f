"""The fast CPU kernels: reference.py's functions compiled with Numba.

NumPy runs one pass over memory per operation, so GELU's dozen operations are a dozen
passes. Here each op's forward or backward is one loop (two where a row statistic must be
known first), compiled to machine code with SIMD by LLVM and spread over the cores with
``prange``. The math is reference.py's line for line; the differences are how it runs:

- ``exp`` of float32 is evaluated inline (a polynomial times a power of two built from
  bits), so LLVM can vectorise the loops around it; libm's ``exp`` is one call per element.
  Every exp in these kernels has a non-positive argument (softmax and cross-entropy
  subtract the row max, GELU's is -x^2 / 2), which is all the inline one covers.
- Column sums (the weight and bias gradients) are summed per chunk of rows, the chunks in
  parallel, then the chunks in order: the same result whatever the thread count.
- Small inputs run on the calling thread: below ``PARALLEL_MIN_ELEMENTS`` handing work to
  other threads costs more than it saves.
- Float division never raises (``error_model="numpy"``): Python's ZeroDivisionError check
  would put a branch in every loop and stop LLVM from vectorising it.

Compiled code is cached on disk (Numba's ``cache=True``), so only the first run compiles.
Float64 (gradient checks) takes libm's ``exp``/``erf``: exact, not fast.
"""
from __future__ import annotations

import math
import threading
from types import FunctionType
from typing import Any, Callable

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from . import reference

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
"""LLVM may reorder sums and fuse multiply-adds (what vectorising needs), but not assume
that no value is NaN or infinite: masks hold -inf, and a NaN must come out as NaN."""

PARALLEL_MIN_ELEMENTS = 1 << 20
"""Below this many elements a kernel runs on the calling thread. Numba's idle threads
sleep, and waking them costs about as much as they save at half a million floats (2-core
AMD EPYC, the pool asleep before each call): GELU's backward over 512K floats took 0.31 ms
on one thread and 0.30 on two; over 1M, 0.60 against 0.45 ms; over 4M, 2.30 against 1.75."""

SUM_CHUNKS = 16
"""Row chunks of a column sum (at most): a fixed number, so sums do not depend on threads."""

_OPTIONS: dict[str, Any] = dict(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")

numba.config.THREADING_LAYER = "workqueue"
"""Numba's own thread pool, whose idle threads sleep. With the OpenMP layer, its threads
spin after each kernel while OpenBLAS's spin after each matmul, and the two pools took the
cores from each other: a GPT step ran 10-25x slower (docs/backends.md)."""


def _serial_and_parallel(fn: Callable[..., Any], **options: Any) -> tuple[Any, Any]:
    """``fn`` compiled twice: on one thread (``prange`` is ``range``), and across threads.
    The parallel one is compiled from a copy named ``<name>_parallel``: Numba's disk cache
    knows a function by its name and line, not by ``parallel=``, so under one name the
    variant compiled first would be loaded for both."""
    options = {**_OPTIONS, **options}
    parallel = FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_parallel",
                            fn.__defaults__, fn.__closure__)
    parallel.__qualname__ = f"{fn.__qualname__}_parallel"
    return njit(**options)(fn), njit(parallel=True, **options)(parallel)


_PARALLEL_LOCK = threading.Lock()
"""Held while a parallel variant runs: Numba's workqueue pool serves one caller at a time
(a second thread entering it aborts the process), so a second caller runs serially."""


def _run(variants: tuple[Any, Any], elements: int, *args: Any) -> Any:
    """The serial variant of a kernel, or for ``elements`` >= PARALLEL_MIN_ELEMENTS the
    parallel one, unless another thread is using Numba's pool."""
    if elements >= PARALLEL_MIN_ELEMENTS and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            return variants[1](*args)
        finally:
            _PARALLEL_LOCK.release()
    return variants[0](*args)


# ----------------------------------------------------------------------------- scalar math

@intrinsic
def _float32_from_bits(typingctx: Any, bits: Any) -> Any:
    """The float32 whose bit pattern is the int32 ``bits`` (a reinterpretation, no work)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


def exp_nonpositive(v):  # noqa: ANN001, ANN201
    """exp(v) for v <= 0 (compiled only; see the overload below)."""
    return math.exp(v)


@overload(exp_nonpositive, inline="always", jit_options={"fastmath": FASTMATH})
def _exp_nonpositive(v):  # noqa: ANN001, ANN202  (Numba matches its signature)
    """float32: exp(v) = 2^n e^r with n = round(v / ln 2) and r = v - n ln 2 (|r| <= ln2/2),
    e^r by its Taylor polynomial to r^7 (truncation error < 6e-9, below float32's rounding), 2^n made from its exponent
    bits. Below -87.3 the result would be subnormal: 0. Branch-free but for a select and
    free of calls, so LLVM vectorises the loop around it. float64: libm."""
    if v != types.float32:
        return lambda v: math.exp(v)

    def exp32(v):  # noqa: ANN001, ANN202
        if v < np.float32(-87.3):
            return np.float32(0.0)
        k = np.int32(np.float32(0.5) - v * np.float32(1.4426950408889634))  # n = -k: v <= 0,
        n = np.float32(-k)  # so truncating 0.5 - v / ln 2 rounds (floor() would be a call)
        r = v - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)  # ln 2, split
        p = np.float32(1.0) + r * (np.float32(1.0) + r * (np.float32(0.5) + r * (
            np.float32(1 / 6) + r * (np.float32(1 / 24) + r * (np.float32(1 / 120) + r * (
                np.float32(1 / 720) + r * np.float32(1 / 5040)))))))
        return p * _float32_from_bits((np.int32(127) - k) << np.int32(23))
    return exp32


def gaussian_cdf(x, e):  # noqa: ANN001, ANN201
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, given e = exp(-x^2 / 2) (which GELU's backward
    needs for phi(x) as well); compiled only, see the overload below."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@overload(gaussian_cdf, inline="always", jit_options={"fastmath": FASTMATH})
def _gaussian_cdf(x, e):  # noqa: ANN001, ANN202  (Numba matches its signature)
    """float32: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, as reference.py's erf), written
    as erfc(|x| / sqrt 2) = poly(t) exp(-x^2 / 2) so the tail loses no digits. float64: libm."""
    if x != types.float32:
        return lambda x, e: 0.5 + 0.5 * math.erf(x * 0.7071067811865476)

    def cdf32(x, e):  # noqa: ANN001, ANN202
        t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.3275911 * 0.7071067811865476)
                               * abs(x))
        poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
            np.float32(1.421413741) + t * (np.float32(-1.453152027)
                                           + t * np.float32(1.061405429)))))
        tail = np.float32(0.5) * poly * e  # Phi(-|x|)
        return tail if x < 0 else np.float32(1.0) - tail
    return cdf32


# ----------------------------------------------------------------------------- GELU

def _gelu_loop(x, y, tanh_form):  # noqa: ANN001, ANN202
    T = x.dtype.type
    if tanh_form:
        for i in prange(x.size):
            v = x[i]
            y[i] = T(0.5) * v * (T(1.0) + _tanh_of_u(v))
    else:
        for i in prange(x.size):
            v = x[i]
            y[i] = v * gaussian_cdf(v, exp_nonpositive(T(-0.5) * v * v))


def _gelu_backward_loop(x, dout, dx, tanh_form):  # noqa: ANN001, ANN202
    T = x.dtype.type
    if tanh_form:
        for i in prange(x.size):
            v = x[i]
            t = _tanh_of_u(v)
            du = T(reference.SQRT_2_OVER_PI) * (
                T(1.0) + T(3.0 * reference.GELU_TANH_CUBIC) * v * v)
            dx[i] = dout[i] * (T(0.5) * (T(1.0) + t) + T(0.5) * v * (T(1.0) - t * t) * du)
    else:
        for i in prange(x.size):
            v = x[i]
            e = exp_nonpositive(T(-0.5) * v * v)  # serves both Phi(x) and phi(x)
            dx[i] = dout[i] * (gaussian_cdf(v, e) + v * e * T(0.3989422804014327))


@njit(inline="always", **_OPTIONS)
def _tanh_of_u(v):  # noqa: ANN001, ANN202
    """tanh u with u = sqrt(2/pi) (v + 0.044715 v^3), as (1 - e) / (1 + e) with e = exp(-2|u|)
    and the sign of u put back (so exp's argument is never positive)."""
    T = type(v)
    u = T(reference.SQRT_2_OVER_PI) * (v + T(reference.GELU_TANH_CUBIC) * v * v * v)
    e = exp_nonpositive(T(-2.0) * abs(u))
    t = (T(1.0) - e) / (T(1.0) + e)
    return t if u >= 0 else -t


_GELU = _serial_and_parallel(_gelu_loop)
_GELU_BACKWARD = _serial_and_parallel(_gelu_backward_loop)


def gelu(x: Any, approximate: str) -> Any:
    """reference.gelu in one pass."""
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    _run(_GELU, flat.size, flat, y, approximate == "tanh")
    return y.reshape(x.shape)


def gelu_backward(x: Any, dout: Any, approximate: str) -> Any:
    """reference.gelu_backward in one pass, Phi(x) (or tanh u) recomputed from x."""
    flat = np.ascontiguousarray(x).reshape(-1)
    dx = np.empty_like(flat)
    _run(_GELU_BACKWARD, flat.size, flat, np.ascontiguousarray(dout, x.dtype).reshape(-1),
         dx, approximate == "tanh")
    return dx.reshape(x.shape)


# ----------------------------------------------------------------------------- layer norm

def _layer_norm_loop(x, weight, bias, eps, y, mean, rstd):  # noqa: ANN001, ANN202
    T = x.dtype.type
    rows, width = x.shape
    for r in prange(rows):
        total = T(0.0)
        for j in range(width):
            total += x[r, j]
        mu = total / T(width)
        square = T(0.0)
        for j in range(width):
            square += (x[r, j] - mu) * (x[r, j] - mu)
        s = T(1.0) / math.sqrt(square / T(width) + T(eps))
        mean[r, 0] = mu
        rstd[r, 0] = s
        for j in range(width):
            y[r, j] = (x[r, j] - mu) * s * weight[j] + bias[j]


def _layer_norm_backward_loop(dout, x, mean, rstd, weight, dx, dw_chunks,  # noqa: ANN001
                              db_chunks):  # noqa: ANN001, ANN202
    T = x.dtype.type
    rows, width = x.shape
    chunks = dw_chunks.shape[0]
    for c in prange(chunks):
        for r in range(c * rows // chunks, (c + 1) * rows // chunks):
            mu, s = mean[r, 0], rstd[r, 0]
            mean_g = T(0.0)
            mean_gx = T(0.0)
            for j in range(width):  # reductions only: this loop vectorises
                g = dout[r, j] * weight[j]
                mean_g += g
                mean_gx += g * (x[r, j] - mu)
            mean_g /= T(width)
            mean_gx *= s / T(width)  # mean of g * xhat
            for j in range(width):  # then every store, the weight and bias gradients too
                xhat = (x[r, j] - mu) * s
                d = dout[r, j]
                dx[r, j] = s * (d * weight[j] - mean_g - xhat * mean_gx)
                dw_chunks[c, j] += d * xhat
                db_chunks[c, j] += d


_LAYER_NORM = _serial_and_parallel(_layer_norm_loop)
_LAYER_NORM_BACKWARD = _serial_and_parallel(_layer_norm_backward_loop)


def _filled_if_none(a: Any, width: int, dtype: Any, fill: float) -> Any:
    """An absent weight (``fill`` 1) or bias (``fill`` 0) as an array: one loop serves both."""
    return np.full(width, fill, dtype) if a is None else np.ascontiguousarray(a, dtype)


def layer_norm(x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, Any, Any]:
    """reference.layer_norm, one row per iteration: mean, variance, then y."""
    x = np.ascontiguousarray(x)
    rows, width = x.shape
    y = np.empty_like(x)
    mean = np.empty((rows, 1), x.dtype)
    rstd = np.empty((rows, 1), x.dtype)
    _run(_LAYER_NORM, x.size, x, _filled_if_none(weight, width, x.dtype, 1.0),
         _filled_if_none(bias, width, x.dtype, 0.0), eps, y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(dout: Any, x: Any, mean: Any, rstd: Any,
                        weight: Any) -> tuple[Any, Any, Any]:
    """reference.layer_norm_backward: each row's two means, then dx; the weight and bias
    gradients summed per chunk of rows."""
    rows, width = x.shape
    chunks = max(1, min(SUM_CHUNKS, rows))
    dx = np.empty_like(x)
    dw = np.zeros((chunks, width), x.dtype)
    db = np.zeros((chunks, width), x.dtype)
    _run(_LAYER_NORM_BACKWARD, x.size, np.ascontiguousarray(dout, x.dtype), x, mean, rstd,
         _filled_if_none(weight, width, x.dtype, 1.0), dx, dw, db)
    return dx, _sum_chunks(dw), _sum_chunks(db)


def _sum_chunks(partials: Any) -> Any:
    """The chunks' partial sums added in order (NumPy adds the rows of an axis-0 sum one
    after another, so the result does not depend on the thread count)."""
    return partials.sum(axis=0)


# ----------------------------------------------------------------------------- RMS norm

def _rms_norm_loop(x, weight, eps, y, rstd):  # noqa: ANN001, ANN202
    T = x.dtype.type
    rows, width = x.shape
    for r in prange(rows):
        square = T(0.0)
        for j in range(width):
            square += x[r, j] * x[r, j]
        s = T(1.0) / math.sqrt(square / T(width) + T(eps))
        rstd[r, 0] = s
        for j in range(width):
            y[r, j] = x[r, j] * s * weight[j]


def _rms_norm_backward_loop(dout, x, rstd, weight, dx, dw_chunks):  # noqa: ANN001, ANN202
    T = x.dtype.type
    rows, width = x.shape
    chunks = dw_chunks.shape[0]
    for c in prange(chunks):
        for r in range(c * rows // chunks, (c + 1) * rows // chunks):
            s = rstd[r, 0]
            mean_gx = T(0.0)
            for j in range(width):  # the reduction alone: this loop vectorises
                mean_gx += dout[r, j] * weight[j] * x[r, j]
            mean_gx *= s / T(width)  # mean of g * xhat
            for j in range(width):  # then the stores, the weight gradient's too
                xhat = x[r, j] * s
                d = dout[r, j]
                dx[r, j] = s * (d * weight[j] - xhat * mean_gx)
                dw_chunks[c, j] += d * xhat


_RMS_NORM = _serial_and_parallel(_rms_norm_loop)
_RMS_NORM_BACKWARD = _serial_and_parallel(_rms_norm_backward_loop)


def rms_norm(x: Any, weight: Any, eps: float) -> tuple[Any, Any]:
    """reference.rms_norm, one row per iteration: the mean square, then y."""
    x = np.ascontiguousarray(x)
    rows, width = x.shape
    y = np.empty_like(x)
    rstd = np.empty((rows, 1), x.dtype)
    _run(_RMS_NORM, x.size, x, _filled_if_none(weight, width, x.dtype, 1.0), eps, y, rstd)
    return y, rstd


def rms_norm_backward(dout: Any, x: Any, rstd: Any, weight: Any) -> tuple[Any, Any]:
    """reference.rms_norm_backward: each row's mean(g xhat), then dx; the weight gradient
    summed per chunk of rows."""
    rows, width = x.shape
    dx = np.empty_like(x)
    dw = np.zeros((max(1, min(SUM_CHUNKS, rows)), width), x.dtype)
    _run(_RMS_NORM_BACKWARD, x.size, np.ascontiguousarray(dout, x.dtype), x, rstd,
         _filled_if_none(weight, width, x.dtype, 1.0), dx, dw)
    return dx, _sum_chunks(dw)


# ----------------------------------------------------------------------------- SwiGLU gate

@njit(inline="always", **_OPTIONS)
def _sigmoid(v):  # noqa: ANN001, ANN202
    """1 / (1 + e^-v) from e = exp(-|v|) (never overflows): e / (1 + e) for negative v."""
    T = type(v)
    e = exp_nonpositive(-abs(v))
    return (T(1.0) if v >= 0 else e) / (T(1.0) + e)


def _swiglu_loop(a, b, y):  # noqa: ANN001, ANN202
    for i in prange(a.size):
        v = a[i]
        y[i] = v * _sigmoid(v) * b[i]


def _swiglu_backward_loop(a, b, dout, da, db):  # noqa: ANN001, ANN202
    T = a.dtype.type
    for i in prange(a.size):
        v = a[i]
        s = _sigmoid(v)
        da[i] = dout[i] * b[i] * s * (T(1.0) + v * (T(1.0) - s))
        db[i] = dout[i] * v * s


_SWIGLU = _serial_and_parallel(_swiglu_loop)
_SWIGLU_BACKWARD = _serial_and_parallel(_swiglu_backward_loop)


def _flat(a: Any, dtype: Any) -> Any:
    return np.ascontiguousarray(a, dtype).reshape(-1)


def swiglu(a: Any, b: Any) -> Any:
    """reference.swiglu in one pass."""
    y = np.empty(a.shape, a.dtype)
    _run(_SWIGLU, a.size, _flat(a, a.dtype), _flat(b, a.dtype), y.reshape(-1))
    return y


def swiglu_backward(a: Any, b: Any, dout: Any) -> tuple[Any, Any]:
    """reference.swiglu_backward in one pass, sigmoid(a) recomputed from a."""
    da, db = np.empty(a.shape, a.dtype), np.empty(a.shape, a.dtype)
    _run(_SWIGLU_BACKWARD, a.size, _flat(a, a.dtype), _flat(b, a.dtype),
         _flat(dout, a.dtype), da.reshape(-1), db.reshape(-1))
    return da, db


# ----------------------------------------------------------------------------- rotary positions

def _rotary_loop(x, cos, sin, y):  # noqa: ANN001, ANN202
    """x, y (rows, T, d); each row's position t turns pair i by cos[t, i], sin[t, i]."""
    rows, length, width = x.shape
    half = width // 2
    for r in prange(rows):
        for t in range(length):
            for i in range(half):
                x1, x2, c, s = x[r, t, i], x[r, t, i + half], cos[t, i], sin[t, i]
                y[r, t, i] = x1 * c - x2 * s
                y[r, t, i + half] = x1 * s + x2 * c


_ROTARY = _serial_and_parallel(_rotary_loop)


def rotary(x: Any, cos: Any, sin: Any) -> Any:
    """reference.rotary in one pass over x (its leading axes folded into rows)."""
    length, width = x.shape[-2:]
    rows = np.ascontiguousarray(x).reshape(-1, length, width)
    y = np.empty(rows.shape, x.dtype)
    _run(_ROTARY, rows.size, rows, np.ascontiguousarray(cos, x.dtype),
         np.ascontiguousarray(sin, x.dtype), y)
    return y.reshape(x.shape)


# ----------------------------------------------------------------------------- softmax rows

@njit(inline="always", **_OPTIONS)
def _max_and_sum_exp(row):  # noqa: ANN001, ANN202
    """The row's max m and sum exp(row - m) (each term <= 1: nothing overflows)."""
    top = row[0]
    for j in range(1, row.size):
        top = max(top, row[j])
    total = row.dtype.type(0.0)
    for j in range(row.size):
        total += exp_nonpositive(row[j] - top)
    return top, total


@njit(**{**_OPTIONS, "fastmath": FASTMATH - {"reassoc"}})
def _shift_row(row, top, log_total, out):  # noqa: ANN001, ANN202
    """out = (row - max) - log total, as reference.py's log_softmax rounds it. Compiled
    without reassociation, which would turn it into row - (max + log total) and round at
    the scale of the max (log_softmax([20, 20]) would not be exactly -log 2)."""
    for j in range(row.size):
        out[j] = (row[j] - top) - log_total


def _softmax_loop(x, y, log):  # noqa: ANN001, ANN202
    T = x.dtype.type
    rows, width = x.shape
    for r in prange(rows):
        top, total = _max_and_sum_exp(x[r])
        if log:
            _shift_row(x[r], top, math.log(total), y[r])
        else:
            inv = T(1.0) / total
            for j in range(width):
                y[r, j] = exp_nonpositive(x[r, j] - top) * inv


def _softmax_backward_loop(y, dout, dx, log):  # noqa: ANN001, ANN202
    T = y.dtype.type
    rows, width = y.shape
    for r in prange(rows):
        total = T(0.0)
        for j in range(width):
            total += dout[r, j] if log else dout[r, j] * y[r, j]
        for j in range(width):
            if log:
                dx[r, j] = dout[r, j] - exp_nonpositive(y[r, j]) * total
            else:
                dx[r, j] = y[r, j] * (dout[r, j] - total)


_SOFTMAX = _serial_and_parallel(_softmax_loop)
_SOFTMAX_BACKWARD = _serial_and_parallel(_softmax_backward_loop)


def _rows_along(x: Any, axis: int) -> Any:
    """``x`` as (rows, width) when ``axis`` is its last, non-empty, contiguous axis; else None
    (then the reference kernel serves)."""
    if x.ndim == 0 or axis not in (-1, x.ndim - 1) or x.shape[-1] == 0 or x.size == 0:
        return None
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _softmax_like(x: Any, axis: int, log: bool) -> Any:
    rows = _rows_along(x, axis)
    if rows is None:
        return (reference.log_softmax if log else reference.softmax)(x, axis)
    y = np.empty_like(rows)
    _run(_SOFTMAX, rows.size, rows, y, log)
    return y.reshape(x.shape)


def _softmax_like_backward(y: Any, dout: Any, axis: int, log: bool) -> Any:
    rows = _rows_along(y, axis)
    if rows is None:
        return (reference.log_softmax_backward if log else reference.softmax_backward)(
            y, dout, axis)
    dx = np.empty_like(rows)
    _run(_SOFTMAX_BACKWARD, rows.size, rows, np.ascontiguousarray(dout, y.dtype).reshape(
        rows.shape), dx, log)
    return dx.reshape(y.shape)


def softmax(x: Any, axis: int) -> Any:
    """reference.softmax over the last axis, one row per iteration (other axes: reference)."""
    return _softmax_like(x, axis, log=False)


def softmax_backward(y: Any, dout: Any, axis: int) -> Any:
    """reference.softmax_backward over the last axis (other axes: reference)."""
    return _softmax_like_backward(y, dout, axis, log=False)


def log_softmax(x: Any, axis: int) -> Any:
    """reference.log_softmax over the last axis (other axes: reference)."""
    return _softmax_like(x, axis, log=True)


def log_softmax_backward(y: Any, dout: Any, axis: int) -> Any:
    """reference.log_softmax_backward over the last axis (other axes: reference)."""
    return _softmax_like_backward(y, dout, axis, log=True)


# ----------------------------------------------------------------------------- cross-entropy

def _cross_entropy_loop(z, targets, ignore_index, losses, log_norm):  # noqa: ANN001, ANN202
    T = z.dtype.type
    rows, width = z.shape
    for r in prange(rows):
        top, total = _max_and_sum_exp(z[r])
        log_norm[r] = top + math.log(total)
        t = targets[r]
        losses[r] = T(0.0) if t == ignore_index else log_norm[r] - z[r, t]


def _cross_entropy_backward_loop(z, log_norm, targets, ignore_index, dout,  # noqa: ANN001
                                 dz):  # noqa: ANN001, ANN202
    T = z.dtype.type
    rows, width = z.shape
    for r in prange(rows):
        t = targets[r]
        if t == ignore_index:
            for j in range(width):
                dz[r, j] = T(0.0)
            continue
        d = dout[r]
        for j in range(width):
            dz[r, j] = exp_nonpositive(z[r, j] - log_norm[r]) * d
        dz[r, t] -= d


_CROSS_ENTROPY = _serial_and_parallel(_cross_entropy_loop)
_CROSS_ENTROPY_BACKWARD = _serial_and_parallel(_cross_entropy_backward_loop)


def cross_entropy(logits: Any, targets: Any, ignore_index: int) -> tuple[Any, Any]:
    """reference.cross_entropy, one row per iteration."""
    if logits.shape[1] == 0:
        return reference.cross_entropy(logits, targets, ignore_index)
    z = np.ascontiguousarray(logits)
    losses = np.empty(z.shape[0], z.dtype)
    log_norm = np.empty(z.shape[0], z.dtype)
    _run(_CROSS_ENTROPY, z.size, z, targets.astype(np.int64, copy=False), ignore_index,
         losses, log_norm)
    return losses, log_norm


def cross_entropy_backward(logits: Any, log_norm: Any, targets: Any, ignore_index: int,
                           dout: Any) -> Any:
    """reference.cross_entropy_backward, one row per iteration."""
    z = np.ascontiguousarray(logits)
    dz = np.empty_like(z)
    _run(_CROSS_ENTROPY_BACKWARD, z.size, z, log_norm, targets.astype(np.int64, copy=False),
         ignore_index, np.ascontiguousarray(dout, z.dtype), dz)
    return dz


# ----------------------------------------------------------------------------- attention
# The matmuls go to BLAS (NumPy's matmul); the work between them, on the (L, S) scores of
# every head, is one compiled pass each way. Scores are (heads, L, S) with heads = all the
# leading axes; the mask is (L, S) or absent; the dropout keep-mask is scores-shaped.

def _attention_weights_loop(scores, mask, visible, scale, keep,  # noqa: ANN001
                            log_sum_exp):  # noqa: ANN001, ANN202
    """In place: scores -> dropout(P), P = exp(S - L), S = scores * scale + mask; L per row.
    Row i's keys from visible[i] on are masked (-inf): their P is 0, written without exp."""
    T = scores.dtype.type
    heads, length, width = scores.shape
    for h in prange(heads):
        for i in range(length):
            n = visible[i]
            top = T(-np.inf)
            for j in range(n):
                s = scores[h, i, j] * T(scale) + (mask[i, j] if mask.shape[0] else T(0.0))
                scores[h, i, j] = s
                top = max(top, s)
            if top == T(-np.inf):  # every key masked: softmax is 0/0, NaN as in reference.py
                log_sum_exp[h, i] = T(np.nan)
                scores[h, i, :] = T(np.nan)
                continue
            total = T(0.0)
            for j in range(n):
                e = exp_nonpositive(scores[h, i, j] - top)
                scores[h, i, j] = e
                total += e
            log_sum_exp[h, i] = top + math.log(total)
            inverse = T(1.0) / total  # P = e^(S - top) / total: one exp per score
            for j in range(n):
                p = scores[h, i, j] * inverse
                scores[h, i, j] = p * keep[h, i, j] if keep.shape[0] else p
            scores[h, i, n:] = T(0.0)


def _attention_recompute_loop(scores, mask, visible, scale, log_sum_exp):  # noqa: ANN001, ANN202
    """In place: scores -> P = exp(scores * scale + mask - L), 0 from visible[i] on."""
    T = scores.dtype.type
    heads, length, width = scores.shape
    for h in prange(heads):
        for i in range(length):
            n = visible[i]
            lse = log_sum_exp[h, i]
            for j in range(n):
                s = scores[h, i, j] * T(scale) + (mask[i, j] if mask.shape[0] else T(0.0))
                scores[h, i, j] = exp_nonpositive(s - lse)
            scores[h, i, n:] = T(0.0)


def _attention_dscores_loop(weights, dweights, visible, keep, row_dots,  # noqa: ANN001
                            scale):  # noqa: ANN001, ANN202
    """In place: dweights -> dS * scale, dS = P * (dP * keep - sum(dO * O)), the row sums
    given (row_dots); 0 where P is (from visible[i] on)."""
    T = weights.dtype.type
    heads, length, width = weights.shape
    for h in prange(heads):
        for i in range(length):
            n = visible[i]
            d = row_dots[h, i]
            for j in range(n):
                dp = dweights[h, i, j] * keep[h, i, j] if keep.shape[0] else dweights[h, i, j]
                dweights[h, i, j] = weights[h, i, j] * (dp - d) * T(scale)
            dweights[h, i, n:] = T(0.0)


_ATTENTION_WEIGHTS = _serial_and_parallel(_attention_weights_loop)
_ATTENTION_RECOMPUTE = _serial_and_parallel(_attention_recompute_loop)
_ATTENTION_DSCORES = _serial_and_parallel(_attention_dscores_loop)

_NONE_2D = {dt: np.zeros((0, 0), dt) for dt in (np.float32, np.float64)}
_NONE_3D = {dt: np.zeros((0, 0, 0), dt) for dt in (np.float32, np.float64)}


def _mask_or_none(mask: Any, dtype: Any) -> Any:
    """The (L, S) mask, or an empty array that the passes read as "no mask"."""
    return _NONE_2D[dtype.type] if mask is None else np.ascontiguousarray(mask, dtype)


def _keep_or_none(keep: Any, dtype: Any) -> Any:
    """The dropout keep-mask as (heads, L, S), or an empty array: "no dropout"."""
    return _NONE_3D[dtype.type] if keep is None else _as_heads(np.ascontiguousarray(keep, dtype))


def _fits_kernels(q: Any, mask: Any, keep: Any) -> bool:
    """The compiled passes take float32/64 scores, a (L, S) mask and a scores-shaped keep."""
    return (q.dtype.type in _NONE_2D and q.ndim >= 2 and q.shape[-2] > 0
            and (mask is None or mask.ndim == 2)
            and (keep is None or keep.shape[:-2] == q.shape[:-2]))


def _visible_keys(mask: Any, length: int, source: int) -> Any:
    """For each query row, 1 + the last key its mask row leaves visible (not -inf): the keys
    after it get weight exactly 0, and the passes skip them (about half, causally). All S
    where there is no mask, and where a row hides every key (its softmax is NaN)."""
    if mask is None:
        return np.full(length, source, np.int64)
    seen = np.broadcast_to(mask != -np.inf, (length, source))  # NaN counts as visible
    last = source - np.argmax(seen[:, ::-1], axis=1)
    return np.where(seen.any(axis=1), last, source).astype(np.int64)


def _as_heads(a: Any) -> Any:
    """A (..., L, S) array as (heads, L, S) (a view when it can be, else a copy)."""
    return a.reshape((-1,) + a.shape[-2:])


SCORES_CHUNK_BYTES = 1 << 21
"""Attention works through the leading (batch) axis in chunks of about this many bytes of
scores, which stay in cache from the matmul that makes them, through the compiled pass, to
the matmul that reads them. At GPT-small's sizes (64 x 6 heads of 256 x 256) the whole
batch's scores are 100 MB, and the passes over them ran at memory speed."""


def _chunks(q: Any, k: Any) -> list[slice]:
    """Slices of the leading axis of q whose (..., L, S) scores hold about
    SCORES_CHUNK_BYTES each (one slice, all of it, when q has no leading axis)."""
    if q.ndim < 3:
        return [slice(None)]
    per_entry = math.prod(q.shape[1:-1]) * k.shape[-2] * q.itemsize
    step = max(1, SCORES_CHUNK_BYTES // max(per_entry, 1))
    return [slice(i, i + step) for i in range(0, q.shape[0], step)]


def attention(q: Any, k: Any, v: Any, mask: Any, scale: float, keep: Any, out: Any) -> Any:
    """reference.attention: the two matmuls on BLAS, scale, mask, softmax and dropout between
    them in one pass over the scores; a chunk of the batch at a time (`SCORES_CHUNK_BYTES`)."""
    if not _fits_kernels(q, mask, keep):
        return reference.attention(q, k, v, mask, scale, keep, out)
    log_sum_exp = np.empty(q.shape[:-1] + (1,), q.dtype)
    mask_rows = _mask_or_none(mask, q.dtype)
    visible = _visible_keys(mask, q.shape[-2], k.shape[-2])
    for part in _chunks(q, k):
        scores = np.matmul(q[part], np.swapaxes(k[part], -1, -2))  # a fresh (..., L, S) array
        heads = _as_heads(scores)
        _run(_ATTENTION_WEIGHTS, scores.size, heads, mask_rows, visible, scale,
             _keep_or_none(None if keep is None else keep[part], q.dtype),
             log_sum_exp[part].reshape(heads.shape[:2]))
        np.matmul(scores, v[part], out=out[part])
    return log_sum_exp


def attention_backward(q: Any, k: Any, v: Any, mask: Any, scale: float, keep: Any,
                       log_sum_exp: Any, out: Any, dout: Any,
                       dq: Any, dk: Any, dv: Any) -> None:
    """reference.attention_backward: four matmuls on BLAS, P recomputed in one pass and dS
    made in another; a chunk of the batch at a time. dO and O may be strided head views
    (PackedAttention's): BLAS reads them as they are, and sum(dO * O) is taken once, up front,
    instead of copying both into the heads layout."""
    if not _fits_kernels(q, mask, keep):
        reference.attention_backward(q, k, v, mask, scale, keep, log_sum_exp, out, dout,
                                     dq, dk, dv)
        return
    mask_rows = _mask_or_none(mask, q.dtype)
    visible = _visible_keys(mask, q.shape[-2], k.shape[-2])
    log_sum_exp = np.ascontiguousarray(log_sum_exp)
    dout = dout.astype(q.dtype, copy=False)
    row_dots = np.einsum("...d,...d->...", dout, out)  # (..., L): sum(dO * O) per query row
    for part in _chunks(q, k):
        qc, kc, keep_c = q[part], k[part], None if keep is None else keep[part]
        weights = np.matmul(qc, np.swapaxes(kc, -1, -2))
        _run(_ATTENTION_RECOMPUTE, weights.size, _as_heads(weights), mask_rows, visible, scale,
             log_sum_exp[part].reshape(-1, weights.shape[-2]))
        dropped = weights if keep_c is None else weights * keep_c
        np.matmul(np.swapaxes(dropped, -1, -2), dout[part], out=dv[part])
        dscores = np.matmul(dout[part], np.swapaxes(v[part], -1, -2))
        _run(_ATTENTION_DSCORES, weights.size, _as_heads(weights), _as_heads(dscores), visible,
             _keep_or_none(keep_c, q.dtype), row_dots[part].reshape(-1, weights.shape[-2]),
             scale)
        np.matmul(dscores, kc, out=dq[part])
        np.matmul(np.swapaxes(dscores, -1, -2), qc, out=dk[part])


# ----------------------------------------------------------------------------- embedding

@njit(**_OPTIONS)
def _embedding_backward_loop(ids, dout, dweight):  # noqa: ANN001, ANN202
    for i in range(ids.shape[0]):
        row = ids[i]
        for j in range(dout.shape[1]):
            dweight[row, j] += dout[i, j]


def embedding_backward(ids: Any, dout: Any, num_embeddings: int) -> Any:
    """reference.embedding_backward as one loop over the rows of dout."""
    rows = np.ascontiguousarray(dout).reshape(-1, dout.shape[-1])
    dweight = np.zeros((num_embeddings, rows.shape[1]), dout.dtype)
    flat = ids.reshape(-1).astype(np.int64, copy=False)
    _embedding_backward_loop(np.where(flat < 0, flat + num_embeddings, flat), rows, dweight)
    return dweight


# ----------------------------------------------------------------------------- optimizers

def _adam_loop(param, grad, m, v, l2, decay, beta1, beta2, step_size, rescale,  # noqa: ANN001
               eps):  # noqa: ANN001, ANN202
    T = param.dtype.type
    for i in prange(param.size):
        g = grad[i] + T(l2) * param[i]
        m[i] = T(beta1) * m[i] + T(1.0 - beta1) * g
        v[i] = T(beta2) * v[i] + T(1.0 - beta2) * g * g
        param[i] = param[i] * T(decay) - T(step_size) * m[i] / (
            math.sqrt(v[i]) * T(rescale) + T(eps))


_ADAM = _serial_and_parallel(_adam_loop)


def adam_step(param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool, step: int) -> None:
    """reference.adam_step as one pass: m / (1 - b1^t) and sqrt(v / (1 - b2^t)) become the
    scalars step_size = lr / (1 - b1^t) and rescale = 1 / sqrt(1 - b2^t)."""
    if not (param.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        reference.adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled,
                            step)
        return
    l2, decay = (0.0, 1.0 - lr * weight_decay) if decoupled else (weight_decay, 1.0)
    _run(_ADAM, param.size, param.reshape(-1),
         np.ascontiguousarray(grad, param.dtype).reshape(-1), m.reshape(-1), v.reshape(-1),
         l2, decay, beta1, beta2, lr / (1 - beta1 ** step), 1 / math.sqrt(1 - beta2 ** step),
         eps)


def _sum_of_squares_loop(a, partials):  # noqa: ANN001, ANN202
    n = a.size
    chunks = partials.shape[0]
    for c in prange(chunks):
        part = a[c * n // chunks:(c + 1) * n // chunks]  # (a slice: its loop vectorises)
        total = 0.0  # float64: a norm over millions of float32 squares keeps its digits
        for i in range(part.size):
            total += np.float64(part[i]) * np.float64(part[i])
        partials[c] = total


_SUM_OF_SQUARES = _serial_and_parallel(_sum_of_squares_loop)


def sum_of_squares(a: Any) -> Any:
    """reference.sum_of_squares, summed in float64 per chunk."""
    flat = np.ascontiguousarray(a).reshape(-1)
    partials = np.zeros(SUM_CHUNKS, np.float64)
    _run(_SUM_OF_SQUARES, flat.size, flat, partials)
    return a.dtype.type(partials.sum())


# ----------------------------------------------------------------------------- linear

def _column_sums_loop(a, partials):  # noqa: ANN001, ANN202
    rows, width = a.shape
    chunks = partials.shape[0]
    for c in prange(chunks):
        for r in range(c * rows // chunks, (c + 1) * rows // chunks):
            for j in range(width):
                partials[c, j] += a[r, j]


_COLUMN_SUMS = _serial_and_parallel(_column_sums_loop)


def bias_backward(dout: Any) -> Any:
    """reference.bias_backward, summed per chunk of rows."""
    rows = np.ascontiguousarray(dout)
    partials = np.zeros((max(1, min(SUM_CHUNKS, rows.shape[0])), rows.shape[1]), rows.dtype)
    _run(_COLUMN_SUMS, rows.size, rows, partials)
    return _sum_chunks(partials)


def set_num_threads(n: int) -> None:
    """Threads for the parallel kernels."""
    numba.set_num_threads(n)
