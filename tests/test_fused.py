"""Every fused kernel equals its ``reference`` composition, forward and backward, in float64;
both pass gradcheck; and second derivatives (which the engine takes through ``reference``)
pass gradgradcheck."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from tinygrad_lm import Tensor, fused
from tinygrad_lm.nn import functional as F


def _randn(rng: np.random.Generator, *shape: int, grad: bool = True) -> Tensor:
    return Tensor(rng.standard_normal(shape), requires_grad=grad)


def _fresh(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Copies of the tensor inputs with their own (empty) gradients."""
    return tuple(Tensor(t.numpy(), requires_grad=t.requires_grad) if isinstance(t, Tensor)
                 else t for t in inputs)


class Case:
    """One fused op applied to inputs: ``fused_fn`` calls ``apply``, ``reference_fn`` the
    composition, both with the same kwargs."""

    def __init__(self, name: str, op: Any, make: Callable[[np.random.Generator], tuple],
                 **kwargs: Any) -> None:
        self.name, self.op, self.make, self.kwargs = name, op, make, kwargs

    def fused_fn(self, *xs: Any) -> Tensor:
        return self.op.apply(*xs, **self.kwargs)

    def reference_fn(self, *xs: Any) -> Tensor:
        return self.op.reference(*xs, **self.kwargs)

    def __repr__(self) -> str:
        return self.name


def _xent_inputs(rng: np.random.Generator) -> tuple:
    targets = Tensor(np.array([0, 3, -100, 2, 1]))
    return _randn(rng, 5, 4), targets


def _ln_inputs(rng: np.random.Generator, weight: bool = True, bias: bool = True) -> tuple:
    return (_randn(rng, 2, 3, 5), _randn(rng, 5) if weight else None,
            _randn(rng, 5) if bias else None)


def _attn_inputs(rng: np.random.Generator) -> tuple:
    return _randn(rng, 2, 3, 4), _randn(rng, 2, 5, 4), _randn(rng, 2, 5, 3)


_CAUSAL = np.triu(np.full((3, 5), -np.inf), k=1)
_CAUSAL_SQUARE = np.triu(np.full((3, 3), -np.inf), k=1)
_KEEP_HEADS = (np.random.default_rng(6).random((2, 2, 3, 3)) >= 0.3) / 0.7
_KEEP = (np.random.default_rng(5).random((2, 3, 5)) >= 0.3) / 0.7

CASES = [
    Case("softmax", fused.Softmax, lambda r: (_randn(r, 3, 4),), axis=-1),
    Case("softmax_axis0", fused.Softmax, lambda r: (_randn(r, 3, 4),), axis=0),
    Case("log_softmax", fused.LogSoftmax, lambda r: (_randn(r, 3, 4),), axis=-1),
    Case("log_softmax_axis1", fused.LogSoftmax, lambda r: (_randn(r, 2, 3, 2),), axis=1),
    Case("cross_entropy", fused.CrossEntropy, _xent_inputs, ignore_index=-100),
    Case("cross_entropy_sum", fused.CrossEntropy, _xent_inputs, ignore_index=-100,
         reduction="sum"),
    Case("cross_entropy_mean", fused.CrossEntropy, _xent_inputs, ignore_index=-100,
         reduction="mean", count=4),
    Case("layer_norm", fused.LayerNorm, _ln_inputs, eps=1e-5),
    Case("layer_norm_no_bias", fused.LayerNorm, lambda r: _ln_inputs(r, bias=False), eps=1e-5),
    Case("layer_norm_plain", fused.LayerNorm, lambda r: _ln_inputs(r, False, False), eps=1e-3),
    Case("rms_norm", fused.RMSNorm, lambda r: (_randn(r, 2, 3, 5), _randn(r, 5)), eps=1e-5),
    Case("rms_norm_plain", fused.RMSNorm, lambda r: (_randn(r, 4, 5), None), eps=1e-3),
    Case("swiglu", fused.SwiGLU, lambda r: (_randn(r, 2, 3, 4), _randn(r, 2, 3, 4))),
    Case("rotary", fused.Rotary,
         lambda r: (_randn(r, 2, 3, 4), *F.rotary_tables(2, 3, 4, dtype="float64"))),
    Case("gelu", fused.Gelu, lambda r: (_randn(r, 3, 4),), approximate="none"),
    Case("gelu_tanh", fused.Gelu, lambda r: (_randn(r, 3, 4),), approximate="tanh"),
    Case("linear", fused.Linear, lambda r: (_randn(r, 2, 3, 4), _randn(r, 5, 4), _randn(r, 5))),
    Case("linear_no_bias_1d", fused.Linear, lambda r: (_randn(r, 4), _randn(r, 5, 4), None)),
    Case("attention", fused.Attention, _attn_inputs, mask=None, scale=0.5, keep=None),
    Case("attention_causal", fused.Attention, _attn_inputs, mask=_CAUSAL, scale=0.5, keep=None),
    Case("attention_dropout", fused.Attention, _attn_inputs, mask=_CAUSAL, scale=0.5,
         keep=_KEEP),
    Case("packed_attention", fused.PackedAttention, lambda r: (_randn(r, 2, 3, 12),),
         n_head=2, mask=_CAUSAL_SQUARE, scale=0.5, keep=None),
    Case("packed_attention_dropout", fused.PackedAttention, lambda r: (_randn(r, 2, 3, 12),),
         n_head=2, mask=None, scale=0.5, keep=_KEEP_HEADS),
]


def _grads(fn: Callable[..., Tensor], inputs: tuple, direction: np.ndarray) -> tuple:
    out = fn(*inputs)
    out.backward(Tensor(direction))
    return out.numpy(), [t.grad.numpy() if t.grad is not None else None
                         for t in inputs if isinstance(t, Tensor) and t.requires_grad]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_fused_equals_reference_forward_and_backward(case: Case) -> None:
    rng = np.random.default_rng(0)
    inputs = case.make(rng)
    out_shape = case.fused_fn(*_fresh(inputs)).shape
    direction = rng.standard_normal(out_shape)
    out_f, grads_f = _grads(case.fused_fn, _fresh(inputs), direction)
    out_r, grads_r = _grads(case.reference_fn, _fresh(inputs), direction)
    assert out_f.dtype == np.float64
    np.testing.assert_allclose(out_f, out_r, rtol=1e-12, atol=1e-12)
    assert len(grads_f) == len(grads_r) > 0
    for gf, gr in zip(grads_f, grads_r):
        assert gf is not None and gr is not None
        np.testing.assert_allclose(gf, gr, rtol=1e-10, atol=1e-12)


def _over_tensors(fn: Callable[..., Tensor], inputs: tuple) -> tuple[Callable[..., Tensor], tuple]:
    """``fn`` as a function of the tensor inputs alone (gradcheck takes only tensors); the
    absent optional ones (``None``) are put back in place."""
    slots = [i for i, t in enumerate(inputs) if isinstance(t, Tensor)]

    def call(*tensors: Tensor) -> Tensor:
        args = list(inputs)
        for i, t in zip(slots, tensors):
            args[i] = t
        return fn(*args)

    return call, tuple(inputs[i] for i in slots)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_fused_and_reference_pass_gradcheck(case: Case) -> None:
    inputs = case.make(np.random.default_rng(1))
    assert tl.gradcheck(*_over_tensors(case.fused_fn, _fresh(inputs)))
    assert tl.gradcheck(*_over_tensors(case.reference_fn, _fresh(inputs)))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_gradgradcheck_through_fused(case: Case) -> None:
    inputs = case.make(np.random.default_rng(2))
    assert tl.gradgradcheck(*_over_tensors(case.fused_fn, _fresh(inputs)), atol=1e-4)


def test_second_derivative_uses_reference() -> None:
    """d^2/dx^2 of sum(gelu(x)) = 2 phi(x) - x^2 phi(x), through the fused op's reference."""
    x = Tensor(np.linspace(-2, 2, 7), requires_grad=True)
    (g,) = tl.grad(fused.Gelu.apply(x, approximate="none").sum(), x, create_graph=True)
    (h,) = tl.grad(g.sum(), x)
    xs = x.numpy()
    pdf = np.exp(-xs ** 2 / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(h.numpy(), 2 * pdf - xs ** 2 * pdf, rtol=1e-10, atol=1e-12)


def test_only_requested_gradients_are_computed() -> None:
    rng = np.random.default_rng(3)
    q, k, v = _attn_inputs(rng)
    k.requires_grad = False
    fused.Attention.apply(q, k, v, mask=None, scale=1.0, keep=None).sum().backward()
    assert q.grad is not None and v.grad is not None and k.grad is None
    x, w, b = _ln_inputs(rng)
    x.requires_grad = False
    fused.LayerNorm.apply(x, w, b, eps=1e-5).sum().backward()
    assert x.grad is None and w.grad is not None and b.grad is not None


def test_fused_float32_stays_float32() -> None:
    x = tl.randn(4, 6, requires_grad=True)
    for out in (fused.Softmax.apply(x, axis=-1), fused.LogSoftmax.apply(x, axis=-1),
                fused.Gelu.apply(x, approximate="none"), fused.Gelu.apply(x, approximate="tanh"),
                fused.LayerNorm.apply(x, None, None, eps=1e-5),
                fused.RMSNorm.apply(x, None, eps=1e-5), fused.SwiGLU.apply(x, x),
                fused.Rotary.apply(x, *F.rotary_tables(0, 4, 6)),
                fused.Attention.apply(x, x, x, mask=None, scale=0.5, keep=None)):
        assert out.dtype == np.float32
        x.grad = None
        out.sum().backward()
        assert x.grad.dtype == np.float32


def test_softmax_and_cross_entropy_are_stable_for_huge_logits() -> None:
    x = Tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    np.testing.assert_allclose(fused.Softmax.apply(x, axis=-1).numpy(), [[1, 0, 0]], atol=1e-7)
    loss = fused.CrossEntropy.apply(x, Tensor([1]), ignore_index=-100)
    np.testing.assert_allclose(loss.numpy(), [1000.0], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1, -1, 0]], atol=1e-6)


@given(rows=st.integers(1, 4), cols=st.integers(2, 6), scale=st.floats(0.1, 20.0),
       seed=st.integers(0, 2 ** 16))
def test_layer_norm_property(rows: int, cols: int, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((rows, cols)) * scale + rng.standard_normal())
    w, b = Tensor(rng.standard_normal(cols)), Tensor(rng.standard_normal(cols))
    np.testing.assert_allclose(fused.LayerNorm.apply(x, w, b, eps=1e-5).numpy(),
                               fused.LayerNorm.reference(x, w, b, eps=1e-5).numpy(),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float32, 2e-6, 2e-7),  # erf to 1.5e-7
                                               (np.float64, 1e-13, 1e-15)])
def test_gelu_gradient_at_and_near_zero(dtype: Any, rtol: float, atol: float) -> None:
    """Backward reads Phi(x) back as y / x, and from a Taylor series where that is 0 / 0."""
    values = [0.0, 1e-30, -1e-9, 3e-5, -1e-3, 0.7, -3.0, 8.0, -12.0]
    x = Tensor(np.array(values, dtype), requires_grad=True)
    fused.Gelu.apply(x, approximate="none").sum().backward()
    expected = [0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) /
                math.sqrt(2 * math.pi) for v in np.array(values, dtype).astype(float)]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("setting", ["fast", "reference"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_with_every_target_ignored_has_zero_gradients(
        setting: str, label_smoothing: float) -> None:
    """As in PyTorch: the mean over no targets is NaN, but the gradient is zero, so a
    padding-only batch cannot poison the parameters."""
    before = tl.get_kernels()
    tl.set_kernels(setting)
    try:
        logits = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
        loss = tl.nn.functional.cross_entropy(logits, [-100, -100, -100],
                                              label_smoothing=label_smoothing)
        loss.backward()
    finally:
        tl.set_kernels(before)
    assert math.isnan(loss.item())
    assert np.array_equal(logits.grad.numpy(), np.zeros((3, 4)))
