"""Every op of the table in op_specs.py: forward vs NumPy (float32 and float64), gradients
vs central differences (``tl.gradcheck``) and second derivatives (``tl.gradgradcheck``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from op_specs import INFINITE_ROWS, KINK_INPUT, KINKS, OPS, Case, Kink, OpSpec
from strategies import arrays, broadcast_pairs, shapes


def as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def tensors(case: Case, device: str, dtype: Any, requires_grad: bool) -> list[tl.Tensor]:
    return [tl.Tensor(a.astype(dtype) if dtype != a.dtype else a, device=device,
                      requires_grad=requires_grad) for a in case.arrays]


@pytest.mark.parametrize("spec", OPS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@given(data=st.data())
def test_forward_matches_numpy(spec: OpSpec, dtype: Any, device: str, data: st.DataObject) -> None:
    case = data.draw(spec.inputs)
    inputs = tensors(case, device, dtype, requires_grad=False)
    outs = as_list(spec.tl(*inputs, **case.params))
    low = [a.astype(dtype) for a in case.arrays]
    # the reference runs in float64 on the same (rounded) inputs; its dtype is the expected one
    expected_dtypes = [np.asarray(r).dtype for r in as_list(spec.np(*low, **case.params))]
    refs = as_list(spec.np(*[a.astype(np.float64) for a in low], **case.params))
    assert len(outs) == len(refs)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for out, ref, ref_dtype in zip(outs, refs, expected_dtypes):
        assert isinstance(out, tl.Tensor) and out.device == tl.Tensor(0.0, device=device).device
        assert out.shape == np.shape(ref), spec.name
        assert out.dtype == ref_dtype, f"{spec.name}: {out.dtype} != {ref_dtype}"
        np.testing.assert_allclose(out.numpy().astype(np.float64), ref, **tol)


GRAD_OPS = [s for s in OPS if s.grad and s.finite_diff]


@pytest.mark.parametrize("spec", GRAD_OPS, ids=repr)
@given(data=st.data())
def test_gradcheck(spec: OpSpec, device: str, data: st.DataObject) -> None:
    case = data.draw(spec.inputs)
    inputs = tensors(case, device, np.float64, requires_grad=True)
    assert tl.gradcheck(lambda *xs: spec.tl(*xs, **case.params), tuple(inputs))


@pytest.mark.parametrize("spec", [s for s in GRAD_OPS if s.smooth], ids=repr)
@given(data=st.data())
def test_gradgradcheck(spec: OpSpec, device: str, data: st.DataObject) -> None:
    case = data.draw(spec.inputs)
    inputs = tensors(case, device, np.float64, requires_grad=True)
    assert tl.gradgradcheck(lambda *xs: spec.tl(*xs, **case.params), tuple(inputs))


@pytest.mark.parametrize("spec", [s for s in OPS if s.grad], ids=repr)
@given(data=st.data())
def test_float32_gradient_keeps_input_shape_dtype_and_device(spec: OpSpec, device: str,
                                                              data: st.DataObject) -> None:
    case = data.draw(spec.inputs)
    inputs = tensors(case, device, np.float32, requires_grad=True)
    outs = [o for o in as_list(spec.tl(*inputs, **case.params)) if o.requires_grad]
    sum(o.astype(np.float32).sum() for o in outs).backward()
    for x in inputs:
        if x.grad is not None:  # an input sliced away entirely gets no gradient
            assert (x.grad.shape, x.grad.dtype, x.grad.device) == (x.shape, x.dtype, x.device)


@pytest.mark.parametrize("reverse", [False, True])
@given(pair=broadcast_pairs(), data=st.data())
def test_comparisons_give_bool_without_grad(pair: Any, reverse: bool, device: str,
                                             data: st.DataObject) -> None:
    a_np = data.draw(arrays(pair[0], "distinct"))
    b_np = data.draw(arrays(pair[1], "distinct"))
    a_np = np.array(a_np)
    a_np.flat[0] = 0.025  # b's grid holds 0.025 too: ties test == and <= on equal values
    if reverse:
        a_np, b_np = b_np, a_np
    a = tl.Tensor(a_np, device=device, requires_grad=True)
    b = tl.Tensor(b_np, device=device)
    for name, fn in [("eq", lambda x, y: x == y), ("ne", lambda x, y: x != y),
                     ("lt", lambda x, y: x < y), ("le", lambda x, y: x <= y),
                     ("gt", lambda x, y: x > y), ("ge", lambda x, y: x >= y)]:
        out = fn(a, b)
        assert out.dtype == np.bool_ and not out.requires_grad and out.grad_fn is None, name
        np.testing.assert_array_equal(out.numpy(), fn(a_np, b_np), err_msg=name)
        np.testing.assert_array_equal(fn(a, 0.025).numpy(), fn(a_np, 0.025), err_msg=name)


@given(data=st.data())
def test_argmax_argmin_match_numpy_and_have_no_grad(device: str, data: st.DataObject) -> None:
    shape = data.draw(shapes(min_dims=1))
    x_np = data.draw(arrays(shape, "distinct"))
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    keepdims = data.draw(st.booleans())
    x = tl.Tensor(x_np, device=device, requires_grad=True)
    for name in ("argmax", "argmin"):
        out = getattr(x, name)(axis=axis, keepdims=keepdims)
        ref = getattr(np, name)(x_np, axis=axis, keepdims=keepdims)
        assert out.dtype.kind == "i" and not out.requires_grad, name
        np.testing.assert_array_equal(out.numpy(), ref, err_msg=name)


def test_max_min_and_maximum_split_the_gradient_evenly_among_ties(device: str) -> None:
    values = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    for name, tie in [("max", 3.0), ("min", 1.0)]:
        x = tl.Tensor(values if name == "max" else -values + 4, device=device, requires_grad=True)
        getattr(x, name)().backward()  # the tie sits at (0, 0) and (0, 2) for both
        np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0, 0.5], [0, 0, 0]], err_msg=name)
    x = tl.Tensor(values, device=device, requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    a = tl.Tensor(np.array([1.0, 2.0]), device=device, requires_grad=True)
    b = tl.Tensor(np.array([1.0, 3.0]), device=device, requires_grad=True)
    a.maximum(b).sum().backward()
    assert a.grad.tolist() == [0.5, 0.0] and b.grad.tolist() == [0.5, 1.0]


@pytest.mark.parametrize("kink", KINKS, ids=repr)
def test_gradient_at_kinks_and_ties(kink: Kink, device: str) -> None:
    x = tl.Tensor(KINK_INPUT.copy(), device=device, requires_grad=True)
    kink.tl(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), kink.grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_logsumexp_at_infinities(dtype: Any, device: str) -> None:
    rows = np.array(INFINITE_ROWS, dtype=dtype)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for a -inf row
        expected = np.log(np.exp(rows).sum(axis=1))
        out = tl.Tensor(rows, device=device).logsumexp(axis=1)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), expected)
