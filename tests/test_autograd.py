"""The autograd engine: accumulation, graph lifetime, hooks, grad modes, ``tl.grad``,
higher-order gradients, user Functions and the gradient checker itself."""
from __future__ import annotations

import gc
import re
import weakref
from typing import Any

import numpy as np
import pytest

import tinygrad_lm as tl
from tinygrad_lm import Tensor


def leaf(values: Any, device: str | None = None) -> Tensor:
    """A float64 leaf that requires grad, on ``device`` or the default device."""
    return Tensor(np.asarray(values, dtype=np.float64), device=device, requires_grad=True)


def test_gradients_accumulate_across_backwards(device: str) -> None:
    x = leaf([1.0, -2.0, 3.0], device)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, -2.0, 3.0]) + 3)


def test_a_tensor_used_twice_gets_the_sum_of_both_paths() -> None:
    x = leaf([2.0])
    y = x * 3
    (y * y + y).sum().backward()  # d/dx (9x^2 + 3x) = 18x + 3
    assert x.grad.tolist() == [39.0]


def test_second_backward_through_freed_graph_raises() -> None:
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward() -> None:
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_backward_through_a_100000_op_chain_has_no_recursion_error() -> None:
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    y.backward()
    assert x.grad.item() == 1.0


@pytest.mark.parametrize("retain_graph", [False, True])
def test_backward_frees_the_graph_unless_retained(retain_graph: bool) -> None:
    x = leaf([1.0, 2.0])
    hidden = x.tanh()
    ref = weakref.ref(hidden)
    loss = (hidden * 2).sum()
    del hidden
    loss.backward(retain_graph=retain_graph)
    gc.collect()
    # `loss` is still alive: only backward dropping the graph behind it can free `hidden`
    assert (ref() is not None) == retain_graph
    assert loss.grad_fn is not None and x.grad is not None


def test_retain_grad_keeps_the_gradient_of_a_non_leaf() -> None:
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    z = x * 4
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])
    assert z.grad is None and not y.is_leaf


def test_register_hook_sees_and_can_replace_the_gradient() -> None:
    x = leaf([1.0, 2.0])
    seen: list[np.ndarray] = []
    handle = x.register_hook(lambda g: seen.append(g.numpy()))
    y = x * 2
    y.register_hook(lambda g: g * 10)  # replaces dL/dy = 1 by 10
    y.sum().backward()
    np.testing.assert_allclose(seen[0], [20.0, 20.0])
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0])
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    assert len(seen) == 1 and x.grad.tolist() == [1.0, 1.0]


def test_no_grad_as_context_manager_and_decorator() -> None:
    x = leaf([1.0])
    assert tl.is_grad_enabled()
    with tl.no_grad():
        assert not tl.is_grad_enabled()
        y = x * 2
        with tl.enable_grad():
            assert tl.is_grad_enabled()
            z = x * 2
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @tl.no_grad()
    def infer(t: Tensor) -> Tensor:
        assert not tl.is_grad_enabled()
        return t * 2

    @tl.enable_grad()
    def train_step(t: Tensor) -> Tensor:
        assert tl.is_grad_enabled()
        return t * 2

    assert not infer(x).requires_grad and tl.is_grad_enabled()
    with tl.no_grad():
        assert train_step(x).requires_grad and not tl.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception() -> None:
    with pytest.raises(ValueError):
        with tl.no_grad():
            raise ValueError("boom")
    assert tl.is_grad_enabled()


def test_detach_is_leaf_and_grad_fn_name() -> None:
    x = leaf([1.0, 2.0])
    y = x * 2
    d = y.detach()
    assert x.is_leaf and not y.is_leaf and d.is_leaf
    assert not d.requires_grad and d.grad_fn is None and x.grad_fn is None
    assert isinstance(y.grad_fn.name, str) and "Mul" in y.grad_fn.name
    assert "Exp" in x.exp().grad_fn.name
    np.testing.assert_array_equal(d.numpy(), y.numpy())


def test_tl_grad_leaves_dot_grad_untouched_and_handles_non_leaves() -> None:
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0])
    h = x * w
    loss = (h * h).sum()
    gx, gh = tl.grad(loss, (x, h), retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    np.testing.assert_allclose(gx.numpy(), 2 * h.numpy() * w.numpy())
    assert x.grad is None and w.grad is None


def test_tl_grad_allow_unused() -> None:
    x, unused = leaf([1.0]), leaf([2.0])
    loss = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        tl.grad(loss, (x, unused), retain_graph=True)
    gx, gu = tl.grad(loss, (x, unused), allow_unused=True)
    assert gx.tolist() == [2.0] and gu is None


def test_tl_grad_with_grad_outputs() -> None:
    x = leaf([1.0, 2.0])
    (g,) = tl.grad(x * x, x, grad_outputs=Tensor(np.array([1.0, -1.0])))
    np.testing.assert_allclose(g.numpy(), [2.0, -4.0])


def test_hessian_vector_product_with_create_graph() -> None:
    # f(x) = sum(x^3) + x0 x1: H = diag(6x) + [[0, 1], [1, 0]]
    x = leaf([1.0, 2.0])
    v = Tensor(np.array([0.5, -1.0]))
    f = (x ** 3).sum() + x[0] * x[1]
    (g,) = tl.grad(f, x, create_graph=True)
    assert g.requires_grad
    (hv,) = tl.grad((g * v).sum(), x)
    hessian = np.diag(6 * np.array([1.0, 2.0])) + np.array([[0, 1], [1, 0]])
    np.testing.assert_allclose(hv.numpy(), hessian @ v.numpy())


def test_backward_with_create_graph_gives_differentiable_grad() -> None:
    x = leaf([1.5])
    (x.tanh() * x).sum().backward(create_graph=True)
    first = x.grad
    x.grad = None
    first.sum().backward()
    t = np.tanh(1.5)
    # d2/dx2 [x tanh x] = 2 (1 - t^2) - 2 x t (1 - t^2)
    np.testing.assert_allclose(x.grad.numpy(), [2 * (1 - t * t) - 2 * 1.5 * t * (1 - t * t)])


class Cube(tl.Function):
    """y = x^3, dy/dx = 3 x^2: a learner's op on raw arrays."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx: Any, dout: Any) -> Any:
        (x,) = ctx.saved_tensors
        return 3 * x * x * dout


class WrongCube(Cube):
    @staticmethod
    def backward(ctx: Any, dout: Any) -> Any:
        (x,) = ctx.saved_tensors
        return 2 * x * x * dout


class Gather(tl.Function):
    """y = x[idx] for an integer index tensor, which can have no gradient."""

    @staticmethod
    def forward(ctx: Any, x: Any, idx: Any) -> Any:
        assert ctx.needs_input_grad == (True, False)
        ctx.save_for_backward(idx)
        return x[idx]

    @staticmethod
    def backward(ctx: Any, dout: Any) -> Any:
        (idx,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        dx = np.zeros(ctx.parents[0].shape)
        np.add.at(dx, idx, dout)
        return dx, np.full(7, 99.0)  # a bogus, mis-shaped index gradient: it must be ignored


def test_user_function_passes_gradcheck() -> None:
    x = leaf(np.random.default_rng(0).standard_normal((2, 3)))
    assert tl.gradcheck(Cube.apply, (x,))
    y = Cube.apply(x)
    assert "Cube" in y.grad_fn.name


def test_second_derivative_through_user_function_raises_clearly() -> None:
    x = leaf([1.0, 2.0])
    (g,) = tl.grad(Cube.apply(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable only once"):
        g.sum().backward()


def test_needs_input_grad_is_false_for_an_integer_input() -> None:
    x = leaf([1.0, 2.0, 3.0], device="cpu")  # the backward above is written with NumPy
    idx = Tensor(np.array([2, 0, 2]), device="cpu")
    assert idx.dtype == np.int64
    Gather.apply(x, idx).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 2.0] and idx.grad is None


def test_a_builtin_op_never_differentiates_its_index_or_condition() -> None:
    x = leaf([1.0, 2.0, 3.0])
    y = x[Tensor([2, 2, 0])]
    assert y.grad_fn.needs_input_grad == (True,)  # the index is a parameter, not an input
    cond = Tensor([True, False, True])
    z = tl.where(cond, x, 0.0)
    assert z.grad_fn.needs_input_grad[0] is False
    (y.sum() + z.sum()).backward()
    assert x.grad.tolist() == [2.0, 0.0, 3.0] and cond.grad is None


def test_gradcheck_names_input_element_values_and_difference() -> None:
    a, x = leaf([1.0]), leaf([[1.0, 2.0], [3.0, -1.0]])
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(lambda a, x: (a * WrongCube.apply(x)), (a, x))
    message = str(info.value)
    assert "input 1" in message and "(1, 0)" in message  # input 0 is right; x = 3 is worst
    number = r"(-?[\d.]+(?:e[-+]?\d+)?)"
    found = [re.search(word + r"\D*?" + number, message) for word in
             ("backward", "numerical", "difference")]
    assert all(found), message
    analytic, numerical, difference = (float(m.group(1)) for m in found)
    # WrongCube's backward is 2x^2 where 3x^2 is right: the two values differ by that factor
    assert analytic == pytest.approx(2 / 3 * numerical, rel=1e-6)
    assert difference == pytest.approx(abs(analytic - numerical), rel=1e-2)
    assert tl.gradcheck(lambda a, x: (a * WrongCube.apply(x)), (a, x),
                        raise_exception=False) is False


def test_gradcheck_gives_the_true_jacobian_entries_of_the_worst_element() -> None:
    """The projected values depend on a random direction; the entries d out_k / d x_e do
    not: here d out[(1, 0)] / d x[(1, 0)] is 2 x^2 = 18 by the wrong backward, 3 x^2 = 27."""
    x = leaf([[1.0, 2.0], [3.0, -1.0]])
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(WrongCube.apply, (x,))
    message = str(info.value)
    assert "sum(v * output)" in message and "worst of 4" in message
    entry = re.search(r"output\[\(1, 0\)\]: ([\d.]+) vs ([\d.]+)", message)
    assert entry, message
    assert float(entry.group(1)) == pytest.approx(18) and float(entry.group(2)) == pytest.approx(27)
    assert "output[(0, 0)]" not in message.split("first:")[1]  # d out[0, 0] / d x[1, 0] = 0


def test_gradcheck_rejects_float32_inputs() -> None:
    with pytest.raises(tl.GradcheckError, match="float64"):
        tl.gradcheck(lambda x: x * 2, (Tensor([1.0], requires_grad=True),))


def test_gradgradcheck_catches_a_wrong_second_derivative() -> None:
    class BadSquare(tl.Function):
        """y = x^2 with a right backward but a wrong ``reference`` (the higher-order path)."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x * x

        @staticmethod
        def backward(ctx: Any, dout: Any) -> Any:
            return 2 * ctx.parents[0].data * dout

        @staticmethod
        def reference(x: Tensor) -> Tensor:
            return x * x.detach()  # gradient x, not 2x, and detach hides its own derivative

    x = leaf([0.7, 1.3])
    assert tl.gradcheck(BadSquare.apply, (x,))
    assert tl.gradgradcheck(BadSquare.apply, (x,), raise_exception=False) is False


def test_backward_on_a_non_scalar_needs_a_gradient() -> None:
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="one element"):
        (x * 2).backward()
    (x * 2).backward(gradient=Tensor(np.array([1.0, 0.5])))
    assert x.grad.tolist() == [2.0, 1.0]


def test_an_intermediate_that_backward_does_not_need_is_freed() -> None:
    """Add needs no input values: the graph keeps a placeholder, not ``y``'s array."""
    x = leaf(np.arange(1000.0))
    y = x * 2
    z = y + 1  # y is needed by nothing else
    array = weakref.ref(y.data)
    del y
    assert array() is None
    z.sum().backward()
    assert x.grad.tolist() == [2.0] * 1000


def test_an_intermediate_that_backward_needs_is_kept() -> None:
    x = leaf([1.0, 2.0])
    y = x + 1
    z = y * y  # Mul needs y's values
    array = weakref.ref(y.data)
    del y
    assert array() is not None
    z.sum().backward()
    assert x.grad.tolist() == [4.0, 6.0]  # d (x+1)^2 / dx = 2 (x + 1)


@pytest.fixture
def placeholders_for_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placeholders even for the tiny arrays of these tests (normally kept as they are)."""
    from tinygrad_lm import autograd

    monkeypatch.setattr(autograd, "PLACEHOLDER_MIN_BYTES", 0)


def test_small_inputs_are_kept_and_large_ones_replaced_by_placeholders() -> None:
    from tinygrad_lm import autograd

    for size, replaced in ((autograd.PLACEHOLDER_MIN_BYTES // 8 - 1, False),
                           (autograd.PLACEHOLDER_MIN_BYTES // 8, True)):
        y = leaf(np.ones(size)) * 2  # float64: 8 bytes an element
        parent = (y + 1).grad_fn.parents[0]
        assert (parent is not y) == replaced
        assert parent.grad_fn is y.grad_fn and parent.shape == y.shape


def test_hooks_and_retain_grad_set_after_the_tensor_was_used_still_apply(
        placeholders_for_all: None) -> None:
    x = leaf([1.0, 2.0])
    y = x * 3
    z = (y + 1).sum()  # the graph holds a placeholder for y from here on
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    z.backward()
    assert seen == [[1.0, 1.0]] and y.grad.tolist() == [1.0, 1.0]
    assert x.grad.tolist() == [3.0, 3.0]


def test_ops_that_keep_placeholders_have_correct_gradients_of_non_leaf_inputs(
        placeholders_for_all: None) -> None:
    """Each op with ``keeps_inputs = False`` gets a non-leaf input (so its node holds a
    placeholder without values); gradcheck then sees any backward that reads values."""
    from tinygrad_lm import ops

    used = set()

    def f(a: Tensor, b: Tensor) -> Tensor:
        x, y = a * 1.5, b * 0.5  # non-leaves
        written = x.clone()
        written[0, 1:] = y[1, :2]
        parts = [x + y, x - y, -x, x.reshape(3, 2).permute(1, 0).reshape(2, 3),
                 x[:, 1:].expand(2, 2, 2).sum(0), tl.cat([x, y], axis=1)[:, 2:5], written]
        out = sum((p * p).sum() for p in parts)
        stack = [out]
        while stack:  # which ops the graph holds
            t = stack.pop()
            if t._ctx is not None:
                used.add(type(t._ctx))
                stack += [p for p in t._ctx.parents if isinstance(p, Tensor)]
        return out

    a = leaf(np.random.default_rng(0).standard_normal((2, 3)))
    b = leaf(np.random.default_rng(1).standard_normal((2, 3)))
    assert tl.gradcheck(f, (a, b))
    placeholder_ops = {op for op in vars(ops).values()
                       if isinstance(op, type) and issubclass(op, tl.Function)
                       and not op.keeps_inputs}
    # ScatterAdd runs only in GetItem's backward; Cast and ToDevice: the next test
    assert placeholder_ops - {ops.ScatterAdd, ops.Cast, ops.ToDevice} <= used


def test_casts_of_non_leaf_inputs_keep_placeholders_and_exact_gradients(
        placeholders_for_all: None) -> None:
    a = leaf(np.array([1.0, 2.0]))
    y = (a * 1.5).astype(np.float32)
    assert y._ctx.parents[0].data.strides == (0,)  # a placeholder: no values kept
    (y * 2).sum().backward()
    assert a.grad.dtype == np.float64 and a.grad.tolist() == [3.0, 3.0]
