"""Layers and functional ops against PyTorch, forward and backward, with the same weights.

Inputs are float64 so the comparison is tight; each check feeds both libraries the same
arrays and the same upstream gradient, then compares the output and every input gradient.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pytest

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import Tensor, nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RTOL, ATOL = 1e-9, 1e-11


def _compare(ours: Callable[..., Tensor], theirs: Callable[..., Any], arrays: Sequence[np.ndarray],
             needs_grad: Sequence[bool] | None = None, seed: int = 0) -> None:
    """Run both functions on copies of ``arrays``; compare outputs and gradients (float
    arrays get gradients unless ``needs_grad`` says otherwise)."""
    needs_grad = needs_grad or [a.dtype.kind == "f" for a in arrays]
    ts = [Tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, needs_grad)]
    ps = [torch.tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, needs_grad)]
    out, ref = ours(*ts), theirs(*ps)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    direction = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(Tensor(direction))
    ref.backward(torch.tensor(direction))
    for i, (t, p) in enumerate(zip(ts, ps)):
        if p.requires_grad:
            assert t.grad is not None, f"input {i} got no gradient"
            np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"gradient of input {i}")


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias: bool) -> None:
    arrays = [_rand(2, 4, 5), _rand(3, 5, seed=1)] + ([_rand(3, seed=2)] if bias else [])
    _compare(lambda x, w, *b: F.linear(x, w, *b), lambda x, w, *b: TF.linear(x, w, *b), arrays)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_module_with_copied_weights(bias: bool) -> None:
    ours = nn.Linear(5, 3, bias=bias)
    theirs = torch.nn.Linear(5, 3, bias=bias)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = _rand(2, 4, 5).astype(np.float32)
    out, ref = ours(Tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-5)
    if bias:
        np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-5)


def test_module_parameter_order_matches_torch() -> None:
    class Ours(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.scale = nn.Parameter(tl.ones(2))
            self.b = nn.Sequential(nn.LayerNorm(2), nn.Linear(2, 1))

    class Theirs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(2, 2)
            self.scale = torch.nn.Parameter(torch.ones(2))
            self.b = torch.nn.Sequential(torch.nn.LayerNorm(2), torch.nn.Linear(2, 1))

    assert [n for n, _ in Ours().named_parameters()] == \
        [n for n, _ in Theirs().named_parameters()]
    assert list(Ours().state_dict()) == list(Theirs().state_dict())


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(bias: bool) -> None:
    arrays = [_rand(3, 4, 6) * 2 + 1, _rand(6, seed=1)] + ([_rand(6, seed=2)] if bias else [])
    _compare(lambda x, w, *b: F.layer_norm(x, 6, w, *b),
             lambda x, w, *b: TF.layer_norm(x, (6,), w, *b), arrays)


def test_layer_norm_module_bias_false_matches_torch() -> None:
    ours = nn.LayerNorm(6, bias=False)
    theirs = torch.nn.LayerNorm(6, bias=False, dtype=torch.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = _rand(2, 6)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=RTOL, atol=ATOL)


def test_layer_norm_two_trailing_dims_without_affine() -> None:
    _compare(lambda x: F.layer_norm(x, (3, 4)), lambda x: TF.layer_norm(x, (3, 4)),
             [_rand(2, 3, 4)])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate: str) -> None:
    _compare(lambda x: F.gelu(x, approximate), lambda x: TF.gelu(x, approximate=approximate),
             [_rand(4, 7) * 3])
    layer = nn.GELU(approximate)
    x = _rand(3, 3)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(),
                               torch.nn.GELU(approximate)(torch.tensor(x)).numpy(), rtol=RTOL)


def test_relu_and_tanh_modules() -> None:
    _compare(lambda x: nn.ReLU()(x), lambda x: torch.nn.ReLU()(x), [_rand(4, 5)])
    _compare(lambda x: nn.Tanh()(x), lambda x: torch.nn.Tanh()(x), [_rand(4, 5)])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(axis: int) -> None:
    x = _rand(3, 4, 5) * 4
    _compare(lambda t: F.softmax(t, axis), lambda t: TF.softmax(t, dim=axis), [x])
    _compare(lambda t: F.log_softmax(t, axis), lambda t: TF.log_softmax(t, dim=axis), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_2d(reduction: str, ignore_index: int) -> None:
    targets = np.array([0, 2, 4, 2, 1, ignore_index, 3])
    _compare(lambda z, t: F.cross_entropy(z, t, ignore_index=ignore_index, reduction=reduction),
             lambda z, t: TF.cross_entropy(z, t, ignore_index=ignore_index, reduction=reduction),
             [_rand(7, 5) * 2, targets])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_spatial(reduction: str) -> None:
    targets = np.random.default_rng(4).integers(0, 5, size=(2, 3, 4))
    targets[1, 2, 0] = -100
    _compare(lambda z, t: F.cross_entropy(z, t, reduction=reduction),
             lambda z, t: TF.cross_entropy(z, t, reduction=reduction),
             [_rand(2, 5, 3, 4), targets])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction: str) -> None:
    _compare(lambda a, b: F.mse_loss(a, b, reduction=reduction),
             lambda a, b: TF.mse_loss(a, b, reduction=reduction),
             [_rand(3, 4), _rand(3, 4, seed=9)])


def test_embedding() -> None:
    idx = np.array([[0, 3, 3, 1], [5, 0, 3, 2]])
    _compare(lambda i, w: F.embedding(i, w), lambda i, w: TF.embedding(i, w),
             [idx, _rand(6, 4)])


def _sdpa(**kwargs: Any) -> tuple[Callable[..., Tensor], Callable[..., Any]]:
    def ours(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        mask = kwargs.get("attn_mask")
        extra = dict(kwargs, attn_mask=None if mask is None else Tensor(mask))
        return F.scaled_dot_product_attention(q, k, v, **extra)

    def theirs(q: Any, k: Any, v: Any) -> Any:
        mask = kwargs.get("attn_mask")
        extra = dict(kwargs, attn_mask=None if mask is None else torch.tensor(mask))
        return TF.scaled_dot_product_attention(q, k, v, **extra)

    return ours, theirs


def _qkv(length: int = 5, source: int = 5) -> list[np.ndarray]:
    return [_rand(2, 3, length, 4, seed=1), _rand(2, 3, source, 4, seed=2),
            _rand(2, 3, source, 6, seed=3)]


def test_attention_plain() -> None:
    _compare(*_sdpa(), _qkv(5, 7))


def test_attention_causal() -> None:
    _compare(*_sdpa(is_causal=True), _qkv())


def test_attention_bool_mask() -> None:
    mask = np.random.default_rng(6).random((5, 7)) > 0.5
    mask[:, 3] = True
    _compare(*_sdpa(attn_mask=mask), _qkv(5, 7))


def test_attention_float_mask() -> None:
    mask = np.random.default_rng(7).standard_normal((2, 1, 5, 7))
    mask[..., 2] = -np.inf
    _compare(*_sdpa(attn_mask=mask), _qkv(5, 7))


def test_attention_explicit_scale() -> None:
    _compare(*_sdpa(scale=0.3, is_causal=True), _qkv())
