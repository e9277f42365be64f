"""Tensor: an array (NumPy or CuPy) plus what autograd needs to send gradients back to it.

Every operator is written out here as a call to a primitive in ``ops.py`` or a composition
of them, so reading this file shows how each Tensor method is built.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import backend, config

Shape = tuple[int, ...]


def _shape(shape: Sequence[Any]) -> Shape:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(n) for n in shape)


def _dtype(dtype: Any) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list[Callable[..., Any]], hook: Callable[..., Any]) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [2.0, 4.0, 6.0]
    """

    __slots__ = ("data", "grad", "_requires_grad", "_ctx", "_retains_grad", "_hooks", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data: Any, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        dtype = _dtype(dtype)
        if backend.is_array(data):
            target = backend.device_of(data) if device is None else backend.get_device(device)
        else:
            target = backend.get_device(device)
            if dtype is None:  # Python floats become float32, NumPy scalars keep their dtype
                from_python, kind = not isinstance(data, np.generic), type(data).__name__
                data = np.asarray(data)
                if data.dtype == np.float64 and from_python:
                    dtype = config.DEFAULT_FLOAT
                elif data.dtype.kind not in "biufc":
                    raise TypeError(f"Tensor: cannot make a tensor from a {kind} holding "
                                    f"{data.dtype} values; use numbers or bools")
        self.data = target.array(data, dtype)
        self.grad: Tensor | None = None
        self._ctx: Any = None
        self._retains_grad = False
        self._hooks: list[Callable[..., Any]] | None = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @staticmethod
    def _make(data: Any, requires_grad: bool = False, ctx: Any = None) -> "Tensor":
        """The internal constructor: wrap an array without copying or checking."""
        t = object.__new__(Tensor)
        if not backend.is_array(data):  # NumPy reductions return scalars, not 0-d arrays
            data = np.asarray(data)
        t.data, t.grad, t._requires_grad, t._ctx = data, None, requires_grad, ctx
        t._retains_grad, t._hooks = False, None
        return t

    # ------------------------------------------------------------------ attributes

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating-point tensors can require grad, not {self.dtype}")
        if self._ctx is not None and not value:
            raise RuntimeError("requires_grad can only be switched off on a leaf; use detach()")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def shape(self) -> Shape:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        """Number of elements, as in NumPy."""
        return self.data.size

    @property
    def device_obj(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def device(self) -> str:
        return self.device_obj.name

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Any:
        """The node that made this tensor (it has a readable ``name``), or None for a leaf."""
        return self._ctx

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        extra = f", dtype={self.dtype}, device={self.device}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx!r}"
        elif self._requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    __hash__ = object.__hash__  # == is elementwise, so identity hashing is kept explicitly

    # ------------------------------------------------------------------ conversion

    def numpy(self) -> np.ndarray:
        """A host NumPy copy (the one way data leaves a device)."""
        return backend.to_host(self.data)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python scalar, "
                             f"not shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: Any) -> "Tensor":
        target = backend.get_device(device)
        if target is self.device_obj:
            return self
        from .ops import ToDevice
        return ToDevice.apply(self, device=target)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def astype(self, dtype: Any) -> "Tensor":
        """A copy in ``dtype``; differentiable between float dtypes."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind not in "fc":
            return Tensor._make(self.data.astype(dtype))
        return ops.Cast.apply(self, dtype=dtype)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

    # ------------------------------------------------------------------ autograd

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that needs it."""
        autograd.backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if self._ctx is not None:
            self._retains_grad = True

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor
        replaces the gradient."""
        if not self._requires_grad:
            raise RuntimeError("register_hook: the tensor does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    def sum_to(self, shape: Shape, op: str = "sum_to", input_index: int = 0) -> "Tensor":
        """Sum over broadcast axes so the result has ``shape``: broadcasting undone."""
        shape = tuple(shape)
        lead = self.ndim - len(shape)
        if lead < 0 or any(n != 1 and n != m for n, m in zip(shape, self.shape[lead:])):
            raise RuntimeError(f"{op}: gradient of shape {self.shape} cannot be summed to input "
                               f"{input_index}'s shape {shape}")
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and self.shape[lead + i] != 1)
        out = self.sum(axis=axes, keepdims=True) if axes else self
        return out.reshape(*shape) if out.shape != shape else out

    # ------------------------------------------------------------------ creation

    @staticmethod
    def zeros(*shape: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> "Tensor":
        return Tensor.full(_shape(shape), 0.0, dtype=dtype, device=device,
                           requires_grad=requires_grad)

    @staticmethod
    def ones(*shape: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> "Tensor":
        return Tensor.full(_shape(shape), 1.0, dtype=dtype, device=device,
                           requires_grad=requires_grad)

    @staticmethod
    def full(shape: Any, value: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> "Tensor":
        """A tensor of ``shape`` filled with ``value`` (its dtype follows ``value`` if not given)."""
        dev = backend.get_device(device)
        if dtype is None:
            dtype = config.DEFAULT_FLOAT if isinstance(value, float) else np.asarray(value).dtype
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return Tensor(dev.xp.full(shape, value, dtype=dtype), requires_grad=requires_grad)

    @staticmethod
    def zeros_like(t: "Tensor", dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return Tensor.full(t.shape, 0, dtype=dtype or t.dtype, device=t.device,
                           requires_grad=requires_grad)

    @staticmethod
    def ones_like(t: "Tensor", dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return Tensor.full(t.shape, 1, dtype=dtype or t.dtype, device=t.device,
                           requires_grad=requires_grad)

    @staticmethod
    def randn(*shape: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> "Tensor":
        """Standard normal samples from the library's generator (see ``tl.manual_seed``)."""
        dev = backend.get_device(device)
        data = dev.randn(_shape(shape), np.dtype(dtype or config.DEFAULT_FLOAT))
        return Tensor(data, requires_grad=requires_grad)

    @staticmethod
    def rand(*shape: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> "Tensor":
        """Uniform samples in [0, 1) from the library's generator."""
        dev = backend.get_device(device)
        data = dev.rand(_shape(shape), np.dtype(dtype or config.DEFAULT_FLOAT))
        return Tensor(data, requires_grad=requires_grad)

    @staticmethod
    def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
               device: Any = None, requires_grad: bool = False) -> "Tensor":
        """Values from ``start`` to ``stop`` (exclusive); int64 unless a bound is a float."""
        if stop is None:
            start, stop = 0, start
        if dtype is None:
            floats = any(isinstance(v, float) for v in (start, stop, step))
            dtype = config.DEFAULT_FLOAT if floats else np.int64
        dev = backend.get_device(device)
        return Tensor(dev.xp.arange(start, stop, step, dtype=dtype), requires_grad=requires_grad)

    # ------------------------------------------------------------------ arithmetic

    def _operand(self, other: Any) -> "Tensor":
        """``other`` as a Tensor on this tensor's device; Python scalars take this dtype (so
        does ``np.float64``, a float subclass, as in PyTorch)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, int, float)):
            kind = self.dtype.kind
            if isinstance(other, bool):
                dtype = self.dtype
            elif isinstance(other, int):
                dtype = np.dtype(np.int64) if kind == "b" else self.dtype
            else:
                dtype = self.dtype if kind in "fc" else config.DEFAULT_FLOAT
            return Tensor._make(self.device_obj.xp.asarray(other, dtype=dtype))
        return Tensor(other, device=self.device)

    def _binary(self, op: Any, other: Any, reverse: bool = False) -> "Tensor":
        b = self._operand(other)
        a = self
        if reverse:
            a, b = b, a
        if a.dtype != b.dtype:
            dtype = _result_dtype(a, b)
            a, b = a.astype(dtype), b.astype(dtype)
        return op.apply(a, b)

    def __add__(self, other: Any) -> "Tensor":
        return self._binary(ops.Add, other)

    def __radd__(self, other: Any) -> "Tensor":
        return self._binary(ops.Add, other, reverse=True)

    def __sub__(self, other: Any) -> "Tensor":
        return self._binary(ops.Sub, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return self._binary(ops.Sub, other, reverse=True)

    def __mul__(self, other: Any) -> "Tensor":
        return self._binary(ops.Mul, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return self._binary(ops.Mul, other, reverse=True)

    def __truediv__(self, other: Any) -> "Tensor":
        b = self._operand(other)
        if self.dtype.kind not in "fc" and b.dtype.kind not in "fc":  # int / int is a float
            real = config.DEFAULT_FLOAT
            return self.astype(real)._binary(ops.Div, b.astype(real))
        return self._binary(ops.Div, b)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._operand(other) / self

    def __pow__(self, other: Any) -> "Tensor":
        return self._binary(ops.Pow, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return self._binary(ops.Pow, other, reverse=True)

    def __neg__(self) -> "Tensor":
        return ops.Neg.apply(self)

    def __pos__(self) -> "Tensor":
        return self

    def __matmul__(self, other: Any) -> "Tensor":
        return self.matmul(other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return self._operand(other).matmul(self)

    def matmul(self, other: Any) -> "Tensor":
        """Matrix product: 1-D, 2-D and batched (leading axes broadcast), as ``np.matmul``."""
        a, b = self, self._operand(other)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                             f"{a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                             f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        if a.dtype != b.dtype:
            dtype = _result_dtype(a, b)
            a, b = a.astype(dtype), b.astype(dtype)
        if a.ndim > 1 and b.ndim > 1:
            return ops.Matmul.apply(a, b)
        out = ops.Matmul.apply(a.reshape(1, -1) if a.ndim == 1 else a,
                               b.reshape(-1, 1) if b.ndim == 1 else b)
        shape = out.shape[:-2] + out.shape[-2 if a.ndim > 1 else -1:-1 if b.ndim == 1 else None]
        return out.reshape(*shape)

    # ------------------------------------------------------------------ comparisons (no grad)

    def _compare(self, name: str, other: Any, fn: Callable[[Any, Any], Any]) -> "Tensor":
        b = self._operand(other)
        if not backend.same_device([self.data, b.data]):
            raise RuntimeError(f"{name}: expected tensors on one device, got {self.device} "
                               f"and {b.device}")
        try:
            return Tensor._make(fn(self.data, b.data))
        except ValueError:
            raise ValueError(f"{name}: shapes {self.shape} and {b.shape} do not broadcast") from None

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare("eq", other, lambda a, b: a == b)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare("ne", other, lambda a, b: a != b)

    def __lt__(self, other: Any) -> "Tensor":
        return self._compare("lt", other, lambda a, b: a < b)

    def __le__(self, other: Any) -> "Tensor":
        return self._compare("le", other, lambda a, b: a <= b)

    def __gt__(self, other: Any) -> "Tensor":
        return self._compare("gt", other, lambda a, b: a > b)

    def __ge__(self, other: Any) -> "Tensor":
        return self._compare("ge", other, lambda a, b: a >= b)

    # ------------------------------------------------------------------ unary math

    def _floating(self) -> "Tensor":
        """Integer and bool inputs of float functions become float32, as in PyTorch."""
        return self if self.dtype.kind in "fc" else self.astype(config.DEFAULT_FLOAT)

    def exp(self) -> "Tensor":
        """d exp(x)/dx = exp(x)."""
        return ops.Exp.apply(self._floating())

    def log(self) -> "Tensor":
        """d ln(x)/dx = 1/x."""
        return ops.Log.apply(self._floating())

    def sqrt(self) -> "Tensor":
        """d sqrt(x)/dx = 1 / (2 sqrt(x))."""
        return ops.Sqrt.apply(self._floating())

    def abs(self) -> "Tensor":
        """d |x|/dx = sign(x)."""
        return ops.Abs.apply(self)

    def tanh(self) -> "Tensor":
        """d tanh(x)/dx = 1 - tanh(x)^2."""
        return ops.Tanh.apply(self._floating())

    def sigmoid(self) -> "Tensor":
        """d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x))."""
        return ops.Sigmoid.apply(self._floating())

    def relu(self) -> "Tensor":
        """d relu(x)/dx = [x > 0]."""
        return ops.Relu.apply(self)

    def erf(self) -> "Tensor":
        """d erf(x)/dx = 2/sqrt(pi) exp(-x^2)."""
        return ops.Erf.apply(self._floating())

    def gelu(self, approximate: str = "none") -> "Tensor":
        """x Phi(x) (``"none"``) or its tanh approximation (``"tanh"``), as in PyTorch (fused)."""
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")
        return fused.Gelu.apply(self, approximate=approximate)

    def maximum(self, other: Any) -> "Tensor":
        """Elementwise max; ties split the gradient evenly."""
        return self._binary(ops.Maximum, other)

    def minimum(self, other: Any) -> "Tensor":
        """Elementwise min, as -max(-a, -b)."""
        return -((-self).maximum(-self._operand(other)))

    def clip(self, lo: float | None = None, hi: float | None = None) -> "Tensor":
        """Values limited to [lo, hi]; the gradient passes where lo <= x <= hi."""
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of lo and hi")
        return ops.Clip.apply(self, lo=lo, hi=hi)

    def masked_fill(self, mask: Any, value: float) -> "Tensor":
        """``value`` where ``mask`` is True, else this tensor."""
        return where(mask, value, self)

    # ------------------------------------------------------------------ reductions

    def sum(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return ops.Sum.apply(self, axis=_axis(axis), keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        count = _count(self.shape, axis)
        return self.sum(axis, keepdims) * (1.0 / count if count else math.nan)

    def max(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        """The largest value; the gradient is split evenly among ties."""
        if self.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {self.shape}")
        return ops.Max.apply(self, axis=_axis(axis), keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return -((-self).max(axis, keepdims))

    def var(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> "Tensor":
        """sum((x - mean)^2) / (n - correction)."""
        centered = self - self.mean(axis, keepdims=True)
        return (centered * centered).sum(axis, keepdims) / max(_count(self.shape, axis) - correction, 0)

    def std(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> "Tensor":
        return self.var(axis, keepdims, correction).sqrt()

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        """log(sum(exp(x))), computed stably by shifting by the (constant) max."""
        top = self.max(axis, keepdims=True).detach()
        # an infinite max (all -inf, or a +inf) must not shift: inf - inf would give nan
        top = where(top.abs() == math.inf, 0.0, top)
        out = (self - top).exp().sum(axis, keepdims=True).log() + top
        return out if keepdims else out.reshape(*ops._reduced_shape(self.shape, _axis(axis)))

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> "Tensor":
        return Tensor._make(self.data.argmax(axis=axis, keepdims=keepdims))

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> "Tensor":
        return Tensor._make(self.data.argmin(axis=axis, keepdims=keepdims))

    def softmax(self, axis: int = -1) -> "Tensor":
        """exp(x) / sum(exp(x)) along ``axis`` (fused)."""
        return fused.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """x - logsumexp(x) along ``axis`` (fused)."""
        return fused.LogSoftmax.apply(self, axis=axis)

    # ------------------------------------------------------------------ shape and movement

    def reshape(self, *shape: Any) -> "Tensor":
        shape = _shape(shape)
        return self if shape == self.shape else ops.Reshape.apply(self, shape=shape)

    view = reshape

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(_wrap(d, self.ndim, "permute") for d in _shape(dims))
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the axes of shape {self.shape}")
        return ops.Permute.apply(self, dims=dims)

    def transpose(self, axis0: int = 0, axis1: int = 1) -> "Tensor":
        dims = list(range(self.ndim))
        axis0, axis1 = _wrap(axis0, self.ndim, "transpose"), _wrap(axis1, self.ndim, "transpose")
        dims[axis0], dims[axis1] = dims[axis1], dims[axis0]
        return self.permute(*dims)

    def unsqueeze(self, axis: int) -> "Tensor":
        axis = _wrap(axis, self.ndim + 1, "unsqueeze")
        return self.reshape(*self.shape[:axis], 1, *self.shape[axis:])

    def squeeze(self, axis: Any = None) -> "Tensor":
        axes = ops._axes(self.shape, axis)
        return self.reshape(*(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def flatten(self, start: int = 0, end: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _wrap(start, self.ndim, "flatten"), _wrap(end, self.ndim, "flatten")
        return self.reshape(*self.shape[:start], -1, *self.shape[end + 1:])

    def expand(self, *shape: Any) -> "Tensor":
        """Broadcast to ``shape`` without copying (-1 keeps a dimension)."""
        shape = _shape(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self if shape == self.shape else ops.Expand.apply(self, shape=shape)

    def split(self, size_or_sizes: int | Sequence[int], axis: int = 0) -> list["Tensor"]:
        """Pieces of ``size`` along ``axis`` (the last may be smaller), or of the given sizes."""
        length = self.shape[axis]
        if isinstance(size_or_sizes, int):
            sizes = [min(size_or_sizes, length - s) for s in range(0, length, size_or_sizes)]
        else:
            sizes = list(size_or_sizes)
            if sum(sizes) != length:
                raise ValueError(f"split: sizes {sizes} do not add up to {length} (axis {axis} "
                                 f"of shape {self.shape})")
        lead, start, pieces = (slice(None),) * (axis % self.ndim), 0, []
        for size in sizes:
            pieces.append(self[lead + (slice(start, start + size),)])
            start += size
        return pieces

    def chunk(self, chunks: int, axis: int = 0) -> list["Tensor"]:
        return self.split(-(-self.shape[axis] // chunks), axis)

    def __getitem__(self, index: Any) -> "Tensor":
        return ops.GetItem.apply(self, index=_index(index, self))


# ---------------------------------------------------------------------- helpers


def _promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's rule: a float beats an integer or bool; otherwise NumPy's promotion."""
    if (a.kind in "fc") != (b.kind in "fc"):
        return a if a.kind in "fc" else b
    return np.promote_types(a, b)


def _result_dtype(a: Tensor, b: Tensor) -> np.dtype:
    """PyTorch's rule for operands: a 0-d one (e.g. ``np.sqrt(2.0)``) of the same kind as a
    tensor with dimensions takes that tensor's dtype, so it cannot silently widen float32."""
    if (a.ndim == 0) != (b.ndim == 0) and _kind(a.dtype) == _kind(b.dtype):
        return b.dtype if a.ndim == 0 else a.dtype
    return _promote(a.dtype, b.dtype)


def _kind(dtype: np.dtype) -> int:
    """PyTorch's dtype categories, in promotion order: bool, integer, float, complex."""
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[dtype.kind]


def _wrap(axis: int, ndim: int, op: str) -> int:
    """``axis`` in [0, ndim), negative ones counted from the end; out of range is an error
    (wrapping it silently would act on the wrong axis)."""
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def _count(shape: Shape, axis: Any) -> int:
    return math.prod(shape[a] for a in ops._axes(shape, _axis(axis)))


def _index(index: Any, t: Tensor) -> tuple[Any, ...]:
    """A NumPy index tuple: tensors and lists become arrays, boolean masks become positions."""
    items = index if isinstance(index, tuple) else (index,)
    xp = t.device_obj.xp
    out: list[Any] = []
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, list):
            item = xp.asarray(item)
        if backend.is_array(item):
            if item.dtype == bool:
                out.extend(item.nonzero())
                continue
            if item.dtype.kind not in "iu":
                raise IndexError(f"index: arrays used as indices must be integer or bool, "
                                 f"not {item.dtype}")
        out.append(item)
    return tuple(out)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is True, else ``b`` (broadcast together)."""
    if not isinstance(cond, Tensor):
        cond = Tensor(cond)
    if cond.dtype != bool:
        raise TypeError(f"where: the condition must be a bool tensor, not {cond.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=cond.device)
    a = a if isinstance(a, Tensor) else b._operand(a)
    b = b if isinstance(b, Tensor) else a._operand(b)
    if a.dtype != b.dtype:
        dtype = _result_dtype(a, b)
        a, b = a.astype(dtype), b.astype(dtype)
    return ops.Where.apply(cond, a, b)


def cat(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    return ops.Cat.apply(*tensors, axis=axis)


def stack(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(axis) for t in tensors], axis)


from . import autograd, fused, ops  # noqa: E402  (the ops are built on Tensor)
