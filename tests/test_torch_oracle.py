"""Every op of the op_specs table against PyTorch: forward and backward, float64 (tight) and
float32 (loose). The public API is PyTorch's, so a mismatch here is a bug."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from op_specs import INFINITE_ROWS, KINK_INPUT, KINKS, OPS, Kink, OpSpec

torch = pytest.importorskip("torch")

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("spec", OPS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@given(data=st.data())
def test_forward_and_backward_match_pytorch(spec: OpSpec, dtype: Any, device: str,
                                            data: st.DataObject) -> None:
    case = data.draw(spec.inputs)
    values = [np.array(a, dtype=dtype) for a in case.arrays]
    ours = [tl.Tensor(v, device=device, requires_grad=spec.grad) for v in values]
    theirs = [torch.tensor(v, requires_grad=spec.grad) for v in values]
    out = as_list(spec.tl(*ours, **case.params))
    ref = as_list((spec.torch or spec.tl)(*theirs, **case.params))
    tol = TOLERANCES[dtype]
    assert len(out) == len(ref), spec.name
    for o, r in zip(out, ref):
        assert o.shape == tuple(r.shape), f"{spec.name}: shape {o.shape} vs torch {tuple(r.shape)}"
        assert o.dtype == np.dtype(str(r.dtype).removeprefix("torch.")), spec.name
        np.testing.assert_allclose(o.numpy(), r.detach().numpy(), **tol, err_msg=spec.name)
    if not spec.grad:
        return
    # one random upstream gradient per output, the same for both libraries
    rng = np.random.default_rng(0)
    douts = [rng.standard_normal(o.shape).astype(o.dtype) for o in out]
    pairs = [(o, r, d) for o, r, d in zip(out, ref, douts) if r.requires_grad]
    if not pairs:
        return
    torch.autograd.backward([r for _, r, _ in pairs], [torch.tensor(d) for _, _, d in pairs])
    sum((o * tl.Tensor(d, device=device)).sum() for o, _, d in pairs).backward()
    for i, (x, t) in enumerate(zip(ours, theirs)):
        expected = np.zeros(x.shape, dtype) if t.grad is None else t.grad.numpy()
        got = np.zeros(x.shape, dtype) if x.grad is None else x.grad.numpy()
        assert got.dtype == expected.dtype, f"{spec.name}: input {i} grad dtype"
        np.testing.assert_allclose(got, expected, **tol, err_msg=f"{spec.name}: grad of input {i}")


@pytest.mark.parametrize("kink", KINKS, ids=repr)
def test_gradient_at_kinks_and_ties_matches_pytorch(kink: Kink, device: str) -> None:
    x = tl.Tensor(KINK_INPUT.copy(), device=device, requires_grad=True)
    kink.tl(x).sum().backward()
    t = torch.tensor(KINK_INPUT, requires_grad=True)
    kink.torch(t).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_logsumexp_at_infinities_matches_pytorch(dtype: Any, device: str) -> None:
    rows = np.array(INFINITE_ROWS, dtype=dtype)
    with np.errstate(divide="ignore"):
        out = tl.Tensor(rows, device=device).logsumexp(axis=1)
    np.testing.assert_array_equal(out.numpy(), torch.tensor(rows).logsumexp(1).numpy())


# One operand of each kind that meets a tensor in arithmetic; the result dtypes are PyTorch's
OPERANDS = {
    "f32": np.ones(2, np.float32), "f64": np.ones(2, np.float64), "f16": np.ones(2, np.float16),
    "f32_0d": np.full((), 1.5, np.float32), "f64_0d": np.full((), 2.5, np.float64),
    "i64": np.ones(2, np.int64), "i32": np.ones(2, np.int32), "i64_0d": np.full((), 3, np.int64),
    "bool": np.ones(2, np.bool_), "bool_0d": np.ones((), np.bool_),
}
SCALARS = {"float": 1.5, "int": 2, "bool": True, "np.float64": np.float64(1.5),
           "np.float32": np.float32(1.5), "np.int64": np.int64(2)}


@pytest.mark.parametrize("left", OPERANDS)
def test_result_dtypes_match_pytorch(left: str) -> None:
    ours = tl.Tensor(OPERANDS[left])
    theirs = torch.tensor(OPERANDS[left])
    pairs = [(tl.Tensor(v), torch.tensor(v), name) for name, v in OPERANDS.items()]
    pairs += [(v, v, name) for name, v in SCALARS.items()]
    for ours_b, theirs_b, name in pairs:
        for op, fn in [("+", lambda a, b: a + b), ("*", lambda a, b: b * a),
                       ("/", lambda a, b: a / b), ("/", lambda a, b: b / a)]:
            expected = str(fn(theirs, theirs_b).dtype).removeprefix("torch.")
            assert str(fn(ours, ours_b).dtype) == expected, f"{left} {op} {name}"
