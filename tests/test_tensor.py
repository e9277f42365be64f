"""Tensor construction, dtype rules, attributes, conversions, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lm as tl
from tinygrad_lm import Tensor


@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1, 2]], np.int64), (3, np.int64),
    (True, np.bool_), ([True, False], np.bool_),
    (np.zeros(2, np.float64), np.float64), (np.zeros(2, np.float16), np.float16),
    (np.zeros(2, np.int32), np.int32), (np.float64(2.0), np.float64),
])
def test_dtype_of_new_tensors(data: object, dtype: type, device: str) -> None:
    assert Tensor(data, device=device).dtype == np.dtype(dtype)


def test_explicit_dtype_wins(device: str) -> None:
    assert Tensor([1, 2], dtype=np.float64, device=device).dtype == np.float64
    assert Tensor(1.0, dtype="float16", device=device).dtype == np.float16


@pytest.mark.parametrize("name", ["zeros", "ones", "randn", "rand"])
def test_factories_take_varargs_or_a_tuple(name: str, device: str) -> None:
    factory = getattr(tl, name)
    for t in (factory(2, 3, device=device), factory((2, 3), device=device)):
        assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == device
    t = factory(2, dtype=np.float64, requires_grad=True, device=device)
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf


def test_factory_values(device: str) -> None:
    assert tl.zeros(2, device=device).tolist() == [0.0, 0.0]
    assert tl.ones(1, 2, device=device).tolist() == [[1.0, 1.0]]
    full = tl.full((2,), 7.5, device=device)
    assert full.tolist() == [7.5, 7.5] and full.dtype == np.float32
    assert tl.full((1,), 3).dtype == np.int64
    assert tl.arange(4, device=device).tolist() == [0, 1, 2, 3]
    assert tl.arange(4).dtype == np.int64 and tl.arange(0.0, 1.0, 0.5).dtype == np.float32
    assert tl.arange(1, 7, 2).tolist() == [1, 3, 5]
    x = Tensor(np.ones((2, 2), np.float64), device=device)
    assert tl.zeros_like(x).dtype == np.float64 and tl.ones_like(x).tolist() == [[1, 1], [1, 1]]
    u = tl.rand(1000, device=device).numpy()
    assert u.min() >= 0 and u.max() < 1
    assert Tensor.zeros(3).shape == (3,) and Tensor.ones_like(x).shape == (2, 2)


def test_attributes(device: str) -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3), device=device, requires_grad=True)
    assert x.shape == (2, 3) and isinstance(x.shape, tuple)
    assert x.ndim == 2 and x.numel() == 6 and x.size() == (2, 3) and x.device == device and x.dtype == np.float64
    assert x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.T.shape == (3, 2) and len(x) == 2
    assert type(x.data).__name__ == "ndarray"


def test_conversions(device: str) -> None:
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    host = x.numpy()
    assert isinstance(host, np.ndarray) and host.dtype == np.float32
    host[0, 0] = 99.0  # a copy: the tensor does not change
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert Tensor([2.5]).item() == 2.5 and isinstance(Tensor([2.5]).item(), float)
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    assert x.to("cpu").device == "cpu" and x.cpu().device == "cpu"
    assert x.astype(np.int64).dtype == np.int64 and x.astype(np.int64).tolist() == [[1, 2], [3, 4]]
    assert not x.astype(np.int64).requires_grad
    with pytest.raises(TypeError):
        len(Tensor(1.0))


def test_astype_is_differentiable_between_floats() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and y.requires_grad
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [3.0, 3.0]


def test_float32_with_python_float_stays_float32() -> None:
    x = Tensor([1.0, 2.0])
    for y in (x + 1.5, 2.5 * x, x / 3.0, 1.0 - x, x ** 2.0, 2.0 ** x, x.maximum(0.5), x * 2,
              x.minimum(0.5), x.masked_fill(Tensor([True, False]), 2.5), tl.where(x > 1, x, 0.5)):
        assert y.dtype == np.float32
    assert (Tensor([1, 2]) * 1.5).dtype == np.float32
    assert (Tensor([1, 2]) + 1).dtype == np.int64
    assert (Tensor([1, 2]) / 2).dtype == np.float32
    assert (Tensor([True]) + 1).dtype == np.int64 and (Tensor([True]) * 0.5).dtype == np.float32


FLOAT64_SCALAR = np.sqrt(np.float64(2.0))  # what `x * np.sqrt(2.0)` multiplies by


@pytest.mark.parametrize("other, expected", [
    (FLOAT64_SCALAR, np.float32),  # a NumPy float64 scalar acts like a Python float
    (np.float32(2.0), np.float32),
    (np.array(2.0), np.float32),  # (arrays become tensors) a 0-d one of the same kind
    (np.ones(2, np.float64), np.float64),  # does not widen; one with dims does
    (np.array(2), np.float32),
    (np.ones(2, np.int64), np.float32),
    (np.int64(3), np.float32),
], ids=["np.float64", "np.float32", "0-d float64", "1-d float64", "0-d int64", "1-d int64",
        "np.int64"])
def test_dtype_promotion_never_silently_widens_float32(other: object, expected: type) -> None:
    if isinstance(other, np.ndarray):
        other = Tensor(other)
    for x in (Tensor([1.0, 2.0]), Tensor(1.0)):  # with dims and 0-d
        if x.ndim == 0 and isinstance(other, Tensor) and other.dtype == np.float64:
            continue  # 0-d float32 with a float64 tensor is float64, as two 1-d tensors are
        for y in (x + other, other * x, x / other, x - other, x.maximum(other)):
            assert y.dtype == expected, (x.shape, other)


def test_promotion_of_integer_tensors_and_explicit_casts() -> None:
    i32 = Tensor(np.array([1, 2], np.int32))
    assert (i32 + Tensor(np.int64(1))).dtype == np.int32  # 0-d of the same kind
    assert (i32 + Tensor(np.array([1, 2]))).dtype == np.int64
    assert (i32 + np.float64(0.5)).dtype == np.float32
    x = Tensor([1.0, 2.0])
    assert (x.astype(np.float64) * x).dtype == np.float64  # asked for, so float64 it is
    g = Tensor(np.float64(3.0), requires_grad=True)
    (x * g).sum().backward()  # g is cast to float32 for the product; its gradient is not
    assert g.grad.dtype == np.float64 and g.grad.item() == 3.0


def test_matmul_shape_error_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        tl.ones(2, 3) @ tl.ones(4, 5)


@pytest.mark.parametrize("name, fn", [
    ("Add", lambda a, b: a + b), ("Mul", lambda a, b: a * b), ("Div", lambda a, b: a / b),
    ("Maximum", lambda a, b: a.maximum(b)), ("lt", lambda a, b: a < b),
    ("eq", lambda a, b: a == b), ("Where", lambda a, b: tl.where(a > 0, a, b)),
])
def test_non_broadcasting_shapes_name_the_op_and_shapes(name: str, fn: object) -> None:
    with pytest.raises(ValueError) as info:
        fn(tl.ones(2, 3), tl.ones(4))  # type: ignore[operator]
    message = str(info.value)
    assert name in message and "(2, 3)" in message and "(4,)" in message, message


@pytest.mark.parametrize("fn", [
    lambda x: x.squeeze(3), lambda x: x.unsqueeze(4), lambda x: x.unsqueeze(-5),
    lambda x: x.permute(0, 1, 5), lambda x: x.flatten(0, 3), lambda x: x.mean(axis=-4),
    lambda x: x.sum(axis=3), lambda x: x.max(axis=(0, 3)), lambda x: x.var(axis=3),
    lambda x: x.softmax(axis=3), lambda x: x.transpose(0, 3),
], ids=["squeeze", "unsqueeze", "unsqueeze_negative", "permute", "flatten", "mean", "sum",
        "max", "var", "softmax", "transpose"])
def test_an_axis_out_of_range_is_an_error_not_a_wrap(fn: object) -> None:
    with pytest.raises(IndexError, match="axis"):  # NumPy's AxisError is an IndexError too
        fn(tl.ones(2, 1, 3))  # type: ignore[operator]


def test_negative_axes_count_from_the_end() -> None:
    x = tl.ones(2, 1, 3)
    assert x.squeeze(-2).shape == (2, 3) and x.unsqueeze(-1).shape == (2, 1, 3, 1)
    assert x.permute(-1, 0, 1).shape == (3, 2, 1) and x.flatten(-2, -1).shape == (2, 3)
    assert Tensor(2.0).sum(axis=0).shape == () and Tensor(2.0).unsqueeze(-1).shape == (1,)


def test_backward_of_a_non_scalar_without_gradient_raises() -> None:
    y = tl.ones(2, 2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\(2, 2\)"):
        y.backward()


def test_integer_tensors_cannot_require_grad() -> None:
    with pytest.raises(RuntimeError, match="int64"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="bool"):
        Tensor([True]).requires_grad_()
    with pytest.raises(RuntimeError, match="int64"):
        tl.arange(3, requires_grad=True)


def test_mixing_devices_names_the_op_and_both_devices(device: str) -> None:
    if device == "cpu":
        pytest.skip("needs a second device")
    with pytest.raises(RuntimeError) as info:
        tl.ones(2, device=device) + tl.ones(2, device="cpu")
    message = str(info.value)
    assert "Add" in message and device in message and "cpu" in message
    with pytest.raises(RuntimeError, match="cpu"):
        tl.cat([tl.ones(2, device=device), tl.ones(2, device="cpu")])
    with pytest.raises(RuntimeError, match="cpu"):
        tl.ones(2, device=device) < tl.ones(2, device="cpu")


def test_bad_data_raises_a_clear_error() -> None:
    with pytest.raises(TypeError, match="Tensor"):
        Tensor(["a", "b"])


def test_manual_seed_makes_every_random_source_reproducible(device: str) -> None:
    tl.manual_seed(123)
    a = (tl.randn(3, 4, device=device).numpy(), tl.rand(5, device=device).numpy())
    tl.manual_seed(123)
    b = (tl.randn(3, 4, device=device).numpy(), tl.rand(5, device=device).numpy())
    tl.manual_seed(124)
    c = tl.randn(3, 4, device=device).numpy()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c)


def test_ndarray_on_the_left_defers_to_tensor() -> None:
    y = np.ones(2, np.float32) + Tensor([1.0, 2.0])
    assert isinstance(y, Tensor) and y.tolist() == [2.0, 3.0]


def test_comparison_keeps_identity_hash() -> None:
    x = Tensor([1.0])
    assert {x: 1}[x] == 1 and x in {x}


@pytest.mark.parametrize("method", ["exp", "log", "sqrt", "tanh", "sigmoid", "erf"])
def test_float_functions_of_integer_tensors_are_float32(method):
    out = getattr(tl.Tensor([1, 2]), method)()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), getattr(tl.Tensor([1.0, 2.0]), method)().numpy())
