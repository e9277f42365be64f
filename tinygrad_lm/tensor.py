"""Tensor: an array (NumPy or CuPy) plus what autograd needs to send gradients back to it.

Every operator is written out here as a call to a primitive in ``ops.py`` or a composition
of them, so reading this file shows how each Tensor method is built.
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Callable, Iterable, NamedTuple, Sequence

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
        """Unregister the hook (a second call does nothing)."""
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate.

    Python floats become float32, Python ints int64; arithmetic broadcasts as in NumPy. The
    data is copied, as ``torch.tensor`` does (``tl.from_numpy`` shares an array instead).

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [2.0, 4.0, 6.0]
    >>> (Tensor([[1.0], [2.0]]) + Tensor([10.0, 20.0])).tolist()
    [[11.0, 21.0], [12.0, 22.0]]
    >>> (Tensor([1, 2]) / 2).tolist(), (2 * Tensor([1.5]) - 1).tolist()
    ([0.5, 1.0], [2.0])
    """

    __slots__ = ("data", "grad", "_requires_grad", "_ctx", "_hooks", "_version", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data: Any, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        source, dtype = data, _dtype(dtype)
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
        array = target.array(data, dtype)
        if array is source or (isinstance(source, np.ndarray) and isinstance(array, np.ndarray)
                               and np.may_share_memory(array, source)):
            array = array.copy()  # the caller's array stays theirs, as with torch.tensor
        self._adopt(array, requires_grad)

    def _adopt(self, array: Any, requires_grad: bool) -> None:
        """Take ``array`` (no copy) as this tensor's data: a fresh leaf."""
        self.data = array
        self.grad: Tensor | None = None
        self._ctx: Any = None
        self._hooks: list[Callable[..., Any]] | None = None
        self._version: list[int] | None = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @staticmethod
    def _make(data: Any, requires_grad: bool = False, ctx: Any = None) -> "Tensor":
        """The internal constructor: wrap an array without copying or checking."""
        t = object.__new__(Tensor)
        if not backend.is_array(data):  # NumPy reductions return scalars, not 0-d arrays
            data = np.asarray(data)
        t.data, t.grad, t._requires_grad, t._ctx = data, None, requires_grad, ctx
        t._hooks = t._version = None
        return t

    # ------------------------------------------------------------------ attributes

    @property
    def requires_grad(self) -> bool:
        """Whether ops on this tensor are recorded for backward (floating dtypes only).

        >>> import tinygrad_lm as tl
        >>> x = Tensor([1.0], requires_grad=True)
        >>> with tl.no_grad(): y = x * 2
        >>> (x * 2).requires_grad, y.requires_grad
        (True, False)
        """
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating-point tensors can require grad, not {self.dtype}")
        if self._ctx is not None and not value:
            raise RuntimeError("requires_grad can only be switched off on a leaf; use detach()")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place and return this tensor (for chaining).

        >>> Tensor([1.0]).requires_grad_().requires_grad
        True
        """
        self.requires_grad = requires_grad
        return self

    @property
    def shape(self) -> Shape:
        """The dimensions, a tuple of ints.

        >>> Tensor([[1, 2, 3], [4, 5, 6]]).shape
        (2, 3)
        """
        return self.data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions (``len(shape)``)."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the elements.

        >>> Tensor([1.0]).dtype.name, Tensor([1]).dtype.name, Tensor([True]).dtype.name
        ('float32', 'int64', 'bool')
        """
        return self.data.dtype

    def size(self, dim: int | None = None) -> Any:
        """The shape (PyTorch's ``size()``), or the length of dimension ``dim``.

        >>> x = Tensor.zeros(2, 3)
        >>> x.size(), x.size(1), x.size(-2)
        ((2, 3), 3, 2)
        """
        if dim is None:
            return self.shape
        return self.shape[_wrap(dim, self.ndim, "size")]

    def numel(self) -> int:
        """The number of elements.

        >>> Tensor.zeros(2, 3).numel(), Tensor(1.0).numel()
        (6, 1)
        """
        return self.data.size

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for ``ndim``).

        >>> Tensor.zeros(2, 3).dim()
        2
        """
        return self.data.ndim

    def _counter(self) -> list[int]:
        """The version counter of this tensor's memory, shared with its views (made on first
        use): the write-clock ticks of the last in-place write and of the last one recorded
        in the graph (see ``_inplace``)."""
        if self._version is None:
            self._version = [0, 0]
        return self._version

    @property
    def device_obj(self) -> backend.Device:
        """The ``backend.Device`` holding the data (its ``xp`` is NumPy or CuPy)."""
        return backend.device_of(self.data)

    @property
    def device(self) -> str:
        """The device name, e.g. ``"cpu"`` or ``"cuda:0"``.

        >>> Tensor([1.0], device="cpu").device
        'cpu'
        """
        return self.device_obj.name

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (inputs, parameters, detached)."""
        return self._ctx is None

    @property
    def grad_fn(self) -> Any:
        """The node that made this tensor (it has a readable ``name``), or None for a leaf."""
        return self._ctx

    @property
    def T(self) -> "Tensor":
        """All axes reversed (the matrix transpose for 2-D); the gradient is reversed back.

        >>> Tensor.zeros(2, 3, 4).T.shape
        (4, 3, 2)
        """
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
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__  # == is elementwise, so identity hashing is kept explicitly

    # ------------------------------------------------------------------ conversion

    def numpy(self) -> np.ndarray:
        """A host NumPy copy (the one way data leaves a device).

        >>> type(Tensor([1.0]).numpy()).__name__
        'ndarray'
        """
        return backend.to_host(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python scalar.

        >>> Tensor([2.5]).item(), Tensor(3).item()
        (2.5, 3)
        """
        if self.numel() != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python scalar, "
                             f"not shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists of Python scalars.

        >>> Tensor([[1, 2], [3, 4]]).tolist()
        [[1, 2], [3, 4]]
        """
        return self.numpy().tolist()

    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> "Tensor":
        """This tensor on another device and/or in another dtype, as PyTorch's ``to``:
        ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other_tensor)``. Returns
        itself when nothing changes; the gradient moves (and is cast) back.

        >>> import tinygrad_lm as tl
        >>> x = Tensor([1.0])
        >>> x.to("cpu") is x, x.to(tl.float64).dtype.name, x.to("cpu", "float16").dtype.name
        (True, 'float64', 'float16')
        """
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, backend.Device) or (
                    isinstance(arg, str) and arg.partition(":")[0] in ("cpu", "cuda")):
                device = arg
            else:
                dtype = arg
        out = self if dtype is None else self.astype(dtype)
        if device is None:
            return out
        target = backend.get_device(device)
        if target is out.device_obj:
            return out
        from .ops import ToDevice
        return ToDevice.apply(out, device=target)

    def cpu(self) -> "Tensor":
        """``to("cpu")``."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        """``to("cuda:<index>")``; needs CuPy and a GPU."""
        return self.to(f"cuda:{index}")

    def astype(self, dtype: Any) -> "Tensor":
        """A copy in ``dtype``; differentiable between float dtypes (the gradient is cast back).

        >>> Tensor([1.5, -2.5]).astype("int64").tolist()
        [1, -2]
        >>> Tensor([1, 2]).astype("float16").dtype.name
        'float16'
        """
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind not in "fc":
            return Tensor._make(self.data.astype(dtype))
        return ops.Cast.apply(self, dtype=dtype)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph: no gradient flows through it.

        >>> x = Tensor([1.0], requires_grad=True)
        >>> y = (x * 2).detach()
        >>> y.requires_grad, y.is_leaf, y.tolist()
        (False, True, [2.0])
        """
        out = Tensor._make(self.data)
        out._version = self._counter()  # the same memory: in-place writes show in both
        return out

    def clone(self) -> "Tensor":
        """A copy in new memory; d clone(x)/dx = 1.

        >>> x = Tensor([1.0]); y = x.clone(); _ = y.fill_(5.0); x.tolist()
        [1.0]
        """
        return ops.Clone.apply(self)

    def float(self) -> "Tensor":
        """``to(float32)``."""
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        """``to(float64)``."""
        return self.astype(np.float64)

    def half(self) -> "Tensor":
        """``to(float16)``."""
        return self.astype(np.float16)

    def long(self) -> "Tensor":
        """``to(int64)`` (no gradient).

        >>> Tensor([1.7, -1.7]).long().tolist(), Tensor([0.0, 2.0]).bool().tolist()
        ([1, -1], [False, True])
        """
        return self.astype(np.int64)

    def int(self) -> "Tensor":
        """``to(int32)`` (no gradient)."""
        return self.astype(np.int32)

    def bool(self) -> "Tensor":
        """``to(bool)`` (no gradient)."""
        return self.astype(np.bool_)

    # ------------------------------------------------------------------ autograd

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that needs it.

        A non-scalar tensor needs ``gradient`` (the upstream gradient, same shape).

        >>> x = Tensor([2.0, 3.0], requires_grad=True)
        >>> (x ** 3).sum().backward()
        >>> x.grad.tolist()  # d x^3/dx = 3 x^2
        [12.0, 27.0]
        """
        autograd.backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward.

        >>> x = Tensor([1.0], requires_grad=True)
        >>> y = x * 3; y.retain_grad()
        >>> (y * y).sum().backward(); y.grad.tolist()
        [6.0]
        """
        if self._ctx is not None:  # kept on the node: the graph may hold a placeholder for self
            self._ctx._retained = weakref.ref(self)

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor
        replaces the gradient.

        >>> x = Tensor([1.0, 2.0], requires_grad=True)
        >>> handle = x.register_hook(lambda g: g * 10)
        >>> x.sum().backward(); x.grad.tolist()
        [10.0, 10.0]
        """
        if not self._requires_grad:
            raise RuntimeError("register_hook: the tensor does not require grad")
        owner = self if self._ctx is None else self._ctx  # a non-leaf's hooks live on its node
        if owner._hooks is None:
            owner._hooks = []
        owner._hooks.append(hook)
        return RemovableHandle(owner._hooks, hook)

    def sum_to(self, shape: Shape, op: str = "sum_to", input_index: int = 0) -> "Tensor":
        """Sum over broadcast axes so the result has ``shape``: broadcasting undone.

        >>> Tensor.ones(2, 3).sum_to((1, 3)).tolist()
        [[2.0, 2.0, 2.0]]
        """
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
        """A tensor of zeros; ``zeros(2, 3)`` and ``zeros((2, 3))`` alike (float32 by default).

        >>> Tensor.zeros(2, 3).shape, Tensor.zeros((2,)).tolist()
        ((2, 3), [0.0, 0.0])
        """
        return Tensor.full(_shape(shape), 0.0, dtype=dtype, device=device,
                           requires_grad=requires_grad)

    @staticmethod
    def ones(*shape: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> "Tensor":
        """A tensor of ones.

        >>> Tensor.ones(2, dtype="int64").tolist()
        [1, 1]
        """
        return Tensor.full(_shape(shape), 1.0, dtype=dtype, device=device,
                           requires_grad=requires_grad)

    @staticmethod
    def full(shape: Any, value: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> "Tensor":
        """A tensor of ``shape`` filled with ``value`` (its dtype follows ``value`` if not given).

        >>> Tensor.full((2,), 7).tolist(), Tensor.full(2, 0.5).dtype.name
        ([7, 7], 'float32')
        """
        dev = backend.get_device(device)
        if dtype is None:
            dtype = config.DEFAULT_FLOAT if isinstance(value, float) else np.asarray(value).dtype
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return Tensor._make(dev.xp.full(shape, value, dtype=dtype)).requires_grad_(requires_grad)

    @staticmethod
    def zeros_like(t: "Tensor", dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        """Zeros with the shape, dtype and device of ``t``.

        >>> Tensor.zeros_like(Tensor([[1, 2]])).tolist()
        [[0, 0]]
        """
        return Tensor.full(t.shape, 0, dtype=dtype or t.dtype, device=t.device,
                           requires_grad=requires_grad)

    @staticmethod
    def ones_like(t: "Tensor", dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        """Ones with the shape, dtype and device of ``t``.

        >>> Tensor.ones_like(Tensor([1.5, 2.5])).tolist()
        [1.0, 1.0]
        """
        return Tensor.full(t.shape, 1, dtype=dtype or t.dtype, device=t.device,
                           requires_grad=requires_grad)

    @staticmethod
    def randn(*shape: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> "Tensor":
        """Standard normal samples from the library's generator (see ``tl.manual_seed``).

        >>> import tinygrad_lm as tl
        >>> tl.manual_seed(0); a = Tensor.randn(2, 3)
        >>> tl.manual_seed(0); a.shape, a.dtype.name, a.tolist() == Tensor.randn(2, 3).tolist()
        ((2, 3), 'float32', True)
        """
        dev = backend.get_device(device)
        data = dev.randn(_shape(shape), np.dtype(dtype or config.DEFAULT_FLOAT))
        return Tensor._make(data).requires_grad_(requires_grad)

    @staticmethod
    def rand(*shape: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> "Tensor":
        """Uniform samples in [0, 1) from the library's generator.

        >>> import tinygrad_lm as tl
        >>> tl.manual_seed(0); x = Tensor.rand(100)
        >>> 0.0 <= x.min().item() and x.max().item() < 1.0
        True
        """
        dev = backend.get_device(device)
        data = dev.rand(_shape(shape), np.dtype(dtype or config.DEFAULT_FLOAT))
        return Tensor._make(data).requires_grad_(requires_grad)

    @staticmethod
    def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
               device: Any = None, requires_grad: bool = False) -> "Tensor":
        """Values from ``start`` to ``stop`` (exclusive); int64 unless a bound is a float.

        >>> Tensor.arange(4).tolist(), Tensor.arange(0.0, 1.0, 0.25).tolist()
        ([0, 1, 2, 3], [0.0, 0.25, 0.5, 0.75])
        """
        if stop is None:
            start, stop = 0, start
        if dtype is None:
            floats = any(isinstance(v, float) for v in (start, stop, step))
            dtype = config.DEFAULT_FLOAT if floats else np.int64
        dev = backend.get_device(device)
        data = dev.xp.arange(start, stop, step, dtype=dtype)
        return Tensor._make(data).requires_grad_(requires_grad)

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
        a, b = self._binary_operands(other, reverse)
        return op.apply(a, b)

    def _binary_operands(self, other: Any, reverse: bool = False) -> tuple["Tensor", "Tensor"]:
        """This tensor and ``other`` (in that order, or reversed), in their common dtype."""
        b = self._operand(other)
        a = self
        if reverse:
            a, b = b, a
        if a.dtype != b.dtype:
            dtype = _result_dtype(a, b)
            a, b = a.astype(dtype), b.astype(dtype)
        return a, b

    def __add__(self, other: Any) -> "Tensor":
        """a + b, broadcast; d/da = d/db = 1 (summed over broadcast axes)."""
        return self._binary(ops.Add, other)

    def __radd__(self, other: Any) -> "Tensor":
        return self._binary(ops.Add, other, reverse=True)

    def __sub__(self, other: Any) -> "Tensor":
        """a - b, broadcast; d/da = 1, d/db = -1. Refused for bool tensors, as in PyTorch."""
        return self._binary(ops.Sub, _no_bool("-", other, self))

    def __rsub__(self, other: Any) -> "Tensor":
        return self._binary(ops.Sub, _no_bool("-", other, self), reverse=True)

    def __mul__(self, other: Any) -> "Tensor":
        """a * b, broadcast; d/da = b, d/db = a."""
        return self._binary(ops.Mul, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return self._binary(ops.Mul, other, reverse=True)

    def __truediv__(self, other: Any) -> "Tensor":
        """a / b, broadcast (int / int gives float32); d/da = 1/b, d/db = -a/b^2."""
        b = self._operand(other)
        if self.dtype.kind not in "fc" and b.dtype.kind not in "fc":  # int / int is a float
            real = config.DEFAULT_FLOAT
            return self.astype(real)._binary(ops.Div, b.astype(real))
        return self._binary(ops.Div, b)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._operand(other) / self

    def __pow__(self, other: Any) -> "Tensor":
        """a ** b, broadcast; d/da = b a^(b-1), d/db = a^b ln(a)."""
        return self._binary(ops.Pow, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return self._binary(ops.Pow, other, reverse=True)

    def __neg__(self) -> "Tensor":
        """-x; d/dx = -1."""
        return ops.Neg.apply(self)

    def __pos__(self) -> "Tensor":
        return self

    def __matmul__(self, other: Any) -> "Tensor":
        return self.matmul(other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return self._operand(other).matmul(self)

    def matmul(self, other: Any) -> "Tensor":
        """Matrix product: 1-D, 2-D and batched (leading axes broadcast), as ``np.matmul``.

        d/dA = dout B^T, d/dB = A^T dout (summed over broadcast batch axes); ``a @ b`` calls it.

        >>> (Tensor([[1.0, 2.0], [3.0, 4.0]]) @ Tensor([[1.0], [1.0]])).tolist()
        [[3.0], [7.0]]
        >>> Tensor.ones(5, 2, 3).matmul(Tensor.ones(3, 4)).shape
        (5, 2, 4)
        """
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
        """e^x; d exp(x)/dx = exp(x).

        >>> [round(v, 4) for v in Tensor([0.0, 1.0]).exp().tolist()]
        [1.0, 2.7183]
        """
        return ops.Exp.apply(self._floating())

    def log(self) -> "Tensor":
        """Natural logarithm; d ln(x)/dx = 1/x.

        >>> [round(v, 4) for v in Tensor([1.0, 4.0]).log().tolist()]
        [0.0, 1.3863]
        """
        return ops.Log.apply(self._floating())

    def sqrt(self) -> "Tensor":
        """Square root; d sqrt(x)/dx = 1 / (2 sqrt(x)).

        >>> Tensor([4.0, 9.0]).sqrt().tolist()
        [2.0, 3.0]
        """
        return ops.Sqrt.apply(self._floating())

    def abs(self) -> "Tensor":
        """Absolute value; d |x|/dx = sign(x).

        >>> Tensor([-1.5, 2.0]).abs().tolist()
        [1.5, 2.0]
        """
        return ops.Abs.apply(self)

    def tanh(self) -> "Tensor":
        """Hyperbolic tangent; d tanh(x)/dx = 1 - tanh(x)^2.

        >>> [round(v, 4) for v in Tensor([0.0, 1.0]).tanh().tolist()]
        [0.0, 0.7616]
        """
        return ops.Tanh.apply(self._floating())

    def sigmoid(self) -> "Tensor":
        """1 / (1 + e^-x); d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x)).

        >>> [round(v, 4) for v in Tensor([0.0, 2.0]).sigmoid().tolist()]
        [0.5, 0.8808]
        """
        return ops.Sigmoid.apply(self._floating())

    def relu(self) -> "Tensor":
        """max(x, 0); d relu(x)/dx = [x > 0].

        >>> Tensor([-1.0, 0.0, 2.0]).relu().tolist()
        [0.0, 0.0, 2.0]
        """
        return ops.Relu.apply(self)

    def erf(self) -> "Tensor":
        """The error function; d erf(x)/dx = 2/sqrt(pi) exp(-x^2).

        >>> [round(v, 4) for v in Tensor([0.0, 1.0]).erf().tolist()]
        [0.0, 0.8427]
        """
        return ops.Erf.apply(self._floating())

    def gelu(self, approximate: str = "none") -> "Tensor":
        """x Phi(x) (``"none"``) or its tanh approximation (``"tanh"``), as in PyTorch (fused).

        d gelu(x)/dx = Phi(x) + x phi(x) for the exact form (Phi, phi: the normal cdf and pdf).

        >>> [round(v, 4) for v in Tensor([-1.0, 0.0, 1.0]).gelu().tolist()]
        [-0.1587, 0.0, 0.8413]
        >>> [round(v, 4) for v in Tensor([-1.0, 0.0, 1.0]).gelu("tanh").tolist()]
        [-0.1588, 0.0, 0.8412]
        """
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")
        return fused.Gelu.apply(self, approximate=approximate)

    def maximum(self, other: Any) -> "Tensor":
        """Elementwise max; the gradient goes to the larger input, split evenly on ties.

        >>> Tensor([1.0, 5.0]).maximum(Tensor([3.0, 2.0])).tolist()
        [3.0, 5.0]
        """
        return self._binary(ops.Maximum, other)

    def minimum(self, other: Any) -> "Tensor":
        """Elementwise min, as -max(-a, -b) (so the same gradient rule); integers and bools
        directly (they have no gradient, and -bool is an error).

        >>> Tensor([1.0, 5.0]).minimum(2.0).tolist(), Tensor([True]).minimum(False).tolist()
        ([1.0, 2.0], [False])
        """
        a, b = self._binary_operands(other)
        if a.dtype.kind not in "fc":
            return Tensor._make(self.device_obj.xp.minimum(a.data, b.data))
        return -((-a).maximum(-b))

    def clip(self, lo: float | None = None, hi: float | None = None) -> "Tensor":
        """Values limited to [lo, hi]; the gradient passes where lo <= x <= hi.

        >>> Tensor([-2.0, 0.5, 3.0]).clip(-1.0, 1.0).tolist()
        [-1.0, 0.5, 1.0]
        """
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of lo and hi")
        return ops.Clip.apply(self, lo=lo, hi=hi)

    def masked_fill(self, mask: Any, value: float) -> "Tensor":
        """``value`` where ``mask`` is True, else this tensor; the gradient flows where False.

        >>> x = Tensor([1.0, 2.0, 3.0])
        >>> x.masked_fill(x > 1.5, 0.0).tolist()
        [1.0, 0.0, 0.0]
        """
        return where(mask, value, self)

    # ------------------------------------------------------------------ reductions

    def sum(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> "Tensor":
        """Sum over ``axis`` (None: all, int or tuple); d sum/dx_i = 1 (dout is broadcast back).

        Every reduction also takes PyTorch's names, ``dim=`` and ``keepdim=``.

        >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> x.sum().item(), x.sum(axis=0).tolist(), x.sum(dim=1, keepdim=True).shape
        (10.0, [4.0, 6.0], (2, 1))
        """
        axis, keepdims = _dim("sum", axis, dim), _keep(keepdims, keepdim)
        return ops.Sum.apply(self, axis=_axis(axis), keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
             keepdim: bool | None = None) -> "Tensor":
        """Mean over ``axis``; d mean/dx_i = 1/n.

        >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> x.mean().item(), x.mean(axis=1).tolist(), x.mean(dim=0, keepdim=True).tolist()
        (2.5, [1.5, 3.5], [[2.0, 3.0]])
        """
        axis, keepdims = _dim("mean", axis, dim), _keep(keepdims, keepdim)
        count = _count(self.shape, axis)
        return self.sum(axis, keepdims) * (1.0 / count if count else math.nan)

    def max(self, axis: Any = None, keepdims: bool = False, *, dim: int | None = None,
            keepdim: bool | None = None) -> Any:
        """The largest value over ``axis``; d max/dx_i = [x_i is a max] / (number of ties).

        With ``dim=`` (PyTorch's form) it returns ``(values, indices)``, and the gradient goes
        to the element at ``indices`` (the first maximum), as in PyTorch.

        >>> x = Tensor([[1.0, 5.0], [3.0, 2.0]])
        >>> x.max().item(), x.max(axis=1).tolist(), x.max(axis=0, keepdims=True).tolist()
        (5.0, [5.0, 3.0], [[3.0, 5.0]])
        >>> values, indices = x.max(dim=1); values.tolist(), indices.tolist()
        ([5.0, 3.0], [1, 0])
        """
        if dim is not None:
            return self._extreme_with_indices("max", dim, _keep(keepdims, keepdim))
        keepdims = _keep(keepdims, keepdim)
        if _count(self.shape, axis) == 0:
            raise ValueError(f"max: cannot reduce over an empty axis (shape {self.shape}, "
                             f"axis {axis})")
        return ops.Max.apply(self, axis=_axis(axis), keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False, *, dim: int | None = None,
            keepdim: bool | None = None) -> Any:
        """The smallest value over ``axis``, as -max(-x) (ties share the gradient); with
        ``dim=``, ``(values, indices)`` as ``max`` gives.

        >>> x = Tensor([[1.0, 5.0], [3.0, 2.0]])
        >>> x.min(axis=1).tolist(), x.min(dim=0).indices.tolist()
        ([1.0, 2.0], [0, 1])
        """
        if dim is not None:
            return self._extreme_with_indices("min", dim, _keep(keepdims, keepdim))
        if self.dtype.kind not in "fc":  # no gradient, and -bool is an error
            if _count(self.shape, axis) == 0:
                raise ValueError(f"min: cannot reduce over an empty axis (shape {self.shape})")
            return Tensor._make(self.data.min(axis=_axis(axis), keepdims=_keep(keepdims, keepdim)))
        return -((-self).max(axis, _keep(keepdims, keepdim)))

    def _extreme_with_indices(self, name: str, dim: int, keepdim: bool) -> "ValuesIndices":
        """``max``/``min`` over one ``dim``: the values picked at the arg-extreme indices (so
        the gradient goes to them alone) and the indices."""
        if not isinstance(dim, int):
            raise TypeError(f"{name}: dim must be an int, not {dim!r}")
        if self.ndim == 0:
            _wrap(dim, 1, name)
            return ValuesIndices(self, Tensor._make(self.device_obj.xp.zeros((), np.int64)))
        dim = _wrap(dim, self.ndim, name)
        if self.shape[dim] == 0:
            raise IndexError(f"{name}: cannot reduce over dim {dim} of size 0 (shape {self.shape})")
        xp = self.device_obj.xp
        pick = self.data.argmax if name == "max" else self.data.argmin
        chosen = pick(axis=dim, keepdims=True)
        index = tuple(chosen if i == dim else xp.arange(n).reshape((n,) + (1,) * (self.ndim - i - 1))
                      for i, n in enumerate(self.shape))
        values = ops.GetItem.apply(self, index=index)
        if not keepdim:
            values, chosen = values.squeeze(dim), chosen.squeeze(dim)
        return ValuesIndices(values, Tensor._make(chosen))

    def var(self, axis: Any = None, keepdims: bool = False, correction: int = 1, *,
            dim: Any = None, keepdim: bool | None = None) -> "Tensor":
        """sum((x - mean)^2) / (n - correction); d var/dx_i = 2 (x_i - mean) / (n - correction).

        >>> x = Tensor([1.0, 2.0, 3.0, 4.0])
        >>> round(x.var().item(), 4), x.var(correction=0).item()
        (1.6667, 1.25)
        """
        axis, keepdims = _dim("var", axis, dim), _keep(keepdims, keepdim)
        centered = self - self.mean(axis, keepdims=True)
        return (centered * centered).sum(axis, keepdims) / max(_count(self.shape, axis) - correction, 0)

    def std(self, axis: Any = None, keepdims: bool = False, correction: int = 1, *,
            dim: Any = None, keepdim: bool | None = None) -> "Tensor":
        """sqrt(var); d std/dx = (d var/dx) / (2 std).

        >>> Tensor([0.0, 2.0]).std(correction=0).item()
        1.0
        """
        axis, keepdims = _dim("std", axis, dim), _keep(keepdims, keepdim)
        var = self.var(axis, keepdims, correction)
        # at zero variance sqrt' is inf and d var/dx is 0: PyTorch's gradient there is 0
        flat = Tensor._make(var.data == 0)
        return where(flat, 0.0, where(flat, 1.0, var).sqrt())

    def logsumexp(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
                  keepdim: bool | None = None) -> "Tensor":
        """log(sum(exp(x))), computed stably by shifting by the (constant) max; -inf over
        an empty axis. d logsumexp(x)/dx = softmax(x).

        >>> round(Tensor([0.0, 0.0]).logsumexp().item(), 4), Tensor.zeros(2, 0).logsumexp(dim=1).tolist()
        (0.6931, [-inf, -inf])
        """
        axis, keepdims = _dim("logsumexp", axis, dim), _keep(keepdims, keepdim)
        if _count(self.shape, axis) == 0:  # log(0): the sum over nothing keeps the graph
            return self.sum(axis, keepdims) - math.inf
        top = self.max(axis, keepdims=True).detach()
        # an infinite max (all -inf, or a +inf) must not shift: inf - inf would give nan
        top = where(top.abs() == math.inf, 0.0, top)
        out = (self - top).exp().sum(axis, keepdims=True).log() + top
        return out if keepdims else out.reshape(*ops._reduced_shape(self.shape, _axis(axis)))

    def argmax(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> "Tensor":
        """Index of the largest value (over the flattened tensor if ``axis`` is None); no gradient.

        >>> x = Tensor([[1, 5], [7, 2]])
        >>> x.argmax(axis=1).tolist(), x.argmax().item()
        ([1, 0], 2)
        """
        axis, keepdims = _dim("argmax", axis, dim), _keep(keepdims, keepdim)
        return Tensor._make(self.data.argmax(axis=axis, keepdims=keepdims))

    def argmin(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> "Tensor":
        """Index of the smallest value (over the flattened tensor if ``axis`` is None); no gradient.

        >>> Tensor([[1, 5], [7, 2]]).argmin(dim=0).tolist()
        [0, 1]
        """
        axis, keepdims = _dim("argmin", axis, dim), _keep(keepdims, keepdim)
        return Tensor._make(self.data.argmin(axis=axis, keepdims=keepdims))

    def softmax(self, axis: int | None = None, *, dim: int | None = None) -> "Tensor":
        """exp(x) / sum(exp(x)) along ``axis`` (default -1) (fused); dx = y (dout - sum(dout y)).

        >>> [round(v, 4) for v in Tensor([1.0, 2.0, 3.0]).softmax(dim=0).tolist()]
        [0.09, 0.2447, 0.6652]
        """
        axis = _dim("softmax", axis, dim)
        if self.numel() == 0:  # nothing to normalise (and the kernel needs a row)
            return self * 1.0
        return fused.Softmax.apply(self, axis=-1 if axis is None else axis)

    def log_softmax(self, axis: int | None = None, *, dim: int | None = None) -> "Tensor":
        """x - logsumexp(x) along ``axis`` (default -1) (fused); dx = dout - softmax(x) sum(dout).

        >>> [round(v, 4) for v in Tensor([0.0, 0.0]).log_softmax().tolist()]
        [-0.6931, -0.6931]
        """
        axis = _dim("log_softmax", axis, dim)
        if self.numel() == 0:  # nothing to normalise (and the kernel needs a row)
            return self * 1.0
        return fused.LogSoftmax.apply(self, axis=-1 if axis is None else axis)

    # ------------------------------------------------------------------ shape and movement

    def reshape(self, *shape: Any) -> "Tensor":
        """The same elements in ``shape`` (one -1 is inferred); the gradient is reshaped back.

        ``view`` is the same method.

        >>> x = Tensor.arange(6).reshape(2, 3)
        >>> x.tolist(), x.reshape(-1, 2).shape
        ([[0, 1, 2], [3, 4, 5]], (3, 2))
        """
        shape = _shape(shape)
        return self if shape == self.shape else ops.Reshape.apply(self, shape=shape)

    view = reshape

    def permute(self, *dims: Any) -> "Tensor":
        """Axes reordered to ``dims``; the gradient is permuted back by the inverse.

        >>> Tensor.zeros(2, 3, 4).permute(2, 0, 1).shape
        (4, 2, 3)
        """
        dims = tuple(_wrap(d, self.ndim, "permute") for d in _shape(dims))
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the axes of shape {self.shape}")
        return ops.Permute.apply(self, dims=dims)

    def transpose(self, axis0: int = 0, axis1: int = 1) -> "Tensor":
        """Axes ``axis0`` and ``axis1`` swapped (a permute).

        >>> Tensor.arange(6).reshape(2, 3).transpose(0, 1).tolist()
        [[0, 3], [1, 4], [2, 5]]
        """
        dims = list(range(self.ndim))
        axis0, axis1 = _wrap(axis0, self.ndim, "transpose"), _wrap(axis1, self.ndim, "transpose")
        dims[axis0], dims[axis1] = dims[axis1], dims[axis0]
        return self.permute(*dims)

    def unsqueeze(self, axis: int | None = None, *, dim: int | None = None) -> "Tensor":
        """A new axis of size 1 at ``axis`` (or ``dim``) (a reshape).

        >>> x = Tensor([1, 2])
        >>> x.unsqueeze(0).shape, x.unsqueeze(dim=-1).shape
        ((1, 2), (2, 1))
        """
        axis = _dim("unsqueeze", axis, dim)
        if axis is None:
            raise TypeError("unsqueeze: give the position of the new axis")
        axis = _wrap(axis, self.ndim + 1, "unsqueeze")
        return self.reshape(*self.shape[:axis], 1, *self.shape[axis:])

    def squeeze(self, axis: Any = None, *, dim: Any = None) -> "Tensor":
        """Axes of size 1 removed (all, or those in ``axis``) (a reshape).

        >>> x = Tensor.zeros(1, 2, 1)
        >>> x.squeeze().shape, x.squeeze(0).shape
        ((2,), (2, 1))
        """
        axes = ops._axes(self.shape, _axis(_dim("squeeze", axis, dim)))
        return self.reshape(*(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def flatten(self, start: int = 0, end: int = -1) -> "Tensor":
        """Axes ``start`` to ``end`` (inclusive) merged into one (a reshape).

        >>> x = Tensor.zeros(2, 3, 4)
        >>> x.flatten().shape, x.flatten(1).shape
        ((24,), (2, 12))
        """
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _wrap(start, self.ndim, "flatten"), _wrap(end, self.ndim, "flatten")
        return self.reshape(*self.shape[:start], -1, *self.shape[end + 1:])

    def expand(self, *shape: Any) -> "Tensor":
        """Broadcast to ``shape`` without copying (-1 keeps a dimension); the gradient is
        summed over the expanded axes.

        >>> Tensor([[1], [2]]).expand(-1, 3).tolist()
        [[1, 1, 1], [2, 2, 2]]
        """
        shape = _shape(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self if shape == self.shape else ops.Expand.apply(self, shape=shape)

    def split(self, size_or_sizes: int | Sequence[int], axis: int | None = None, *,
              dim: int | None = None) -> list["Tensor"]:
        """Pieces of ``size`` along ``axis`` (the last may be smaller), or of the given sizes.

        Each piece is a slice, so its gradient lands in its part of the input.

        >>> [p.tolist() for p in Tensor.arange(5).split(2)]
        [[0, 1], [2, 3], [4]]
        >>> [p.shape for p in Tensor.zeros(2, 5).split([1, 4], axis=1)]
        [(2, 1), (2, 4)]
        """
        axis = _dim("split", axis, dim)
        axis = 0 if axis is None else _wrap(axis, self.ndim, "split")
        length = self.shape[axis]
        if isinstance(size_or_sizes, int):
            sizes = [min(size_or_sizes, length - s) for s in range(0, length, size_or_sizes)]
        else:
            sizes = list(size_or_sizes)
            if sum(sizes) != length:
                raise ValueError(f"split: sizes {sizes} do not add up to {length} (axis {axis} "
                                 f"of shape {self.shape})")
        lead, start, pieces = (slice(None),) * axis, 0, []
        for size in sizes:
            pieces.append(self[lead + (slice(start, start + size),)])
            start += size
        return pieces

    def chunk(self, chunks: int, axis: int | None = None, *, dim: int | None = None) -> list["Tensor"]:
        """``chunks`` pieces of equal size along ``axis`` (the last may be smaller).

        >>> [p.tolist() for p in Tensor.arange(6).chunk(3)]
        [[0, 1], [2, 3], [4, 5]]
        """
        axis = _dim("chunk", axis, dim)
        axis = 0 if axis is None else _wrap(axis, self.ndim, "chunk")
        return self.split(-(-self.shape[axis] // chunks), axis)

    def __getitem__(self, index: Any) -> "Tensor":
        """NumPy indexing: ints, slices, None, integer and bool tensors or lists.

        The gradient is scatter-added back to the indexed positions (repeated indices add up).

        >>> x = Tensor.arange(6).reshape(2, 3)
        >>> x[1].tolist(), x[:, 1:].tolist(), x[Tensor([1, 1]), 0].tolist()
        ([3, 4, 5], [[1, 2], [4, 5]], [3, 3])
        >>> x[x > 3].tolist()
        [4, 5]
        """
        return ops.GetItem.apply(self, index=_index(index, self))

    # ------------------------------------------------------------------ in place

    def __setitem__(self, index: Any, value: Any) -> None:
        """``t[index] = value`` in place; ``value`` is broadcast and cast to this dtype.

        d/dvalue = dout[index]; d/dt = dout, zero at ``index`` (those values were overwritten).

        >>> x = Tensor.zeros(2, 3)
        >>> x[0, 1:] = 5.0; x[1] = Tensor([1.0, 2.0, 3.0]); x.tolist()
        [[0.0, 5.0, 5.0], [1.0, 2.0, 3.0]]
        """
        self._assign("setitem", _index(index, self), self._operand(value))

    def add_(self, other: Any, alpha: float = 1) -> "Tensor":
        """In place: self + alpha * other (d/dself = 1, d/dother = alpha); see ``_inplace``.

        >>> Tensor([1.0, 2.0]).add_(1.0).tolist(), Tensor([1.0]).add_(Tensor([2.0]), alpha=3).tolist()
        ([2.0, 3.0], [7.0])
        """
        other = self._operand(other)
        return self._inplace("add_", lambda old: old + (other if alpha == 1 else other * alpha),
                             other)

    def sub_(self, other: Any, alpha: float = 1) -> "Tensor":
        """In place: self - alpha * other (d/dself = 1, d/dother = -alpha)."""
        other = self._operand(other)
        return self._inplace("sub_", lambda old: old - (other if alpha == 1 else other * alpha),
                             other)

    def mul_(self, other: Any) -> "Tensor":
        """In place: self * other (d/dself = other, d/dother = self before the write).

        >>> Tensor([1.0, 2.0]).mul_(3).tolist()
        [3.0, 6.0]
        """
        other = self._operand(other)
        return self._inplace("mul_", lambda old: old * other, other)

    def div_(self, other: Any) -> "Tensor":
        """In place: self / other (d/dself = 1/other, d/dother = -self/other^2)."""
        other = self._operand(other)
        return self._inplace("div_", lambda old: old / other, other)

    def clamp_(self, min: float | None = None, max: float | None = None) -> "Tensor":
        """In place: ``clip(min, max)`` (the gradient passes where min <= x <= max).

        >>> Tensor([-2.0, 0.5, 3.0]).clamp_(-1.0, 1.0).tolist()
        [-1.0, 0.5, 1.0]
        """
        return self._inplace("clamp_", lambda old: old.clip(min, max))

    def fill_(self, value: Any) -> "Tensor":
        """In place: every element set to ``value`` (a number or a one-element tensor).

        >>> Tensor([1, 2]).fill_(7).tolist()
        [7, 7]
        """
        value = self._operand(value)
        if value.numel() != 1:
            raise RuntimeError(f"fill_: the value must have one element, not shape {value.shape}")
        return self._assign("fill_", (Ellipsis,), value.reshape())

    def zero_(self) -> "Tensor":
        """In place: every element set to 0."""
        return self.fill_(0)

    def copy_(self, src: Any) -> "Tensor":
        """In place: the values of ``src`` (broadcast to this shape, cast to this dtype, moved
        to this device); d/dsrc = dout (summed over broadcast axes), d/dself = 0.

        >>> x = Tensor.zeros(2, 2); x.copy_(Tensor([1, 2])).tolist()
        [[1.0, 2.0], [1.0, 2.0]]
        """
        src = self._operand(src).to(self.device)
        return self._assign("copy_", (Ellipsis,), src)

    def _records(self, operands: Sequence["Tensor"]) -> bool:
        """Whether an in-place op on this tensor with ``operands`` goes into the graph."""
        return config._grad_enabled and (self._requires_grad
                                          or any(o._requires_grad for o in operands))

    def _assign(self, name: str, index: tuple[Any, ...], value: "Tensor") -> "Tensor":
        """``data[index] = value``: written directly when no gradient is involved, else as a
        recorded ``SetItem``."""
        if self._records([value]):
            return self._inplace(name, lambda old: ops.SetItem.apply(
                old, value.astype(self.dtype), index=index), value, any_dtype=True)
        try:
            self._write(index, drop_leading_ones(value.data.astype(self.dtype, copy=False)))
        except ValueError as exc:
            raise RuntimeError(f"{name}: {exc} (a value of shape {value.shape} into a tensor of "
                               f"shape {self.shape})") from None
        return self

    def _inplace(self, name: str, compute: Callable[["Tensor"], "Tensor"],
                 *operands: "Tensor", any_dtype: bool = False) -> "Tensor":
        """Write ``compute(self)`` into this tensor's memory, with PyTorch's autograd rules.

        Outside ``no_grad``, when a gradient is involved, the write is recorded: the tensor's
        node becomes ``compute``'s, applied to a copy of the values before the write. A leaf
        that requires grad cannot be written outside ``no_grad`` (its ``.grad`` would belong to
        values that are gone). Every write advances the tensor's version, so a node that saved
        this memory for its backward raises there instead of returning a wrong gradient. The
        result keeps this tensor's shape and dtype (float into an integer tensor is an error,
        except for assignment).
        """
        record = self._records(operands)
        if record and self._requires_grad and self._ctx is None:
            raise RuntimeError(f"{name}: a leaf tensor that requires grad cannot be modified "
                               "in-place outside `with tl.no_grad():`")
        if record and getattr(self.data, "base", None) is not None and (
                self._ctx is None or type(self._ctx).makes_view):
            raise RuntimeError(f"{name}: an in-place op that needs grad on a view of another "
                               "tensor's memory is not supported (the other tensor's gradient "
                               "would not see it); write to a clone() instead")
        old = Tensor._make(self.data.copy(), self._requires_grad, self._ctx) if record else self
        result = compute(old)
        if result.shape != self.shape:
            raise RuntimeError(f"{name}: the result has shape {result.shape}, but an in-place "
                               f"op keeps the tensor's shape {self.shape}")
        if result.dtype != self.dtype:
            if not any_dtype and _kind(result.dtype) > _kind(self.dtype):
                raise RuntimeError(f"{name}: the result type {result.dtype} cannot be cast "
                                   f"in-place to the tensor's dtype {self.dtype}")
            result = result.astype(self.dtype)
        self._write((Ellipsis,), result.data)
        if record and result._requires_grad:
            self._ctx, self._requires_grad = result._ctx, True
            counter = self._counter()
            counter[1] = counter[0]
        return self

    def _write(self, index: tuple[Any, ...], values: Any) -> None:
        """``data[index] = values``, and a new version of this memory."""
        if isinstance(self.data, np.ndarray) and not self.data.flags.writeable:
            raise RuntimeError("in-place: this tensor's memory is read-only (an expand()ed "
                               "view, or a read-only array); write to a clone() instead")
        self.data[index] = values
        self._counter()[0] = config._tick()


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


def _no_bool(op: str, *operands: Any) -> Any:
    """The first operand, after checking that no operand is a bool tensor (PyTorch refuses
    ``-`` on them: ``~`` inverts a mask)."""
    if any(isinstance(o, Tensor) and o.dtype == np.bool_ for o in operands):
        raise RuntimeError(f"{op}: subtraction with a bool tensor is not supported; use ~ or "
                           "logical operations to invert a mask")
    return operands[0]


def _kind(dtype: np.dtype) -> int:
    """PyTorch's dtype categories, in promotion order: bool, integer, float, complex."""
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[dtype.kind]


def _wrap(axis: int, ndim: int, op: str) -> int:
    """``axis`` in [0, ndim), negative ones counted from the end; out of range is an error
    (wrapping it silently would act on the wrong axis)."""
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


class ValuesIndices(NamedTuple):
    """What ``max(dim=)`` and ``min(dim=)`` return, as PyTorch's ``torch.return_types``."""

    values: Tensor
    indices: Tensor


def _dim(op: str, axis: Any, dim: Any) -> Any:
    """``axis``, or PyTorch's name for it, ``dim`` (giving both is an error)."""
    if dim is None:
        return axis
    if axis is not None:
        raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; give one")
    return dim


def _keep(keepdims: bool, keepdim: bool | None) -> bool:
    """``keepdims``, or PyTorch's name for it, ``keepdim``, when given."""
    return keepdims if keepdim is None else keepdim


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def _count(shape: Shape, axis: Any) -> int:
    return math.prod(shape[a] for a in ops._axes(shape, _axis(axis)))


def _index(index: Any, t: Tensor) -> tuple[Any, ...]:
    """A NumPy index tuple: tensors and lists become arrays, boolean masks become positions.

    A mask must match the shape of the axes it indexes (an IndexError otherwise, as in
    PyTorch); a 0-d bool adds an axis of size 1 (True) or 0 (False), as in NumPy and PyTorch.
    """
    items = index if isinstance(index, tuple) else (index,)
    xp = t.device_obj.xp
    arrays: list[Any] = []
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, (list, bool)):
            item = xp.asarray(item)
        if backend.is_array(item) and item.dtype != bool and item.dtype.kind not in "iu":
            raise IndexError(f"index: arrays used as indices must be integer or bool, "
                             f"not {item.dtype}")
        arrays.append(item)
    used = sum(_axes_used(item) for item in arrays if item is not Ellipsis)
    out: list[Any] = []
    axis = 0
    for item in arrays:
        if item is Ellipsis:
            axis += t.ndim - used
        elif backend.is_array(item) and item.dtype == bool and item.ndim:
            if item.shape != t.shape[axis:axis + item.ndim]:
                raise IndexError(f"index: a boolean mask of shape {item.shape} does not match "
                                 f"the indexed shape {t.shape[axis:axis + item.ndim]} (axes "
                                 f"{axis}..{axis + item.ndim - 1} of {t.shape})")
            out.extend(item.nonzero())
            axis += item.ndim
            continue
        else:
            axis += _axes_used(item)
        out.append(item)
    return tuple(out)


def drop_leading_ones(array: Any) -> Any:
    """``array`` without its leading axes of size 1, which broadcasting would add back anyway:
    so ``t[0] = value`` takes a value of shape (1,), as PyTorch does and NumPy 2 does not."""
    lead = 0
    while lead < array.ndim and array.shape[lead] == 1:
        lead += 1
    return array.reshape(array.shape[lead:]) if lead else array


def _axes_used(item: Any) -> int:
    """How many axes of the indexed tensor an index item consumes."""
    if item is None:
        return 0
    if backend.is_array(item) and item.dtype == bool:
        return item.ndim
    return 1


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``Tensor(data, ...)``, PyTorch's spelling: the data is copied.

    >>> tensor([1, 2]).tolist()
    [1, 2]
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that shares ``array``'s memory (no copy), as ``torch.from_numpy``: writes
    through either show in both.

    >>> a = np.zeros(2); t = from_numpy(a); _ = t.fill_(1.0); a.tolist()
    [1.0, 1.0]
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(array).__name__}")
    if array.dtype.kind not in "biufc":
        raise TypeError(f"from_numpy: cannot make a tensor of {array.dtype} values")
    return Tensor._make(array.view(np.ndarray))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is True, else ``b`` (broadcast together); the gradient goes to
    ``a`` where True and to ``b`` where False.

    >>> x = Tensor([-1.0, 2.0])
    >>> where(x > 0, x, 0.0).tolist()
    [0.0, 2.0]
    """
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


def cat(tensors: Iterable[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (default 0), promoting dtypes as the arithmetic
    does; the gradient is split back into the pieces (each in its piece's dtype).

    >>> a, b = Tensor([[1, 2]]), Tensor([[3, 4]])
    >>> cat([a, b]).tolist(), cat([a, b], dim=1).tolist()
    ([[1, 2], [3, 4]], [[1, 2, 3, 4]])
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    axis = _dim("cat", axis, dim)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = _promote(dtype, t.dtype)
    return ops.Cat.apply(*(t.astype(dtype) for t in tensors), axis=0 if axis is None else axis)


def stack(tensors: Iterable[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join same-shaped tensors along a new axis (unsqueeze, then cat).

    >>> stack([Tensor([1, 2]), Tensor([3, 4])], axis=1).tolist()
    [[1, 3], [2, 4]]
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    axis = _dim("stack", axis, dim)
    axis = 0 if axis is None else axis
    return cat([t.unsqueeze(axis) for t in tensors], axis)


from . import autograd, fused, ops  # noqa: E402  (the ops are built on Tensor)
