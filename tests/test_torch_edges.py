"""Hunting disagreements with PyTorch at the edges: empty and 0-d tensors, size-1
broadcasting, mixed dtypes, infinities, NaN and huge values. PyTorch is the specification;
each test compares forward values, result dtypes and gradients (or that both refuse)."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lm as tl

torch = pytest.importorskip("torch")

EXTREMES = [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1.0, -1.0, 20.0, -20.0, 40.0, -40.0, 88.0,
            -88.0, 89.0, -104.0, 710.0, -750.0, 1e30, -1e30, math.inf, -math.inf, math.nan]
# empty, 0-d and size-1 axes, the shapes where NumPy and PyTorch are most likely to part
EDGE_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
FLOATS = [np.float32, np.float64]
DTYPES = [np.bool_, np.int32, np.int64, np.float16, np.float32, np.float64]


def extreme_arrays(shape: tuple[int, ...], dtype: Any) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=st.sampled_from(EXTREMES).map(dtype))


def check_same(ours: Any, theirs: Any, what: str, rtol: float = 1e-5, atol: float = 0) -> None:
    """Values, shape and dtype of a tinygrad_lm tensor against a torch tensor."""
    expected = theirs.detach().numpy()
    assert ours.shape == expected.shape, f"{what}: shape {ours.shape} vs torch {expected.shape}"
    assert ours.dtype == expected.dtype, f"{what}: dtype {ours.dtype} vs torch {expected.dtype}"
    np.testing.assert_allclose(ours.numpy().astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def both(fn_ours: Callable[[], Any], fn_theirs: Callable[[], Any]) -> tuple[Any, Any] | None:
    """Run both; if torch refuses, ours must refuse too (and None is returned)."""
    try:
        theirs = fn_theirs()
    except (RuntimeError, IndexError, ValueError, TypeError):
        with pytest.raises((RuntimeError, IndexError, ValueError, TypeError)):
            fn_ours()
        return None
    return fn_ours(), theirs


UNARY = {
    "exp": (lambda x: x.exp(), lambda t: t.exp()),
    "log": (lambda x: x.log(), lambda t: t.log()),
    "sqrt": (lambda x: x.sqrt(), lambda t: t.sqrt()),
    "abs": (lambda x: x.abs(), lambda t: t.abs()),
    "tanh": (lambda x: x.tanh(), lambda t: t.tanh()),
    "sigmoid": (lambda x: x.sigmoid(), lambda t: t.sigmoid()),
    "log_sigmoid": (lambda x: x.sigmoid().log(), lambda t: t.sigmoid().log()),
    "relu": (lambda x: x.relu(), lambda t: t.relu()),
    "erf": (lambda x: x.erf(), lambda t: t.erf()),
    "gelu": (lambda x: x.gelu(), lambda t: torch.nn.functional.gelu(t)),
    "gelu_tanh": (lambda x: x.gelu("tanh"),
                  lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
    "neg": (lambda x: -x, lambda t: -t),
    "square": (lambda x: x ** 2, lambda t: t ** 2),
    "pow0": (lambda x: x ** 0, lambda t: t ** 0),
    "clip": (lambda x: x.clip(-1.0, 1.0), lambda t: t.clip(-1.0, 1.0)),
    "softmax": (lambda x: x.softmax(-1), lambda t: t.softmax(-1)),
    "log_softmax": (lambda x: x.log_softmax(-1), lambda t: t.log_softmax(-1)),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_ops_at_extreme_values_match_pytorch(name: str, data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = data.draw(EDGE_SHAPES)
    if name in ("softmax", "log_softmax") and not shape:
        shape = (2,)
    values = data.draw(extreme_arrays(shape, dtype))
    fn, ref = UNARY[name]
    x, t = tl.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    with np.errstate(all="ignore"):
        out = fn(x)
    expected = ref(t)
    # float32 gelu and erf use a 1.5e-7 approximation: a looser tolerance near 0
    tol = dict(rtol=1e-6, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=2e-7)
    check_same(out, expected, name, **tol)
    dout = np.ones(out.shape, dtype)
    expected.backward(torch.tensor(dout))
    with np.errstate(all="ignore"):
        out.backward(tl.tensor(dout))
    check_same(x.grad, t.grad, f"grad of {name}", **tol)


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b),
    "eq": lambda a, b: a == b, "lt": lambda a, b: a < b,
}
TORCH_BINARY = {**BINARY, "maximum": torch.maximum, "minimum": torch.minimum}
SMALL_INTS = st.sampled_from([-2, -1, 0, 1, 2, 3])


@st.composite
def operand(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    if dtype == np.bool_:
        return draw(hnp.arrays(dtype, shape))
    if np.dtype(dtype).kind == "i":
        return draw(hnp.arrays(dtype, shape, elements=SMALL_INTS))
    return draw(extreme_arrays(shape, dtype))


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_ops_on_mixed_dtypes_and_edge_shapes_match_pytorch(name: str,
                                                                  data: st.DataObject) -> None:
    shape = data.draw(EDGE_SHAPES)
    other = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=3, min_side=0,
                                               max_side=3))
    a, b = data.draw(operand(shape)), data.draw(operand(other))
    if name in ("sub", "maximum", "minimum") and a.dtype == b.dtype == np.bool_:
        return  # torch refuses bool - bool and has no bool maximum; so do we, with other words
    if name == "pow" and a.dtype.kind in "bi" and b.dtype.kind in "bi" and (
            (b < 0).any() or a.dtype == b.dtype == np.bool_):
        return  # integers to negative integer powers: NumPy refuses, PyTorch returns junk
    with np.errstate(all="ignore"):
        pair = both(lambda: BINARY[name](tl.tensor(a), tl.tensor(b)),
                    lambda: TORCH_BINARY[name](torch.tensor(a), torch.tensor(b)))
    if pair is not None:
        check_same(*pair, f"{a.dtype} {name} {b.dtype}", rtol=1e-3)


@pytest.mark.parametrize("name", ["add", "mul", "div", "pow", "maximum"])
@given(data=st.data())
def test_binary_gradients_with_broadcasting_and_mixed_float_dtypes(name: str,
                                                                   data: st.DataObject) -> None:
    shape = data.draw(EDGE_SHAPES)
    other = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=3, min_side=0,
                                               max_side=3))
    da, db = data.draw(st.sampled_from(FLOATS)), data.draw(st.sampled_from(FLOATS))
    values = st.sampled_from([0.0, 0.5, -1.5, 2.0, 3.0])
    a = data.draw(hnp.arrays(da, shape, elements=values.map(da)))
    b = data.draw(hnp.arrays(db, other, elements=values.map(db)))
    xa, xb = tl.tensor(a, requires_grad=True), tl.tensor(b, requires_grad=True)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    with np.errstate(all="ignore"):
        out = BINARY[name](xa, xb)
        expected = TORCH_BINARY[name](ta, tb)
        check_same(out, expected, name)
        dout = np.ones(out.shape, out.dtype)
        out.backward(tl.tensor(dout))
    expected.backward(torch.tensor(dout))
    check_same(xa.grad, ta.grad, f"grad a of {name}")
    check_same(xb.grad, tb.grad, f"grad b of {name}")


REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum(dim=d, keepdim=k), lambda t, d, k: t.sum(d, keepdim=k)),
    "mean": (lambda x, d, k: x.mean(dim=d, keepdim=k), lambda t, d, k: t.mean(d, keepdim=k)),
    "amax": (lambda x, d, k: x.max(axis=d, keepdims=k), lambda t, d, k: t.amax(d, keepdim=k)),
    "amin": (lambda x, d, k: x.min(axis=d, keepdims=k), lambda t, d, k: t.amin(d, keepdim=k)),
    "max_dim": (lambda x, d, k: x.max(dim=d[0], keepdim=k).values,
                lambda t, d, k: t.max(d[0], keepdim=k).values),
    "argmax_dim": (lambda x, d, k: x.max(dim=d[0], keepdim=k).indices,
                   lambda t, d, k: t.max(d[0], keepdim=k).indices),
    "var": (lambda x, d, k: x.var(dim=d, keepdim=k), lambda t, d, k: t.var(d, keepdim=k)),
    "std": (lambda x, d, k: x.std(dim=d, keepdim=k), lambda t, d, k: t.std(d, keepdim=k)),
    "logsumexp": (lambda x, d, k: x.logsumexp(dim=d, keepdim=k),
                  lambda t, d, k: t.logsumexp(d, keepdim=k)),
    "argmax": (lambda x, d, k: x.argmax(dim=d[0], keepdim=k),
               lambda t, d, k: t.argmax(d[0], keepdim=k)),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data())
def test_reductions_over_empty_and_size_1_axes_match_pytorch(name: str,
                                                             data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    values = data.draw(extreme_arrays(shape, dtype).filter(lambda v: not np.isnan(v).any()))
    if name in ("var", "std"):  # PyTorch accumulates float32 squares in float64; we do not
        values = np.where(np.abs(values) > 1e4, np.sign(values) * 1e4, values).astype(dtype)
        values[np.abs(values) < 1e-4] = 0
    dims = tuple(data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                                    max_size=len(shape), unique_by=lambda d: d % len(shape))))
    keep = data.draw(st.booleans())
    fn, ref = REDUCTIONS[name]
    x, t = tl.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    with np.errstate(all="ignore"):
        pair = both(lambda: fn(x, dims, keep), lambda: ref(t, dims, keep))
    if pair is None:
        return
    out, expected = pair
    tol = dict(rtol=1e-5) if dtype == np.float64 else dict(rtol=1e-4)
    check_same(out, expected, f"{name} over {dims} of {shape}", **tol)
    if not expected.requires_grad or not np.isfinite(values).all():
        return
    dout = np.ones(out.shape, dtype)
    expected.backward(torch.tensor(dout))
    with np.errstate(all="ignore"):
        out.backward(tl.tensor(dout))
    expected_grad = t.grad if t.grad is not None else torch.zeros_like(t)
    check_same(x.grad if x.grad is not None else tl.zeros_like(x), expected_grad,
               f"grad of {name} over {dims} of {shape}", **tol)


@st.composite
def index_case(draw: Any) -> tuple[tuple[int, ...], Any]:
    """A shape with empty or size-1 axes and an index of every kind that fits it."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    items: list[Any] = []
    axis = 0
    while axis < len(shape) and len(items) < 3:
        n = shape[axis]
        kinds = ["slice", "none", "ellipsis_end", "mask"] + (["int", "array"] if n else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            items.append(slice(draw(st.none() | st.integers(-4, 4)),
                               draw(st.none() | st.integers(-4, 4)),
                               draw(st.none() | st.integers(1, 3))))
        elif kind == "none":
            items.append(None)
            continue
        elif kind == "array":
            items.append(np.array(draw(st.lists(st.integers(-n, n - 1), max_size=3))
                                  , dtype=np.int64))
        elif kind == "mask":
            items.append(draw(hnp.arrays(np.bool_, (n,))))
        else:
            items.append(Ellipsis)
            break
        axis += 1
    if draw(st.booleans()) and not any(isinstance(i, (int, np.ndarray)) for i in items):
        # with ints or arrays NumPy moves a 0-d bool's axis to the front, PyTorch does not
        items.append(np.array(draw(st.booleans())))  # a 0-d bool
    return shape, tuple(items)


@given(case=index_case())
def test_indexing_on_edge_shapes_matches_pytorch(case: tuple[tuple[int, ...], Any]) -> None:
    shape, index = case
    values = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    x, t = tl.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    ours_index = tuple(tl.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    theirs_index = tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    pair = both(lambda: x[ours_index], lambda: t[theirs_index])
    if pair is None:
        return
    out, expected = pair
    check_same(out, expected, f"{shape}[{index}]")
    dout = np.arange(out.numel(), dtype=np.float64).reshape(out.shape)
    expected.backward(torch.tensor(dout))
    out.backward(tl.tensor(dout))
    check_same(x.grad, t.grad, f"grad of {shape}[{index}]")


@given(case=index_case(), value=st.sampled_from([-1.5, 0.0, 7.0]))
def test_setitem_on_edge_shapes_matches_pytorch(case: tuple[tuple[int, ...], Any],
                                                value: float) -> None:
    shape, index = case
    values = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    x, t = tl.tensor(values), torch.tensor(values)
    ours_index = tuple(tl.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    theirs_index = tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    if any(isinstance(i, np.ndarray) and i.dtype != bool for i in index):
        return  # repeated integer positions: which write wins is unspecified in both
    pair = both(lambda: x.__setitem__(ours_index, value),
                lambda: t.__setitem__(theirs_index, value))
    if pair is not None:
        check_same(x, t, f"{shape}[{index}] = {value}")


@given(data=st.data())
def test_cat_and_stack_of_mixed_dtypes_and_empty_pieces_match_pytorch(data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=2))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    pieces = []
    for _ in range(data.draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = data.draw(st.integers(0, 2))
        pieces.append(data.draw(operand(tuple(s))))
    pair = both(lambda: tl.cat([tl.tensor(p) for p in pieces], dim=axis),
                lambda: torch.cat([torch.tensor(p) for p in pieces], axis))
    if pair is not None:
        check_same(*pair, f"cat of {[(p.dtype, p.shape) for p in pieces]} on {axis}")
    same = [data.draw(operand(shape)) for _ in range(2)]
    pair = both(lambda: tl.stack([tl.tensor(p) for p in same], dim=axis),
                lambda: torch.stack([torch.tensor(p) for p in same], axis))
    if pair is not None:
        check_same(*pair, f"stack of {[p.dtype for p in same]} on {axis}")
