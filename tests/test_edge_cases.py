"""Edge cases where the library once disagreed with PyTorch (issue #14): empty reductions,
gradient dtypes, sigmoid's tails, 0^0, boolean indices. Each expected value is PyTorch's."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import tinygrad_lm as tl


def test_max_over_a_non_empty_axis_of_an_empty_tensor() -> None:
    assert tl.zeros(0, 5).max(axis=1).shape == (0,)
    assert tl.zeros(0, 5).min(dim=1).values.shape == (0,)
    with pytest.raises(ValueError, match="empty"):
        tl.zeros(3, 0).max(axis=1)
    with pytest.raises(IndexError):
        tl.zeros(3, 0).max(dim=1)


def test_logsumexp_over_an_empty_axis_is_minus_infinity() -> None:
    x = tl.zeros(3, 0, requires_grad=True)
    out = x.logsumexp(axis=1)
    assert out.tolist() == [-math.inf] * 3
    out.sum().backward()
    assert x.grad.shape == (3, 0)
    assert tl.zeros(0, 2).logsumexp(dim=0, keepdim=True).tolist() == [[-math.inf, -math.inf]]


def test_cat_of_float32_and_float64_gives_each_leaf_its_own_grad_dtype() -> None:
    a = tl.tensor(np.ones(2, np.float32), requires_grad=True)
    b = tl.tensor(np.ones(3, np.float64), requires_grad=True)
    out = tl.cat([a, b])
    assert out.dtype == np.float64
    (out * 2).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert a.grad.tolist() == [2.0, 2.0]


def test_cat_of_integers_and_float32_is_float32() -> None:
    assert tl.cat([tl.tensor([1, 2]), tl.tensor([0.5])]).dtype == np.float32
    assert tl.stack([tl.tensor([1]), tl.tensor([True])]).dtype == np.int64


def test_a_function_whose_backward_returns_float64_gives_a_float32_grad() -> None:
    class Double(tl.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return 2 * x

        @staticmethod
        def backward(ctx: Any, dout: Any) -> Any:
            return (2 * dout).astype(np.float64)

    x = tl.tensor([1.0, 2.0], requires_grad=True)
    (Double.apply(x) * x).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [4.0, 8.0]


@pytest.mark.parametrize("dtype, x, expected", [
    (np.float32, -20.0, -20.0), (np.float32, -80.0, -80.0), (np.float64, -40.0, -40.0),
    (np.float64, -700.0, -700.0), (np.float64, 20.0, -2.0611536181902037e-09),
])
def test_log_of_sigmoid_keeps_its_precision_in_the_tails(dtype: Any, x: float,
                                                         expected: float) -> None:
    t = tl.tensor(np.array([x], dtype), requires_grad=True)
    out = t.sigmoid().log()
    assert out.item() == pytest.approx(expected, rel=1e-6)
    out.backward()
    assert t.grad.item() == pytest.approx(1 / (1 + math.exp(x)), rel=1e-6)  # 1 - sigmoid(x)


def test_sigmoid_of_very_negative_float64_is_not_zero() -> None:
    assert tl.tensor(np.array([-40.0])).sigmoid().item() == pytest.approx(4.248354255291589e-18)
    assert tl.tensor([-1000.0, 1000.0]).sigmoid().tolist() == [0.0, 1.0]


def test_gradient_of_x_to_the_zero_at_zero_is_zero() -> None:
    x = tl.tensor([0.0, 2.0], requires_grad=True)
    (x ** 0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    base, exponent = tl.tensor([0.0, 0.0], requires_grad=True), tl.tensor([0.0, 2.0], requires_grad=True)
    (base ** exponent).sum().backward()
    assert base.grad.tolist() == [0.0, 0.0] and exponent.grad.tolist() == [0.0, 0.0]


def test_a_0d_bool_index_adds_an_axis() -> None:
    x = tl.tensor([[1.0, 2.0]], requires_grad=True)
    assert x[tl.tensor(True)].shape == (1, 1, 2) and x[tl.tensor(False)].shape == (0, 1, 2)
    assert x[True].tolist() == [[[1.0, 2.0]]]
    x[tl.tensor(True)].sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("index", [
    lambda x: x[tl.tensor([True, False])],               # 2 where axis 0 has 3
    lambda x: x[:, tl.tensor([True, False, True, True, False])],
    lambda x: x[tl.tensor([[True, False]])],             # 2-D mask of shape (1, 2), not (3, 4)
    lambda x: x[..., tl.tensor([True])],
])
def test_a_boolean_mask_of_the_wrong_shape_is_an_index_error(index: Any) -> None:
    with pytest.raises(IndexError, match="mask"):
        index(tl.zeros(3, 4))


def test_a_boolean_mask_after_an_ellipsis_or_int_is_checked_against_its_own_axes() -> None:
    x = tl.arange(24).reshape(2, 3, 4)
    assert x[..., tl.tensor([True, False, False, True])].shape == (2, 3, 2)
    assert x[1, tl.tensor([False, True, True])].tolist() == [[16, 17, 18, 19], [20, 21, 22, 23]]
    assert x[None, x > 20].tolist() == [[21, 22, 23]]


# Found by the hunt in test_torch_edges.py, pinned down here by value


def test_gradients_at_nan_follow_pytorch() -> None:
    x = tl.tensor([math.nan], requires_grad=True)
    (x.relu() + x.abs() + x ** 0).sum().backward()
    assert x.grad.tolist() == [1.0]  # relu passes it (NaN is not <= 0); |x|' and (x^0)' are 0


def test_std_at_zero_variance_has_a_zero_gradient() -> None:
    x = tl.tensor([3.0, 3.0], requires_grad=True)
    out = x.std()
    out.backward()
    assert out.item() == 0.0 and x.grad.tolist() == [0.0, 0.0]


def test_minimum_of_bools_and_integers() -> None:
    assert tl.tensor([True, False]).minimum(tl.tensor([True, True])).tolist() == [True, False]
    assert tl.tensor([True]).minimum(tl.tensor([0.5], dtype=tl.float16)).tolist() == [0.5]
    assert tl.tensor([[3, 1]], dtype=tl.int32).min(axis=1).tolist() == [1]
    assert tl.tensor([True, False]).min().item() is False


def test_softmax_of_an_empty_tensor_is_empty() -> None:
    assert tl.zeros(0).softmax(-1).shape == (0,) and tl.zeros(2, 0).log_softmax(dim=1).shape == (2, 0)


def test_subtracting_bool_tensors_is_refused() -> None:
    with pytest.raises(RuntimeError, match="bool"):
        tl.tensor([True]) - tl.tensor([1.0])
    with pytest.raises(RuntimeError, match="bool"):
        1.0 - tl.tensor([True])
