"""PyTorch habits that work here too: size() and numel(), dim=/keepdim=, to() and the dtype
methods, copies and shared memory, in-place ops with PyTorch's autograd rules, max(dim=),
the loss modules, and what optimizers accept. The values expected here are PyTorch's."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import Tensor, nn, optim


# ---------------------------------------------------------------- size, numel, conversions


def test_size_is_the_shape_and_numel_the_element_count() -> None:
    x = tl.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3 and tl.tensor(5.0).numel() == 1
    with pytest.raises(IndexError):
        x.size(3)


def test_one_element_tensors_convert_to_python_numbers() -> None:
    assert float(tl.tensor([2.5])) == 2.5 and int(tl.tensor(3.9)) == 3
    assert bool(tl.tensor([1])) is True
    with pytest.raises(ValueError):
        float(tl.zeros(2))


def test_tensor_copies_its_input_and_from_numpy_shares_it() -> None:
    a = np.zeros(3)
    for t in (Tensor(a), tl.tensor(a), Tensor(a[::2]), Tensor(Tensor(a))):
        t.fill_(1.0)
        t[0] = 2.0
    assert a.tolist() == [0.0, 0.0, 0.0]
    shared = tl.from_numpy(a)
    shared.fill_(1.0)
    shared[0] = 2.0
    assert a.tolist() == [2.0, 1.0, 1.0] and shared.dtype == np.float64
    with pytest.raises(TypeError):
        tl.from_numpy([1.0])


def test_optimizer_step_leaves_the_users_array_alone() -> None:
    weights = np.ones(2, np.float32)
    p = Tensor(weights, requires_grad=True)
    (p * p).sum().backward()
    optim.SGD([p], lr=0.5).step()
    assert weights.tolist() == [1.0, 1.0] and p.tolist() == [0.0, 0.0]


def test_a_parameter_made_from_a_tensor_shares_its_memory() -> None:
    t = tl.zeros(2)
    p = nn.Parameter(t)
    with tl.no_grad():
        p.add_(1.0)
    assert t.tolist() == [1.0, 1.0] and p.requires_grad


def test_to_takes_a_device_a_dtype_both_or_a_tensor() -> None:
    x = tl.tensor([1.5, -2.5], requires_grad=True)
    assert x.to("cpu") is x and x.to(tl.float32) is x
    assert x.to(tl.float64).dtype == tl.float64 and x.to("float16").dtype == tl.float16
    assert x.to("cpu", tl.float64).dtype == np.float64
    assert x.to(device="cpu", dtype=tl.int64).tolist() == [1, -2]
    assert x.to(tl.zeros(1, dtype=tl.float64)).dtype == np.float64
    x.to(tl.float64).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("method, dtype", [("float", np.float32), ("double", np.float64),
                                           ("half", np.float16), ("long", np.int64),
                                           ("int", np.int32), ("bool", np.bool_)])
def test_dtype_methods_and_names(method: str, dtype: Any) -> None:
    out = getattr(tl.tensor([0.0, 2.5, -1.5]), method)()
    assert out.dtype == dtype and out.dtype == getattr(tl, np.dtype(dtype).name)
    assert out.tolist() == np.array([0.0, 2.5, -1.5]).astype(dtype).tolist()


# ---------------------------------------------------------------- dim= and keepdim=


X = np.arange(24.0).reshape(2, 3, 4) % 7


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "logsumexp"])
def test_reductions_take_dim_and_keepdim(name: str) -> None:
    x = tl.tensor(X)
    expected = getattr(x, name)(axis=(0, 2), keepdims=True).numpy()
    np.testing.assert_allclose(getattr(x, name)(dim=(0, 2), keepdim=True).numpy(), expected)
    with pytest.raises(TypeError, match="both"):
        getattr(x, name)(axis=0, dim=1)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_and_argmin_take_dim_and_keepdim(name: str) -> None:
    x = tl.tensor(X)
    assert getattr(x, name)(dim=1, keepdim=True).tolist() == \
        getattr(X, name)(axis=1, keepdims=True).tolist()


def test_softmax_cat_stack_split_chunk_squeeze_unsqueeze_take_dim() -> None:
    x = tl.tensor(X)
    np.testing.assert_allclose(x.softmax(dim=1).numpy(), x.softmax(1).numpy())
    np.testing.assert_allclose(F.softmax(x, dim=0).numpy(), x.softmax(0).numpy())
    np.testing.assert_allclose(F.log_softmax(x, dim=0).numpy(), x.log_softmax(0).numpy())
    assert tl.cat([x, x], dim=2).shape == (2, 3, 8) and tl.stack([x, x], dim=1).shape == (2, 2, 3, 4)
    assert [p.shape for p in x.split(2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [p.shape for p in x.chunk(3, dim=1)] == [(2, 1, 4)] * 3
    assert x.unsqueeze(dim=1).shape == (2, 1, 3, 4)
    assert x.unsqueeze(dim=1).squeeze(dim=1).shape == (2, 3, 4)


def test_max_and_min_with_dim_return_values_and_indices() -> None:
    x = tl.tensor([[1.0, 5.0, 5.0], [3.0, 2.0, 3.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 3.0] and indices.tolist() == [1, 0]
    assert indices.dtype == np.int64
    low = x.min(dim=0, keepdim=True)
    assert low.values.tolist() == [[1.0, 2.0, 3.0]] and low.indices.tolist() == [[0, 1, 1]]
    assert x.max(axis=1).tolist() == [5.0, 3.0]  # with axis=, the values alone
    values.sum().backward()
    # PyTorch's max(dim) sends the gradient to the returned index, not split among ties
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


# ---------------------------------------------------------------- in place


def test_setitem_writes_in_place() -> None:
    x = tl.zeros(3, 4)
    x[0] = 1.0
    x[1, 1:3] = tl.tensor([5.0, 6.0])
    x[tl.tensor([2, 2]), tl.tensor([0, 3])] = 7
    x[x > 6] = -1.0
    assert x.tolist() == [[1, 1, 1, 1], [0, 5, 6, 0], [-1, 0, 0, -1]]
    n = tl.zeros(2, dtype=tl.int64)
    n[0] = 2.7  # assignment casts, as in PyTorch
    assert n.tolist() == [2, 0] and n.dtype == np.int64


@pytest.mark.parametrize("op, expected", [
    (lambda t: t.add_(tl.tensor([1.0, 2.0])), [2.0, 4.0]),
    (lambda t: t.add_(1.0, alpha=2), [3.0, 4.0]),
    (lambda t: t.sub_(0.5), [0.5, 1.5]),
    (lambda t: t.mul_(tl.tensor([3.0, -1.0])), [3.0, -2.0]),
    (lambda t: t.div_(4), [0.25, 0.5]),
    (lambda t: t.zero_(), [0.0, 0.0]),
    (lambda t: t.fill_(tl.tensor(7.0)), [7.0, 7.0]),
    (lambda t: t.copy_(np.array([9, 8])), [9.0, 8.0]),
    (lambda t: t.clamp_(1.5), [1.5, 2.0]),
    (lambda t: t.clamp_(max=1.5), [1.0, 1.5]),
])
def test_in_place_ops_write_into_the_same_memory(op: Callable[[Tensor], Tensor],
                                                 expected: list[float]) -> None:
    a = np.array([1.0, 2.0], np.float32)
    t = tl.from_numpy(a)
    assert op(t) is t
    assert a.tolist() == expected and t.dtype == np.float32


def test_in_place_ops_keep_shape_and_refuse_unsafe_casts() -> None:
    with pytest.raises(RuntimeError, match="shape"):
        tl.zeros(3).add_(tl.zeros(2, 3))
    with pytest.raises(RuntimeError, match="cast"):
        tl.zeros(3, dtype=tl.int64).add_(1.5)
    with pytest.raises(RuntimeError, match="cast"):
        tl.ones(3, dtype=tl.int64).div_(2)
    x = tl.zeros(2)
    x.add_(tl.ones(2, dtype=tl.float64))  # a wider float is cast down, as in PyTorch
    assert x.dtype == np.float32 and x.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="read-only"):
        tl.zeros(1).expand(3).add_(1.0)


def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad() -> None:
    w = tl.ones(2, requires_grad=True)
    for op in (lambda: w.add_(1.0), lambda: w.zero_(), lambda: w.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="in-place"):
            op()
    assert w.tolist() == [1.0, 1.0]
    with tl.no_grad():
        w.sub_(0.5)
        w[1] = 3.0
    assert w.tolist() == [0.5, 3.0] and w.is_leaf and w.requires_grad


@pytest.mark.parametrize("modify", [
    lambda x, y: y.add_(1.0),                     # exp saved its output y
    lambda x, y: y[0].fill_(0.0),                 # ... written through a view of y
    lambda x, y: x.mul_(2.0),                     # x * y saved x (not a leaf of the loss)
])
def test_modifying_a_saved_tensor_makes_backward_raise(modify: Callable[..., Any]) -> None:
    w = tl.tensor([0.5, 1.0], requires_grad=True)
    x = w * 1.0
    y = x.exp()
    loss = (x * y).sum()
    with tl.no_grad():
        modify(x, y)
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_an_unsaved_tensor_may_be_modified_and_backward_is_right() -> None:
    w = tl.tensor([0.5, 1.0], requires_grad=True)
    h = w * 2.0  # Mul keeps w and 2, not its output h
    out = h + 1.0  # Add keeps nothing
    with tl.no_grad():
        h.add_(5.0)
    out.sum().backward()
    assert w.grad.tolist() == [2.0, 2.0]


def test_in_place_ops_on_non_leaves_are_recorded() -> None:
    w = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = tl.tensor([4.0, 5.0], requires_grad=True)
    h = w * 2.0
    h.mul_(w)          # h = 2 w^2
    h[1:] = v * 3.0    # overwritten: no gradient from those elements of w
    h.add_(w)          # + w everywhere
    assert h.tolist() == [3.0, 14.0, 18.0] and not h.is_leaf
    h.sum().backward()
    assert w.grad.tolist() == [5.0, 1.0, 1.0]   # 4 w + 1, then 1 where overwritten
    assert v.grad.tolist() == [3.0, 3.0]


def test_assigning_a_tensor_that_requires_grad_makes_the_target_require_grad() -> None:
    w = tl.tensor([2.0], requires_grad=True)
    buffer = tl.zeros(3)
    buffer[1] = w * w
    buffer[2:] = w * 3.0
    assert buffer.requires_grad and not buffer.is_leaf
    (buffer * tl.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert w.grad.tolist() == [340.0]  # 10 * 2w + 100 * 3


def test_a_tensor_used_before_a_recorded_in_place_op_makes_that_use_raise() -> None:
    """``z`` was made from ``h`` before ``h.mul_``; the graph would now reach the node after
    the write through ``h`` (PyTorch keeps both; this engine refuses rather than be wrong)."""
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    h = w * 2.0
    z = h * 5.0
    h.mul_(3.0)
    with pytest.raises(RuntimeError, match="in-place"):
        z.sum().backward()
    h.sum().backward()
    assert w.grad.tolist() == [6.0, 6.0]


def test_an_in_place_op_that_needs_grad_on_a_view_is_refused() -> None:
    w = tl.tensor([2.0], requires_grad=True)
    base = tl.zeros(2, 3)
    with pytest.raises(RuntimeError, match="view"):
        base[0].add_(w)
    h = w.expand(3) * 1.0
    with pytest.raises(RuntimeError, match="view"):
        h.reshape(3, 1).mul_(2.0)


# ---------------------------------------------------------------- nn and optim


def test_loss_modules_match_their_functions() -> None:
    x, target = tl.tensor([[0.5, -1.0], [2.0, 0.0]]), tl.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert nn.MSELoss()(x, target).item() == pytest.approx(1.5625)
    assert nn.L1Loss(reduction="sum")(x, target).item() == pytest.approx(4.5)
    assert F.l1_loss(x, target).item() == pytest.approx(1.125)
    logits = tl.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    loss = nn.CrossEntropyLoss(ignore_index=2, label_smoothing=0.2)
    expected = F.cross_entropy(logits, [0, 1], ignore_index=2, label_smoothing=0.2)
    assert loss(logits, [0, 1]).item() == expected.item()
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(logits, [0, 1], label_smoothing=1.5)


def test_optimizers_accept_and_skip_parameters_that_do_not_require_grad() -> None:
    frozen, trained = tl.ones(2), tl.ones(2, requires_grad=True)
    for opt in (optim.SGD([frozen, trained], lr=0.5, momentum=0.9),
                optim.Adam([{"params": [frozen]}, {"params": [trained]}], lr=0.5)):
        (trained * frozen).sum().backward()
        opt.step()
        opt.zero_grad()
    assert frozen.tolist() == [1.0, 1.0] and trained.tolist() != [1.0, 1.0]
    with pytest.raises(TypeError, match="Tensor"):
        optim.SGD([np.ones(2)], lr=0.1)


def test_optimizers_and_schedulers_have_a_readable_repr() -> None:
    opt = optim.AdamW([tl.ones(1, requires_grad=True)], lr=0.01)
    assert repr(opt).splitlines() == ["AdamW (", "Parameter Group 0", "    betas: (0.9, 0.999)",
                                      "    eps: 1e-08", "    lr: 0.01",
                                      "    weight_decay: 0.01", ")"]
    schedule = optim.lr_scheduler.CosineWarmup(opt, warmup=2, max_iters=10, min_lr=0.001)
    assert repr(schedule) == ("CosineWarmup(warmup=2, max_iters=10, min_lr=0.001, "
                              "last_step=0, lr=[0.0033333333333333335])")
    assert "object at" not in repr(optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0))
