"""The table of Tensor ops that drives test_ops.py and test_torch_oracle.py.

One row per op (and per calling form) of the public Tensor API (``tl.Tensor``'s methods
and the ``tl.*`` functions). A row gives the op three times: on tinygrad_lm Tensors, as a
NumPy reference and on PyTorch tensors (``torch=None`` means the very same expression
works on a PyTorch tensor), plus a hypothesis strategy that draws a ``Case``: the float64
input arrays (those get gradients) and the op's parameters (axes, shapes, indices, masks:
held fixed while differentiating).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lm as tl
from strategies import arrays, axes, broadcast_pairs, distinct_arrays, shapes


@dataclass(frozen=True)
class Case:
    """Inputs for one example: differentiable float64 arrays and fixed parameters."""

    arrays: tuple[np.ndarray, ...]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpSpec:
    """One op. ``smooth``: check second derivatives (gradgradcheck); ``grad``: the op is
    differentiable (gradcheck and backward vs PyTorch); ``finite_diff``: central
    differences in float64 are meaningful (false when the output is float32)."""

    name: str
    tl: Callable[..., Any]
    np: Callable[..., Any]
    torch: Callable[..., Any] | None
    inputs: st.SearchStrategy[Case]
    smooth: bool = True
    grad: bool = True
    finite_diff: bool = True

    def __repr__(self) -> str:  # the pytest id
        return self.name


def _torch() -> Any:
    import torch

    return torch


# ------------------------------------------------------------------------ input strategies


def unary(domain: str = "any", min_dims: int = 0, **shape_kw: Any) -> st.SearchStrategy[Case]:
    return shapes(min_dims=min_dims, **shape_kw).flatmap(
        lambda s: arrays(s, domain)).map(lambda a: Case((a,)))


def binary(domain_a: str = "any", domain_b: str = "any") -> st.SearchStrategy[Case]:
    return broadcast_pairs().flatmap(lambda p: st.tuples(arrays(p[0], domain_a),
                                                         arrays(p[1], domain_b))).map(Case)


def distinct_binary() -> st.SearchStrategy[Case]:
    return broadcast_pairs().flatmap(distinct_arrays).map(Case)


@st.composite
def reduction(draw: Any, domain: str = "any", min_side: int = 1) -> Case:
    # var/std divide by n - 1: every reduced axis needs two elements
    shape = draw(shapes(min_dims=int(min_side > 1), min_side=min_side,
                        max_side=3 if min_side > 1 else 4))
    return Case((draw(arrays(shape, domain)),),
                {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())})


@st.composite
def with_shape(draw: Any, params: Callable[[Any, tuple[int, ...]], dict[str, Any]],
               min_dims: int = 0, domain: str = "any") -> Case:
    """One array plus parameters drawn from its shape."""
    shape = draw(shapes(min_dims=min_dims))
    return Case((draw(arrays(shape, domain)),), params(draw, shape))


MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (3, 2)), ((2, 1, 2, 3), (3, 3, 2)), ((3,), (2, 3, 2)),
                 ((1, 2, 3), (2, 3, 1))]


@st.composite
def matmul_case(draw: Any) -> Case:
    sa, sb = draw(st.sampled_from(MATMUL_SHAPES))
    return Case((draw(arrays(sa)), draw(arrays(sb))))


@st.composite
def joined(draw: Any, same_shape: bool) -> Case:
    """2-3 arrays that agree on every axis but ``axis`` (all axes for stack)."""
    shape = draw(shapes(min_dims=0 if same_shape else 1))
    ndim = len(shape)
    axis = draw(st.integers(-(ndim + 1), ndim) if same_shape else st.integers(-ndim, ndim - 1))
    parts = []
    for _ in range(draw(st.integers(2, 3))):
        s = list(shape)
        if not same_shape:
            s[axis] = draw(st.integers(1, 3))
        parts.append(draw(arrays(tuple(s))))
    return Case(tuple(parts), {"axis": axis})


@st.composite
def split_case(draw: Any, chunks: bool) -> Case:
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if chunks:
        arg: Any = draw(st.integers(1, n))
    elif draw(st.booleans()):
        arg = draw(st.integers(1, n))
    else:  # explicit sizes adding up to n
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
        bounds = [0, *cuts, n]
        arg = [b - a for a, b in zip(bounds, bounds[1:])]
    return Case((draw(arrays(shape)),), {"arg": arg, "axis": axis})


INDEX_SHAPE = (3, 4, 2)


@st.composite
def index_case(draw: Any) -> Case:
    """Basic and advanced indices on a (3, 4, 2) array; int arrays repeat and go negative."""
    mask3 = draw(hnp.arrays(np.bool_, INDEX_SHAPE))
    mask1 = draw(hnp.arrays(np.bool_, (3,)))
    index = draw(st.sampled_from([
        1, (-1, slice(1, 3)), (slice(None), slice(None, None, 2)), (None, Ellipsis, 0),
        (Ellipsis, None), (0, slice(None), -1), (slice(1, None), 1),
        np.array([0, 2, 0, -1]), (slice(None), np.array([3, 3, 1])),
        (np.array([0, 0, 2]), np.array([1, 1, -1])), (np.array([[1, 1], [0, 2]]), Ellipsis, 1),
        mask3, mask1, (mask1, slice(1, 3)),
    ]))
    return Case((draw(arrays(INDEX_SHAPE)),), {"index": index})


@st.composite
def list_index_case(draw: Any) -> Case:
    """A Python list of ints (repeats, negatives) as the index of the first axis."""
    index = draw(st.lists(st.integers(-3, 2), min_size=1, max_size=4))
    return Case((draw(arrays(INDEX_SHAPE)),), {"index": index})


def _index_for(index: Any, convert: Callable[[np.ndarray], Any]) -> Any:
    if isinstance(index, tuple):
        return tuple(convert(i) if isinstance(i, np.ndarray) else i for i in index)
    return convert(index) if isinstance(index, np.ndarray) else index


@st.composite
def where_case(draw: Any) -> Case:
    sa, sb = draw(broadcast_pairs())
    cond = draw(hnp.arrays(np.bool_, np.broadcast_shapes(sa, sb)))
    return Case((draw(arrays(sa)), draw(arrays(sb))), {"cond": cond})


@st.composite
def masked_fill_case(draw: Any) -> Case:
    shape = draw(shapes())
    mask_shape = tuple(1 if draw(st.booleans()) else n for n in shape)
    mask_shape = mask_shape[draw(st.integers(0, len(shape))):]
    return Case((draw(arrays(shape)),), {"mask": draw(hnp.arrays(np.bool_, mask_shape)),
                                         "value": draw(st.sampled_from([0.0, -1.5, 3.0]))})


def _reshape_params(draw: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    size = math.prod(shape)
    return {"shape": draw(st.sampled_from([(-1,), tuple(reversed(shape)), (size, 1), (1, -1)]))}


def _transpose_params(draw: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    n = len(shape)
    return {"a": draw(st.integers(-n, n - 1)), "b": draw(st.integers(-n, n - 1))}


def _flatten_params(draw: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    n = len(shape)
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start, n - 1))
    return {"start": start - n if draw(st.booleans()) else start,
            "end": end - n if draw(st.booleans()) else end}


def _expand_params(draw: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    grown = tuple(draw(st.integers(1, 3)) if n == 1 else (-1 if draw(st.booleans()) else n)
                  for n in shape)
    return {"shape": tuple(draw(st.lists(st.integers(1, 2), max_size=1))) + grown}


# ------------------------------------------------------------------------ NumPy references


def _np_gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        out = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    else:
        out = 0.5 * x * (1 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2)))
    return np.asarray(out, dtype=x.dtype)


def _np_logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_squeeze(x: np.ndarray, axis: Any) -> np.ndarray:
    if axis is None:
        return np.squeeze(x)
    return np.squeeze(x, axis) if x.shape[axis] == 1 else x


def _np_expand(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    lead = len(shape) - x.ndim
    return np.broadcast_to(x, tuple(x.shape[i - lead] if n == -1 else n
                                    for i, n in enumerate(shape)))


def _np_split(x: np.ndarray, arg: Any, axis: int) -> list[np.ndarray]:
    n = x.shape[axis]
    sizes = [min(arg, n - s) for s in range(0, n, arg)] if isinstance(arg, int) else arg
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


# ------------------------------------------------------------------------ PyTorch helpers


def _t_reduce(name: str, x: Any, axis: Any, keepdims: bool, **kw: Any) -> Any:
    """torch reductions take ``dim``/``keepdim``; ``axis=None`` means every axis."""
    dims = tuple(range(x.ndim)) if axis is None else axis
    if x.ndim == 0:
        return getattr(_torch(), name)(x.reshape(1), 0, **kw).reshape(())
    return getattr(_torch(), name)(x, dims, keepdim=keepdims, **kw)


def _t_flatten(x: Any, start: int, end: int) -> Any:
    return x.flatten(start, end)


def _t_index(x: Any, index: Any) -> Any:
    return x[_index_for(index, lambda a: _torch().as_tensor(a))]


def _t_split(x: Any, arg: Any, axis: int) -> list[Any]:
    return list(x.split(arg, axis))


# ------------------------------------------------------------------------ the table


def _tl_index(x: tl.Tensor, index: Any) -> tl.Tensor:
    return x[_index_for(index, lambda a: tl.Tensor(a, device=x.device))]


def _reduce_row(name: str, domain: str = "any", min_side: int = 1, torch_name: str | None = None,
                **kw: Any) -> OpSpec:
    np_fn = {"max": np.max, "min": np.min, "logsumexp": _np_logsumexp}.get(name)
    if np_fn is None:
        np_fn = {"var": np.var, "std": np.std, "sum": np.sum, "mean": np.mean}[name]
    extra = {"ddof": 1} if name in ("var", "std") else {}
    return OpSpec(
        name,
        lambda x, axis, keepdims: getattr(x, name)(axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: np.asarray(np_fn(x, axis=axis, keepdims=keepdims, **extra)),
        lambda x, axis, keepdims: _t_reduce(torch_name or name, x, axis, keepdims, **kw),
        reduction(domain, min_side))


OPS: list[OpSpec] = [
    # --- arithmetic, tensor with tensor (broadcasting)
    OpSpec("add", lambda a, b: a + b, lambda a, b: a + b, None, binary()),
    OpSpec("sub", lambda a, b: a - b, lambda a, b: a - b, None, binary()),
    OpSpec("mul", lambda a, b: a * b, lambda a, b: a * b, None, binary()),
    OpSpec("div", lambda a, b: a / b, lambda a, b: a / b, None, binary("any", "nonzero")),
    OpSpec("pow", lambda a, b: a ** b, lambda a, b: a ** b, None, binary("positive", "any")),
    OpSpec("neg", lambda x: -x, lambda x: -x, None, unary()),
    # --- arithmetic with a Python scalar, on both sides
    OpSpec("add_scalar", lambda x: x + 1.5, lambda x: x + 1.5, None, unary()),
    OpSpec("radd_scalar", lambda x: 1.5 + x, lambda x: 1.5 + x, None, unary()),
    OpSpec("sub_scalar", lambda x: x - 1.5, lambda x: x - 1.5, None, unary()),
    OpSpec("rsub_scalar", lambda x: 1.5 - x, lambda x: 1.5 - x, None, unary()),
    OpSpec("mul_scalar", lambda x: x * -2.5, lambda x: x * -2.5, None, unary()),
    OpSpec("rmul_int", lambda x: 3 * x, lambda x: 3 * x, None, unary()),
    OpSpec("div_scalar", lambda x: x / 2.5, lambda x: x / 2.5, None, unary()),
    OpSpec("rdiv_scalar", lambda x: 2.5 / x, lambda x: 2.5 / x, None, unary("nonzero")),
    OpSpec("pow_int", lambda x: x ** 2, lambda x: x ** 2, None, unary()),
    OpSpec("pow_float", lambda x: x ** -1.5, lambda x: x ** -1.5, None, unary("positive")),
    OpSpec("sqrt_pow", lambda x: x ** 0.5, lambda x: x ** 0.5, None, unary("positive")),
    OpSpec("rpow_scalar", lambda x: 1.7 ** x, lambda x: 1.7 ** x, None, unary()),
    # --- matmul: 1-D, 2-D, batched with broadcast batch axes
    OpSpec("matmul", lambda a, b: a @ b, lambda a, b: a @ b, None, matmul_case()),
    OpSpec("matmul_method", lambda a, b: a.matmul(b), np.matmul, None, matmul_case()),
    # --- elementwise math
    OpSpec("exp", lambda x: x.exp(), np.exp, None, unary()),
    OpSpec("log", lambda x: x.log(), np.log, None, unary("positive")),
    OpSpec("sqrt", lambda x: x.sqrt(), np.sqrt, None, unary("positive")),
    OpSpec("abs", lambda x: x.abs(), np.abs, None, unary("nonzero")),
    OpSpec("tanh", lambda x: x.tanh(), np.tanh, None, unary()),
    OpSpec("sigmoid", lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), None, unary()),
    OpSpec("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), None, unary("nonzero")),
    OpSpec("gelu", lambda x: x.gelu(), lambda x: _np_gelu(x, "none"),
           lambda x: _torch().nn.functional.gelu(x), unary()),
    OpSpec("gelu_tanh", lambda x: x.gelu(approximate="tanh"), lambda x: _np_gelu(x, "tanh"),
           lambda x: _torch().nn.functional.gelu(x, approximate="tanh"), unary()),
    OpSpec("maximum", lambda a, b: a.maximum(b), np.maximum, None, distinct_binary()),
    OpSpec("minimum", lambda a, b: a.minimum(b), np.minimum, None, distinct_binary()),
    OpSpec("clip", lambda x: x.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), None,
           unary("distinct")),
    OpSpec("clip_hi", lambda x: x.clip(None, 0.3), lambda x: np.clip(x, None, 0.3), None,
           unary("distinct")),
    OpSpec("clip_lo", lambda x: x.clip(-0.2), lambda x: np.clip(x, -0.2, None), None,
           unary("distinct")),
    # "distinct" values sit 0.025 off every multiple of 0.05, so never on these scalars
    OpSpec("maximum_scalar", lambda x: x.maximum(0.3), lambda x: np.maximum(x, 0.3),
           lambda x: x.clamp(min=0.3), unary("distinct")),
    OpSpec("minimum_scalar", lambda x: x.minimum(-0.3), lambda x: np.minimum(x, -0.3),
           lambda x: x.clamp(max=-0.3), unary("distinct")),
    # --- reductions
    _reduce_row("sum"),
    _reduce_row("mean"),
    _reduce_row("max", "distinct", torch_name="amax"),
    _reduce_row("min", "distinct", torch_name="amin"),
    _reduce_row("var", "distinct", min_side=2, correction=1),
    _reduce_row("std", "distinct", min_side=2, correction=1),
    _reduce_row("logsumexp"),
    OpSpec("var_correction0", lambda x, axis: x.var(axis, correction=0),
           lambda x, axis: np.asarray(np.var(x, axis=axis)),
           lambda x, axis: _t_reduce("var", x, axis, False, correction=0),
           with_shape(lambda d, s: {"axis": d(axes(len(s)))}, domain="distinct")),
    OpSpec("softmax", lambda x, axis: x.softmax(axis), _np_softmax, None,
           with_shape(lambda d, s: {"axis": d(st.integers(-len(s), len(s) - 1))}, min_dims=1)),
    OpSpec("log_softmax", lambda x, axis: x.log_softmax(axis),
           lambda x, axis: np.log(_np_softmax(x, axis)), None,
           with_shape(lambda d, s: {"axis": d(st.integers(-len(s), len(s) - 1))}, min_dims=1)),
    # --- shape and movement
    OpSpec("reshape", lambda x, shape: x.reshape(*shape), lambda x, shape: x.reshape(shape),
           lambda x, shape: x.reshape(shape), with_shape(_reshape_params)),
    OpSpec("reshape_tuple", lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape),
           None, with_shape(_reshape_params)),
    OpSpec("transpose", lambda x, a, b: x.transpose(a, b), lambda x, a, b: np.swapaxes(x, a, b),
           None, with_shape(_transpose_params, min_dims=1)),
    OpSpec("permute", lambda x, dims: x.permute(*dims), lambda x, dims: np.transpose(x, dims),
           lambda x, dims: x.permute(dims),
           with_shape(lambda d, s: {"dims": tuple(d(st.permutations(range(len(s)))))})),
    OpSpec("T", lambda x: x.T, lambda x: x.T, lambda x: x.permute(tuple(reversed(range(x.ndim)))),
           unary()),
    OpSpec("unsqueeze", lambda x, axis: x.unsqueeze(axis), np.expand_dims, None,
           with_shape(lambda d, s: {"axis": d(st.integers(-len(s) - 1, len(s)))})),
    OpSpec("squeeze", lambda x, axis: x.squeeze(axis), _np_squeeze,
           lambda x, axis: x.squeeze() if axis is None else x.squeeze(axis),
           with_shape(lambda d, s: {"axis": d(st.none() | st.integers(-len(s), len(s) - 1))
                                    if s else None})),
    OpSpec("flatten", lambda x, start, end: x.flatten(start, end),
           lambda x, start, end: x.reshape(x.shape[:start % x.ndim] + (-1,)
                                           + x.shape[end % x.ndim + 1:]),
           _t_flatten, with_shape(_flatten_params, min_dims=1)),
    OpSpec("expand", lambda x, shape: x.expand(*shape), _np_expand,
           lambda x, shape: x.expand(shape),
           with_shape(_expand_params)),
    OpSpec("cat", lambda *xs, axis: tl.cat(xs, axis), lambda *xs, axis: np.concatenate(xs, axis),
           lambda *xs, axis: _torch().cat(xs, axis), joined(same_shape=False)),
    OpSpec("stack", lambda *xs, axis: tl.stack(xs, axis), lambda *xs, axis: np.stack(xs, axis),
           lambda *xs, axis: _torch().stack(xs, axis), joined(same_shape=True)),
    OpSpec("split", lambda x, arg, axis: x.split(arg, axis), _np_split, _t_split,
           split_case(chunks=False)),
    OpSpec("chunk", lambda x, arg, axis: x.chunk(arg, axis),
           lambda x, arg, axis: _np_split(x, -(-x.shape[axis] // arg), axis),
           lambda x, arg, axis: list(x.chunk(arg, axis)), split_case(chunks=True)),
    # --- indexing, selection
    OpSpec("getitem", _tl_index, lambda x, index: x[index], _t_index, index_case()),
    OpSpec("getitem_list", lambda x, index: x[index], lambda x, index: x[index], None,
           list_index_case()),
    OpSpec("where", lambda a, b, cond: tl.where(tl.Tensor(cond, device=a.device), a, b),
           lambda a, b, cond: np.where(cond, a, b),
           lambda a, b, cond: _torch().where(_torch().as_tensor(cond), a, b), where_case()),
    OpSpec("masked_fill",
           lambda x, mask, value: x.masked_fill(tl.Tensor(mask, device=x.device), value),
           lambda x, mask, value: np.where(mask, np.asarray(value, x.dtype), x),
           lambda x, mask, value: x.masked_fill(_torch().as_tensor(mask), value),
           masked_fill_case()),
    # --- dtype
    OpSpec("astype_float64", lambda x: x.astype(np.float64), lambda x: x.astype(np.float64),
           lambda x: x.to(_torch().float64), unary()),
    OpSpec("astype_float32", lambda x: x.astype(np.float32), lambda x: x.astype(np.float32),
           lambda x: x.to(_torch().float32), unary(), smooth=False, finite_diff=False),
]

BY_NAME = {spec.name: spec for spec in OPS}
assert len(BY_NAME) == len(OPS), "op names in the table must be unique"


# ------------------------------------------------------------------------ kinks and ties
# Where an op is not differentiable the table's strategies never go; these rows pin down
# the gradient chosen there, PyTorch's (the expected values were read off PyTorch 2.x):
# relu'(0) = 0, |x|'(0) = 0, clip passes the gradient at its bounds, and max, min, maximum
# and minimum split it evenly among ties.

KINK_INPUT = np.array([-0.5, 0.0, 0.5, 0.5, -1.0])
_FLIP = np.array([4, 3, 2, 1, 0])


@dataclass(frozen=True)
class Kink:
    """An op at its kinks: the gradient of ``sum(tl(x))`` at ``KINK_INPUT`` is ``grad``."""

    name: str
    tl: Callable[[Any], Any]
    torch: Callable[[Any], Any]
    grad: tuple[float, ...]

    def __repr__(self) -> str:
        return self.name


KINKS = [
    Kink("relu", lambda x: x.relu(), lambda x: x.relu(), (0, 0, 1, 1, 0)),
    Kink("abs", lambda x: x.abs(), lambda x: x.abs(), (-1, 0, 1, 1, -1)),
    Kink("clip", lambda x: x.clip(-0.5, 0.5), lambda x: x.clip(-0.5, 0.5), (1, 1, 1, 1, 0)),
    Kink("clip_lo", lambda x: x.clip(0.0), lambda x: x.clip(0.0), (0, 1, 1, 1, 0)),
    Kink("maximum_scalar", lambda x: x.maximum(0.0),
         lambda x: _torch().maximum(x, _torch().zeros_like(x)), (0, 0.5, 1, 1, 0)),
    Kink("minimum_scalar", lambda x: x.minimum(0.0),
         lambda x: _torch().minimum(x, _torch().zeros_like(x)), (1, 0.5, 0, 0, 1)),
    Kink("maximum_ties", lambda x: x.maximum(x[tl.Tensor(_FLIP, device=x.device)]),
         lambda x: _torch().maximum(x, x.flip(0)), (2, 0, 1, 2, 0)),
    Kink("max", lambda x: x.max(), lambda x: x.amax(), (0, 0, 0.5, 0.5, 0)),
    Kink("min", lambda x: x.min(), lambda x: x.amin(), (0, 0, 0, 0, 1)),
    Kink("max_axis", lambda x: x.reshape(1, 5).max(axis=1),
         lambda x: x.reshape(1, 5).amax(1), (0, 0, 0.5, 0.5, 0)),
    Kink("min_keepdims", lambda x: x.reshape(5, 1).min(axis=(0, 1), keepdims=True),
         lambda x: x.reshape(5, 1).amin((0, 1), keepdim=True), (0, 0, 0, 0, 1)),
]

# logsumexp at infinities, where shifting by the max would give inf - inf: PyTorch's values
INFINITE_ROWS = [[-math.inf, -math.inf], [math.inf, 1.0], [-math.inf, 0.0], [math.inf, math.inf]]
