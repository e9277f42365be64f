"""Every op of the op_specs table against PyTorch: forward and backward, float64 (tight) and
float32 (loose). PyTorch is the fuller specification of API.md, so a mismatch here is a bug."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from op_specs import OPS, OpSpec

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
