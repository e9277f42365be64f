"""Optimizers and schedules: PyTorch as the oracle, step by step, on a small float64 problem.

Both libraries start from the same parameters, compute their own gradients of the same
loss and take the same steps; after 20 steps the parameters must agree to 1e-5 relative.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest

import tinygrad_lm as tl
from tinygrad_lm import Tensor, nn, optim
from tinygrad_lm.optim.lr_scheduler import CosineWarmup, LambdaLR

torch = pytest.importorskip("torch")

STEPS = 20
RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 4))
Y = RNG.standard_normal((8, 3))
W0 = RNG.standard_normal((4, 3)) * 0.5
B0 = RNG.standard_normal(3) * 0.1


def _loss(lib: Any, w: Any, b: Any, x: Any, y: Any) -> Any:
    """A smooth, non-quadratic loss: mean((tanh(x w + b) - y)^2) + 0.1 * sum(w^4)."""
    h = lib.tanh(x @ w + b) if lib is torch else (x @ w + b).tanh()
    diff = h - y
    return (diff * diff).mean() + 0.1 * (w * w * w * w).sum()


class Pair:
    """The same parameters in both libraries and a step that computes the loss, runs
    backward and calls each optimizer's step."""

    def __init__(self) -> None:
        self.ours = [Tensor(W0.copy(), requires_grad=True), Tensor(B0.copy(), requires_grad=True)]
        self.theirs = [torch.tensor(W0.copy(), requires_grad=True),
                       torch.tensor(B0.copy(), requires_grad=True)]
        self.x, self.y = Tensor(X), Tensor(Y)
        self.tx, self.ty = torch.tensor(X), torch.tensor(Y)

    def step(self, ours: optim.Optimizer, theirs: Any) -> None:
        ours.zero_grad()
        _loss(tl, *self.ours, self.x, self.y).backward()
        ours.step()
        theirs.zero_grad()
        _loss(torch, *self.theirs, self.tx, self.ty).backward()
        theirs.step()

    def assert_close(self, rtol: float = 1e-5) -> None:
        for a, b in zip(self.ours, self.theirs):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=1e-8)

    def assert_moved(self) -> None:
        assert not np.allclose(self.ours[0].numpy(), W0, rtol=1e-3)


CONFIGS: list[tuple[str, Callable[..., Any], Callable[..., Any], dict[str, Any]]] = [
    ("sgd", optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    ("sgd_momentum", optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    ("sgd_dampening", optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("sgd_nesterov", optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("sgd_weight_decay", optim.SGD, torch.optim.SGD,
     dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("adam", optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    ("adam_weight_decay", optim.Adam, torch.optim.Adam,
     dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("adamw", optim.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    ("adamw_strong_decay", optim.AdamW, torch.optim.AdamW,
     dict(lr=0.02, betas=(0.85, 0.99), weight_decay=0.5)),
]


@pytest.mark.parametrize("ours, theirs, kwargs", [c[1:] for c in CONFIGS],
                         ids=[c[0] for c in CONFIGS])
def test_matches_torch_for_twenty_steps(ours: Any, theirs: Any, kwargs: dict) -> None:
    pair = Pair()
    opt, ref = ours(pair.ours, **kwargs), theirs(pair.theirs, **kwargs)
    for _ in range(STEPS):
        pair.step(opt, ref)
    pair.assert_close()
    pair.assert_moved()


@pytest.mark.parametrize("ours, theirs", [(optim.Adam, torch.optim.Adam),
                                          (optim.AdamW, torch.optim.AdamW)])
def test_adam_with_parameters_at_different_step_counts_matches_torch(ours: Any,
                                                                     theirs: Any) -> None:
    """The update runs over flat arrays per (step count, dtype, device): a parameter that
    skipped a step (no gradient) is one step behind in its bias correction."""
    pair = Pair()
    opt = ours(pair.ours, lr=0.01, weight_decay=0.1)
    ref = theirs(pair.theirs, lr=0.01, weight_decay=0.1)
    for i in range(6):
        opt.zero_grad()
        _loss(tl, *pair.ours, pair.x, pair.y).backward()
        ref.zero_grad()
        _loss(torch, *pair.theirs, pair.tx, pair.ty).backward()
        if i in (1, 2):  # the bias skips two steps
            pair.ours[1].grad, pair.theirs[1].grad = None, None
        opt.step()
        ref.step()
    pair.assert_close()
    assert [s["step"] for s in opt.state.values()] == [6, 4]


def test_adamw_default_weight_decay_is_pytorchs() -> None:
    p = Tensor([1.0], requires_grad=True)
    assert optim.AdamW([p]).param_groups[0]["weight_decay"] == \
        torch.optim.AdamW([torch.ones(1, requires_grad=True)]).param_groups[0]["weight_decay"]
    assert optim.Adam([p]).param_groups[0]["weight_decay"] == 0


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "adamw"])
def test_param_groups_with_their_own_lr(name: str) -> None:
    _, ours, theirs, kwargs = next(c for c in CONFIGS if c[0] == name)
    pair = Pair()
    opt = ours([{"params": [pair.ours[0]], "lr": kwargs["lr"] * 3}, {"params": [pair.ours[1]]}],
               **kwargs)
    ref = theirs([{"params": [pair.theirs[0]], "lr": kwargs["lr"] * 3},
                  {"params": [pair.theirs[1]]}], **kwargs)
    assert [g["lr"] for g in opt.param_groups] == [kwargs["lr"] * 3, kwargs["lr"]]
    for _ in range(STEPS):
        pair.step(opt, ref)
    pair.assert_close()


@pytest.mark.parametrize("name", ["sgd_nesterov", "adam_weight_decay", "adamw"])
def test_changing_lr_between_steps(name: str) -> None:
    _, ours, theirs, kwargs = next(c for c in CONFIGS if c[0] == name)
    pair = Pair()
    opt, ref = ours(pair.ours, **kwargs), theirs(pair.theirs, **kwargs)
    for i in range(STEPS):
        lr = kwargs["lr"] * (1 + math.sin(i))
        opt.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = lr
        pair.step(opt, ref)
    pair.assert_close()


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("name", ["sgd_momentum", "sgd_nesterov", "adam", "adamw_strong_decay"])
def test_state_dict_resume_continues_identically(name: str, through_file: bool,
                                                 tmp_path: Any) -> None:
    _, ours, _, kwargs = next(c for c in CONFIGS if c[0] == name)
    pair = Pair()
    straight = ours(pair.ours, **kwargs)
    resumed_params = [Tensor(W0.copy(), requires_grad=True), Tensor(B0.copy(), requires_grad=True)]
    first = ours(resumed_params, **kwargs)
    x, y = Tensor(X), Tensor(Y)

    def step(opt: optim.Optimizer, params: list[Tensor]) -> None:
        opt.zero_grad()
        _loss(tl, *params, x, y).backward()
        opt.step()

    for _ in range(STEPS // 2):
        step(straight, pair.ours)
        step(first, resumed_params)
    state = first.state_dict()
    snapshot = [p.numpy() for p in resumed_params]
    if through_file:
        tl.save({"optimizer": state, "params": snapshot}, tmp_path / "opt.ckpt")
        loaded = tl.load(tmp_path / "opt.ckpt")
        state, snapshot = loaded["optimizer"], loaded["params"]
    # a fresh optimizer on fresh parameters, as after a restart
    params = [Tensor(a, requires_grad=True) for a in snapshot]
    second = ours(params, lr=123.0)
    second.load_state_dict(state)
    assert second.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(STEPS - STEPS // 2):
        step(straight, pair.ours)
        step(second, params)
    for a, b in zip(params, pair.ours):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_state_dict_rejects_mismatched_groups() -> None:
    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    saved = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="groups"):
        optim.SGD([a], lr=0.1).load_state_dict(saved)


def test_step_skips_parameters_without_gradient_and_zero_grad() -> None:
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * a).sum().backward()
    opt.step()
    assert b.numpy().tolist() == [3.0] and not np.allclose(a.numpy(), [1.0, 2.0])
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.numpy().any() and b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_optimizer_updates_float32_in_place() -> None:
    model = nn.Linear(3, 2)
    weight = model.weight
    arrays = [p.data for p in model.parameters()]
    opt = optim.AdamW(model.parameters(), lr=0.1)
    model(tl.randn(4, 3)).sum().backward()
    opt.step()
    assert model.weight is weight
    assert all(p.data is a and p.dtype == np.float32 for p, a in zip(model.parameters(), arrays))


def test_optimizer_follows_module_to_device(device: str) -> None:
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.to(device)
    model(tl.randn(4, 3, device=device)).sum().backward()
    opt.step()
    assert model.weight.device == model.weight.grad.device


# ----------------------------------------------------------------------------- schedules


def _one_param_opt(lr: float = 1.0) -> optim.SGD:
    return optim.SGD([Tensor([0.0], requires_grad=True)], lr=lr)


def test_lambda_lr_values() -> None:
    opt = optim.SGD([{"params": [Tensor([0.0], requires_grad=True)], "lr": 0.5},
                     {"params": [Tensor([0.0], requires_grad=True)], "lr": 2.0}], lr=1.0)
    sched = LambdaLR(opt, lambda step: 0.9 ** step)
    for step in range(6):
        assert sched.get_last_lr() == pytest.approx([0.5 * 0.9 ** step, 2.0 * 0.9 ** step])
        sched.step()


def test_lambda_lr_matches_torch() -> None:
    fn = lambda step: 1.0 / (1 + step)  # noqa: E731
    opt = _one_param_opt(0.3)
    ref = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched, tsched = LambdaLR(opt, fn), torch.optim.lr_scheduler.LambdaLR(ref, fn)
    for _ in range(5):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"])
        ref.step()
        sched.step(), tsched.step()


def _cosine(step: int, base: float, warmup: int, max_iters: int, min_lr: float) -> float:
    """The schedule written straight from its definition."""
    if step < warmup:
        return base * (step + 1) / (warmup + 1)
    if step >= max_iters:
        return min_lr
    angle = math.pi * (step - warmup) / (max_iters - warmup)
    return min_lr + (base - min_lr) * (math.cos(angle) + 1) / 2


def test_cosine_warmup_values() -> None:
    base, warmup, max_iters, min_lr = 6e-4, 5, 30, 6e-5
    opt = _one_param_opt(base)
    sched = CosineWarmup(opt, warmup, max_iters, min_lr)
    seen = []
    for step in range(40):
        lr = opt.param_groups[0]["lr"]
        assert lr == pytest.approx(_cosine(step, base, warmup, max_iters, min_lr), rel=1e-12)
        seen.append(lr)
        sched.step()
    assert seen[warmup] == pytest.approx(base)
    assert max(seen) == pytest.approx(base) and min(seen) == pytest.approx(min_lr)
    assert all(a <= b for a, b in zip(seen[:warmup], seen[1:warmup + 1]))
    assert all(a >= b for a, b in zip(seen[warmup:], seen[warmup + 1:]))


def test_scheduler_state_dict_resumes() -> None:
    opt = _one_param_opt(1.0)
    sched = CosineWarmup(opt, 2, 10, 0.1)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    other_opt = _one_param_opt(1.0)
    other = CosineWarmup(other_opt, 2, 10, 0.1)
    other.load_state_dict(state)
    assert other_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    sched.step(), other.step()
    assert other.get_last_lr() == sched.get_last_lr()


# ----------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_grad_norm_matches_torch(max_norm: float) -> None:
    pair = Pair()
    _loss(tl, *pair.ours, pair.x, pair.y).backward()
    _loss(torch, *pair.theirs, pair.tx, pair.ty).backward()
    norm = nn.utils.clip_grad_norm_(pair.ours, max_norm)
    ref = torch.nn.utils.clip_grad_norm_(pair.theirs, max_norm)
    assert isinstance(norm, Tensor) and norm.shape == () and norm.dtype == np.float64
    assert norm.item() == pytest.approx(ref.item(), rel=1e-12)
    for a, b in zip(pair.ours, pair.theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)
    after = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in pair.ours))
    assert after <= max_norm * (1 + 1e-6)


def test_clip_grad_norm_does_not_touch_shared_gradient_arrays() -> None:
    p = Tensor([3.0, 4.0], requires_grad=True)
    (p * 1.0).sum().backward()
    p.grad = Tensor([3.0, 4.0])
    held = p.grad
    assert nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    np.testing.assert_array_equal(held.numpy(), [3.0, 4.0])
    assert nn.utils.clip_grad_norm_([Tensor([1.0], requires_grad=True)], 1.0).item() == 0.0


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=-0.1),
    lambda p: optim.SGD(p, lr=0.1, momentum=-0.5),
    lambda p: optim.SGD(p, lr=0.1, weight_decay=-1),
    lambda p: optim.SGD(p, lr=0.1, nesterov=True),
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda p: optim.Adam(p, lr=-1e-3),
    lambda p: optim.Adam(p, betas=(1.0, 0.999)),
    lambda p: optim.Adam(p, betas=(0.9, -0.1)),
    lambda p: optim.Adam(p, eps=-1e-8),
    lambda p: optim.AdamW(p, weight_decay=-0.1),
    lambda p: optim.SGD([], lr=0.1),
    lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1),
], ids=["sgd_lr", "momentum", "sgd_wd", "nesterov_no_momentum", "nesterov_dampening",
        "adam_lr", "beta1", "beta2", "eps", "adamw_wd", "empty", "duplicate"])
def test_bad_hyperparameters_raise(make: Callable[[list[Tensor]], Any]) -> None:
    with pytest.raises(ValueError):
        make([Tensor([1.0], requires_grad=True)])


def test_cosine_warmup_rejects_negative_lengths() -> None:
    with pytest.raises(ValueError, match="CosineWarmup"):
        CosineWarmup(_one_param_opt(), -1, 10, 0.0)
