"""The primitive ops: each forward (on raw arrays) beside its backward (on Tensors).

Every other Tensor method is composed of these. A backward receives the upstream gradient
``dout`` as a Tensor and returns one gradient per input (None where not needed); because it
is written with Tensor ops, it can itself be differentiated (``create_graph=True``).
Binary ops broadcast like NumPy; the engine sums each gradient back to its input's shape
(``Tensor.sum_to``), the one place where broadcasting is undone.
"""
from __future__ import annotations

import math
from typing import Any

from . import backend
from .autograd import Op
from .tensor import Tensor, drop_leading_ones, where


def _xp(array: Any) -> Any:
    return backend.device_of(array).xp


def _read_crosswise(ctx: Any) -> list[Tensor]:
    """For a product: the gradient of a reads b, that of b reads a."""
    a, b = ctx.parents
    return [p for p, need in ((b, ctx.needs_input_grad[0]), (a, ctx.needs_input_grad[1])) if need]


def _const(array: Any) -> Tensor:
    """A Tensor that carries no gradient (masks and other piecewise-constant factors)."""
    return Tensor._make(array)


# ----------------------------------------------------------------------------- elementwise


class Add(Op):
    """d(a + b)/da = 1, d(a + b)/db = 1."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, dout):
        return dout, dout


class Sub(Op):
    """d(a - b)/da = 1, d(a - b)/db = -1."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, dout):
        return dout, (-dout if ctx.needs_input_grad[1] else None)


class Mul(Op):
    """d(a * b)/da = b, d(a * b)/db = a."""

    @staticmethod
    def forward(ctx, a, b):
        return a * b

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.parents
        da = dout * b if ctx.needs_input_grad[0] else None
        db = dout * a if ctx.needs_input_grad[1] else None
        return da, db

    def read_inputs(self):
        return _read_crosswise(self)


class Div(Op):
    """d(a / b)/da = 1 / b, d(a / b)/db = -a / b^2."""

    @staticmethod
    def forward(ctx, a, b):
        return a / b

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.parents
        da = dout / b if ctx.needs_input_grad[0] else None
        db = -dout * a / (b * b) if ctx.needs_input_grad[1] else None
        return da, db

    def read_inputs(self):
        a, b = self.parents
        return (a, b) if self.needs_input_grad[1] else (b,)


class Pow(Op):
    """d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a; as in PyTorch, d/da = 0 where b = 0 and
    a = 0 or NaN (a^0 = 1 is constant; the formula gives 0 * inf or NaN) and d/db = 0 where
    a = 0 <= b (the formula gives 0 * -inf)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx._out = a ** b
        return ctx._out

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.parents
        da = db = None
        if ctx.needs_input_grad[0]:
            zero = (b.data == 0) & ((a.data == 0) | (a.data != a.data))  # a = 0 or NaN
            if zero.any():
                exponent = where(_const(zero), 1, b)  # 1 * a^0 stands in for 0 * 0^-1 or 0 * NaN
                da = where(_const(zero), 0, dout * exponent * a ** (exponent - 1))
            else:
                da = dout * b * a ** (b - 1)
        if ctx.needs_input_grad[1]:
            zero = (a.data == 0) & (b.data >= 0)
            if zero.any():
                safe = where(_const(zero), 1, a)  # ln 1 = 0 stands in for ln 0 = -inf
                db = where(_const(zero), 0, dout * ctx.output() * safe.log())
            else:
                db = dout * ctx.output() * a.log()
        return da, db


class Maximum(Op):
    """d max(a, b)/da = [a > b] (+ 1/2 where a == b, so ties split the gradient)."""

    @staticmethod
    def forward(ctx, a, b):
        share_a = _xp(a).asarray(a > b, dtype=a.dtype)  # an array even for 0-d inputs
        share_a[a == b] = 0.5
        ctx.save_for_backward(share_a)
        return _xp(a).maximum(a, b)

    @staticmethod
    def backward(ctx, dout):
        share_a = _const(ctx.saved_tensors[0])
        return dout * share_a, dout * (1 - share_a)


class Neg(Op):
    """d(-x)/dx = -1."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, dout):
        return -dout


class Exp(Op):
    """d exp(x)/dx = exp(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx._out = _xp(x).exp(x)
        return ctx._out

    @staticmethod
    def backward(ctx, dout):
        return dout * ctx.output()


class Log(Op):
    """d ln(x)/dx = 1 / x."""

    @staticmethod
    def forward(ctx, x):
        return _xp(x).log(x)

    @staticmethod
    def backward(ctx, dout):
        return dout / ctx.parents[0]


class Sqrt(Op):
    """d sqrt(x)/dx = 1 / (2 sqrt(x))."""

    @staticmethod
    def forward(ctx, x):
        ctx._out = _xp(x).sqrt(x)
        return ctx._out

    @staticmethod
    def backward(ctx, dout):
        return dout / (2 * ctx.output())


class Tanh(Op):
    """d tanh(x)/dx = 1 - tanh(x)^2."""

    @staticmethod
    def forward(ctx, x):
        ctx._out = _xp(x).tanh(x)
        return ctx._out

    @staticmethod
    def backward(ctx, dout):
        y = ctx.output()
        return dout * (1 - y * y)


class Sigmoid(Op):
    """d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x))."""

    @staticmethod
    def forward(ctx, x):
        xp = _xp(x)
        # e^-|x| never overflows; for x < 0, e^x / (1 + e^x) keeps sigmoid's relative precision
        # where 1 - tanh would cancel to 0 (sigmoid(-20) in float32, sigmoid(-40) in float64)
        e = xp.exp(-xp.abs(x))
        ctx._out = xp.where(x >= 0, 1, e) / (1 + e)
        return ctx._out

    @staticmethod
    def backward(ctx, dout):
        y = ctx.output()
        return dout * y * (1 - y)


class Erf(Op):
    """d erf(x)/dx = 2 / sqrt(pi) exp(-x^2)."""

    @staticmethod
    def forward(ctx, x):
        return backend.erf(x)

    @staticmethod
    def backward(ctx, dout):
        x = ctx.parents[0]
        return dout * (2 / math.sqrt(math.pi)) * (-(x * x)).exp()


class Relu(Op):
    """d relu(x)/dx = [x > 0] (and 1 at NaN, which is not <= 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        return _xp(x).maximum(x, 0)

    @staticmethod
    def backward(ctx, dout):
        return dout * _const(~(ctx.parents[0].data <= 0))


class Abs(Op):
    """d |x|/dx = sign(x) (0 at 0, and at NaN, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        xp = _xp(x)
        ctx.save_for_backward((x > 0).astype(x.dtype) - (x < 0))
        return xp.abs(x)

    @staticmethod
    def backward(ctx, dout):
        (sign,) = ctx.saved_tensors
        return dout * _const(sign)


class Clip(Op):
    """d clip(x, lo, hi)/dx = [lo <= x <= hi] (the bounds pass the gradient, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        inside = True
        if lo is not None:
            inside = x >= lo
        if hi is not None:
            inside = inside & (x <= hi)
        ctx.save_for_backward(inside)
        return _xp(x).clip(x, lo, hi)

    @staticmethod
    def backward(ctx, dout):
        (inside,) = ctx.saved_tensors
        return dout * _const(inside)


class Where(Op):
    """d where(c, a, b)/da = [c], d/db = [not c]; the condition gets no gradient."""

    @staticmethod
    def forward(ctx, cond, a, b):
        return _xp(a).where(cond, a, b)

    @staticmethod
    def backward(ctx, dout):
        cond = ctx.parents[0]
        zero = Tensor.zeros_like(dout)
        da = Where.apply(cond, dout, zero) if ctx.needs_input_grad[1] else None
        db = Where.apply(cond, zero, dout) if ctx.needs_input_grad[2] else None
        return None, da, db


class Cast(Op):
    """d astype(x)/dx = 1, with the gradient cast back to x's dtype."""

    keeps_inputs = False  # the backward needs x's dtype, not its values

    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, dout):
        return dout.astype(ctx.parents[0].dtype)


# ----------------------------------------------------------------------------- reductions


class Sum(Op):
    """d sum(x)/dx = 1: the gradient is broadcast back over the summed axes."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dout):
        x = ctx.parents[0]
        return dout.reshape(_kept_shape(x.shape, ctx.kwargs["axis"])).expand(*x.shape)


class Max(Op):
    """d max(x)/dx = [x == max] / (number of maxima): ties split the gradient evenly."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        top = x.max(axis=axis, keepdims=True)
        ctx.save_for_backward(top)
        return top if keepdims else top.reshape(_reduced_shape(x.shape, axis))

    @staticmethod
    def backward(ctx, dout):
        (top,) = ctx.saved_tensors
        x, axis = ctx.parents[0], ctx.kwargs["axis"]
        is_top = x.data == top
        share = is_top / is_top.sum(axis=axis, keepdims=True, dtype=x.dtype)
        return dout.reshape(_kept_shape(x.shape, axis)) * _const(share)


def _axes(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """Normalised reduction axes (None means all)."""
    if axis is None:
        return tuple(range(len(shape)))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    bound = max(len(shape), 1)  # a 0-d tensor takes axis 0 or -1, as in PyTorch
    for a in axes:
        if not -bound <= a < bound:  # never wrap silently onto another axis
            raise IndexError(f"axis {a} is out of range for shape {shape}")
    return tuple(a % len(shape) if len(shape) else a for a in axes)


def _kept_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = _axes(shape, axis)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _reduced_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = _axes(shape, axis)
    return tuple(n for i, n in enumerate(shape) if i not in axes)


# ----------------------------------------------------------------------------- movement


class Reshape(Op):
    """Reshape moves no values: the gradient is reshaped back."""

    keeps_inputs = False
    makes_view = True

    @staticmethod
    def forward(ctx, x, shape):
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, dout):
        return dout.reshape(*ctx.parents[0].shape)


class Permute(Op):
    """The gradient of a permutation of axes is the inverse permutation."""

    keeps_inputs = False
    makes_view = True

    @staticmethod
    def forward(ctx, x, dims):
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, dout):
        dims = ctx.kwargs["dims"]
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d] = i
        return dout.permute(*inverse)


class Expand(Op):
    """Broadcasting copies values, so the gradient sums over the copies."""

    keeps_inputs = False
    makes_view = True

    @staticmethod
    def forward(ctx, x, shape):
        return _xp(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, dout):
        return dout.sum_to(ctx.parents[0].shape)


class GetItem(Op):
    """Indexing picks values; the gradient is scattered back (repeated indices accumulate)."""

    keeps_inputs = False
    makes_view = True  # basic indexing does; Function.apply checks that the memory is shared

    @staticmethod
    def forward(ctx, x, index):
        if any(i is Ellipsis for i in index):
            return x[index]
        return x[index + (Ellipsis,)]  # a trailing ... keeps x[0] of a vector a 0-d view

    @staticmethod
    def backward(ctx, dout):
        return ScatterAdd.apply(dout, shape=ctx.parents[0].shape, index=ctx.kwargs["index"])


class SetItem(Op):
    """x with x[index] = v: d/dx = dout, zero at ``index`` (those values were overwritten);
    d/dv = dout[index] (summed over v's broadcast axes by the engine)."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, x, v, index):
        out = x.copy()
        out[index] = drop_leading_ones(v)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, v = ctx.parents
        index = ctx.kwargs["index"]
        dx = dv = None
        if ctx.needs_input_grad[0]:
            kept = _xp(dout.data).ones(x.shape, dtype=bool)
            kept[index] = False
            dx = dout * _const(kept)
        if ctx.needs_input_grad[1]:
            dv = GetItem.apply(dout, index=index)
            if v.ndim > dv.ndim:  # NumPy lets v carry extra leading 1s
                dv = dv.reshape(*(1,) * (v.ndim - dv.ndim), *dv.shape)
        return dx, dv


class Clone(Op):
    """d clone(x)/dx = 1: a copy in new memory."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, dout):
        return dout


class ScatterAdd(Op):
    """zeros(shape)[index] += x, the adjoint of GetItem: its gradient is dout[index]."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, x, shape, index):
        out = _xp(x).zeros(shape, dtype=x.dtype)
        if any(backend.is_array(i) for i in index):
            backend.index_add(out, index, x)
        else:  # basic indexing never repeats a position: plain assignment is enough
            out[index] = x
        return out

    @staticmethod
    def backward(ctx, dout):
        return GetItem.apply(dout, index=ctx.kwargs["index"])


class Cat(Op):
    """Concatenation: each input's gradient is its slice of dout."""

    keeps_inputs = False

    @staticmethod
    def forward(ctx, *xs, axis):
        return _xp(xs[0]).concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        axis, start, grads = ctx.kwargs["axis"], 0, []
        for x, need in zip(ctx.parents, ctx.needs_input_grad):
            stop = start + x.shape[axis]
            grads.append(dout[(slice(None),) * (axis % dout.ndim) + (slice(start, stop),)]
                         if need else None)
            start = stop
        return tuple(grads)


# ----------------------------------------------------------------------------- matmul


class Matmul(Op):
    """d(a @ b)/da = dout @ b^T, d(a @ b)/db = a^T @ dout (inputs at least 2-D)."""

    @staticmethod
    def forward(ctx, a, b):
        return a @ b

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.parents
        da = dout @ b.transpose(-1, -2) if ctx.needs_input_grad[0] else None
        db = None
        if ctx.needs_input_grad[1]:
            if b.ndim == 2 and a.ndim > 2:  # fold the batch into one large GEMM
                db = a.reshape(-1, a.shape[-1]).transpose(0, 1) @ dout.reshape(-1, dout.shape[-1])
            else:
                db = a.transpose(-1, -2) @ dout
        return da, db

    def read_inputs(self):
        return _read_crosswise(self)


class ToDevice(Op):
    """A copy between devices; the gradient is copied back."""

    keeps_inputs = False  # the backward needs x's device, not its values

    @staticmethod
    def forward(ctx, x, device):
        return device.array(x)

    @staticmethod
    def backward(ctx, dout):
        return dout.to(ctx.parents[0].device)
