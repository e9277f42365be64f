"""nn.Module bookkeeping, the layers and the functional ops, checked against NumPy.

PyTorch parity of the same layers lives in test_nn_torch.py; the fused kernels' agreement
with their compositions in test_fused.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import Tensor, nn


class Tied(nn.Module):
    """Two modules that share one weight, as a GPT's lm_head shares the token embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.body = nn.Linear(3, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, idx: Tensor) -> Tensor:
        return self.head(self.body(self.emb(idx)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.scale = nn.Parameter(tl.ones(8))
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.ReLU()),
                                     nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))])
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 2), "b": nn.LayerNorm(8, bias=False)})

    def forward(self, x: Tensor) -> Tensor:
        x = self.first(x) * self.scale
        for block in self.blocks:
            x = block(x)
        return self.heads["a"](self.heads["b"](x))


# ----------------------------------------------------------------------------- Module


def test_named_parameters_follow_definition_order() -> None:
    # as in PyTorch: a module's own parameters first, then each child's, in definition order
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["scale", "first.weight", "first.bias",
                     "blocks.0.0.weight", "blocks.0.0.bias",
                     "blocks.1.0.weight", "blocks.1.0.bias",
                     "heads.a.weight", "heads.a.bias", "heads.b.weight"]


def test_parameters_and_num_parameters_agree() -> None:
    net = Net()
    params = list(net.parameters())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)
    assert net.num_parameters() == sum(p.numel() for p in params) == \
        (4 * 8 + 8) + 8 + 2 * (8 * 8 + 8) + (8 * 2 + 2) + 8


def test_tied_parameter_counted_once_but_saved_under_both_names() -> None:
    model = Tied()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["emb.weight", "body.weight", "body.bias"]
    assert model.num_parameters() == 5 * 3 + 3 * 3 + 3
    state = model.state_dict()
    assert list(state) == ["emb.weight", "body.weight", "body.bias", "head.weight"]
    np.testing.assert_array_equal(state["emb.weight"], state["head.weight"])
    # loading puts one array into the shared parameter: the two names stay one tensor
    new = {k: np.full(v.shape, 2.0, np.float32) for k, v in state.items()}
    model.load_state_dict(new)
    assert model.head.weight is model.emb.weight
    np.testing.assert_array_equal(model.head.weight.numpy(), 2.0)


def test_tied_gradient_accumulates_from_both_uses() -> None:
    model = Tied()
    model(Tensor([[0, 1, 4]])).sum().backward()
    weight = model.emb.weight
    h = model.body(model.emb(Tensor([[0, 1, 4]]))).detach().numpy().reshape(-1, 3)
    expected = np.zeros((5, 3), np.float32)
    expected += h.sum(0)  # d/dW of sum(h W^T) is sum over rows of h, for every output row
    back = np.ones((3, 5), np.float32) @ weight.numpy() @ model.body.weight.numpy()
    for i, row in zip([0, 1, 4], back):
        expected[i] += row
    np.testing.assert_allclose(weight.grad.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_children_and_modules() -> None:
    net = Net()
    assert [type(c).__name__ for c in net.children()] == ["Linear", "ModuleList", "ModuleDict"]
    assert [n for n, _ in net.named_children()] == ["first", "blocks", "heads"]
    kinds = [type(m).__name__ for m in net.modules()]
    assert kinds[0] == "Net" and kinds.count("Linear") == 4 and kinds.count("Sequential") == 2
    assert len(kinds) == 1 + 1 + 1 + 2 * 3 + 1 + 2
    # a module reachable twice is listed once
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, shared)
    assert len(list(seq.modules())) == 2 and seq.num_parameters() == 6


def test_train_and_eval_propagate() -> None:
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.blocks[1][1].training


def test_zero_grad() -> None:
    net = Net()
    net(tl.randn(3, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_device_keeps_parameter_identity(device: str) -> None:
    net = Net()
    before = [id(p) for p in net.parameters()]
    values = [p.numpy() for p in net.parameters()]
    assert net.to(device) is net
    assert [id(p) for p in net.parameters()] == before
    assert all(p.device == tl.Tensor(0.0, device=device).device for p in net.parameters())
    for p, v in zip(net.parameters(), values):
        np.testing.assert_array_equal(p.numpy(), v)
    net.eval()
    out = net(tl.randn(2, 4, device=device))
    assert out.shape == (2, 2) and out.device == net.first.weight.device


def test_state_dict_round_trip_into_a_fresh_model() -> None:
    a, b = Net(), Net()
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert list(state) == [n for n, _ in a.named_parameters()]
    b.load_state_dict(state)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    # loaded values are copies: changing the source afterwards does not reach the model
    state["first.bias"][...] = 123.0
    assert not (b.first.bias.numpy() == 123.0).any()
    x = tl.randn(3, 4)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_strict_lists_every_problem() -> None:
    net = Net()
    state = net.state_dict()
    del state["scale"], state["heads.a.bias"]
    state["extra.weight"] = np.zeros(3, np.float32)
    state["first.weight"] = np.zeros((5, 4), np.float32)
    with pytest.raises(KeyError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    for needle in ("missing", "scale", "heads.a.bias", "unexpected", "extra.weight",
                   "first.weight", "(5, 4)", "(8, 4)"):
        assert needle in message, needle


def test_load_state_dict_non_strict() -> None:
    net = Net()
    state = {"first.bias": np.arange(8, dtype=np.float32), "nope": np.zeros(2, np.float32)}
    kept = net.first.weight.numpy()
    net.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(net.first.bias.numpy(), np.arange(8))
    np.testing.assert_array_equal(net.first.weight.numpy(), kept)
    # a shape mismatch is an error even when not strict
    with pytest.raises(KeyError, match="first.bias"):
        net.load_state_dict({"first.bias": np.zeros(3, np.float32)}, strict=False)


def test_load_state_dict_keeps_parameter_dtype() -> None:
    net = nn.Linear(2, 3)
    net.load_state_dict({k: v.astype(np.float64) for k, v in net.state_dict().items()})
    assert net.weight.dtype == np.float32 and net.bias.dtype == np.float32


def test_unregistered_assignment_and_reassignment() -> None:
    net = nn.Linear(2, 2)
    net.note = Tensor([1.0])  # a plain tensor is not a parameter
    assert [n for n, _ in net.named_parameters()] == ["weight", "bias"]
    net.bias = None  # replacing a parameter unregisters it
    assert [n for n, _ in net.named_parameters()] == ["weight"]


def test_module_without_super_init_fails_clearly() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(tl.ones(2))

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_sequential_modulelist_moduledict() -> None:
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh) and isinstance(seq[-1], nn.Linear)
    x = tl.randn(5, 3)
    expected = seq[2](seq[1](seq[0](x)))
    np.testing.assert_allclose(seq(x).numpy(), expected.numpy(), rtol=1e-6)
    ml = nn.ModuleList()
    ml.append(nn.Linear(2, 2)).append(nn.ReLU())
    assert len(ml) == 2 and [type(m) for m in ml] == [nn.Linear, nn.ReLU]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    md = nn.ModuleDict({"x": nn.Linear(2, 2)})
    md["y"] = nn.Linear(2, 1)
    assert "y" in md and list(md) == ["x", "y"] and len(md) == 2
    assert list(md.keys()) == ["x", "y"] and md.x is md["x"]
    assert [n for n, _ in md.named_parameters()] == ["x.weight", "x.bias", "y.weight", "y.bias"]


# ----------------------------------------------------------------------------- layers


def test_linear_shapes_and_value() -> None:
    layer = nn.Linear(6, 3)
    assert layer.weight.shape == (3, 6) and layer.bias.shape == (3,)
    x = tl.randn(2, 4, 6)
    out = layer(x)
    assert out.shape == (2, 4, 3) and out.dtype == np.float32
    expected = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert nn.Linear(6, 3, bias=False).bias is None
    with pytest.raises(ValueError, match="linear"):
        layer(tl.randn(2, 5))


def test_linear_init_is_uniform_within_pytorch_bound() -> None:
    fan_in = 64
    layer = nn.Linear(fan_in, 512)
    bound = 1 / math.sqrt(fan_in)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    # U(-b, b): mean 0, std b / sqrt(3); 32768 samples pin both down tightly
    assert abs(w.mean()) < 0.02 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(w).max() > 0.99 * bound


def test_init_is_reproducible_under_manual_seed() -> None:
    tl.manual_seed(7)
    a = nn.Linear(4, 4).weight.numpy()
    tl.manual_seed(7)
    b = nn.Linear(4, 4).weight.numpy()
    c = nn.Linear(4, 4).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_embedding_shapes_init_and_gradient() -> None:
    emb = nn.Embedding(50, 400)
    w = emb.weight.numpy()
    assert w.shape == (50, 400) and abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    idx = Tensor([[1, 3, 3], [0, 49, 1]])
    out = emb(idx)
    assert out.shape == (2, 3, 400)
    np.testing.assert_array_equal(out.numpy(), w[idx.numpy()])
    out.sum().backward()
    counts = np.bincount(idx.numpy().ravel(), minlength=50).astype(np.float32)
    np.testing.assert_array_equal(emb.weight.grad.numpy(), np.repeat(counts[:, None], 400, 1))


@pytest.mark.parametrize("bad", [[50], [-1], [[0, 51]]])
def test_embedding_index_out_of_range(bad: list) -> None:
    emb = nn.Embedding(50, 2)
    with pytest.raises(IndexError, match="embedding"):
        emb(Tensor(bad))


def test_embedding_rejects_float_indices() -> None:
    with pytest.raises(TypeError, match="integer"):
        F.embedding(Tensor([0.0, 1.0]), tl.randn(3, 2))


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_module(bias: bool) -> None:
    ln = nn.LayerNorm(8, bias=bias)
    assert (ln.bias is None) != bias
    assert [n for n, _ in ln.named_parameters()] == (["weight", "bias"] if bias else ["weight"])
    ln.weight.data[...] = np.linspace(0.5, 2.0, 8, dtype=np.float32)
    if bias:
        ln.bias.data[...] = np.linspace(-1, 1, 8, dtype=np.float32)
    x = tl.randn(3, 5, 8) * 3 + 1
    xs = x.numpy().astype(np.float64)
    expected = (xs - xs.mean(-1, keepdims=True)) / np.sqrt(xs.var(-1, keepdims=True) + 1e-5)
    expected = expected * ln.weight.numpy() + (ln.bias.numpy() if bias else 0)
    out = ln(x)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_layer_norm_over_several_trailing_dims() -> None:
    x = tl.randn(2, 3, 4)
    w, b = tl.randn(3, 4), tl.randn(3, 4)
    xs = x.numpy().reshape(2, 12)
    norm = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-5)
    expected = norm.reshape(2, 3, 4) * w.numpy() + b.numpy()
    np.testing.assert_allclose(F.layer_norm(x, (3, 4), w, b).numpy(), expected, rtol=1e-4,
                               atol=1e-5)
    with pytest.raises(ValueError, match="layer_norm"):
        F.layer_norm(x, (5,))


def test_layer_norm_of_an_empty_batch_has_zero_parameter_gradients() -> None:
    norm = nn.LayerNorm(5)
    x = Tensor(np.zeros((0, 5), np.float32), requires_grad=True)
    norm(x).sum().backward()
    assert x.grad.shape == (0, 5)
    assert norm.weight.grad.tolist() == [0.0] * 5 and norm.bias.grad.tolist() == [0.0] * 5


def test_dropout_statistics_scaling_and_eval_identity() -> None:
    drop = nn.Dropout(0.25)
    x = tl.ones(200, 200)
    out = drop(x).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    drop.eval()
    assert np.array_equal(drop(x).numpy(), x.numpy())
    assert F.dropout(x, 0.5, training=False) is x
    assert not F.dropout(x, 1.0).numpy().any()
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.5)


def test_dropout_reproducible_under_manual_seed_and_gradient_uses_same_mask() -> None:
    x = tl.randn(10, 10, requires_grad=True)
    tl.manual_seed(3)
    a = F.dropout(x, 0.5)
    tl.manual_seed(3)
    b = F.dropout(x, 0.5)
    c = F.dropout(x, 0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(b.numpy(), c.numpy())
    a.sum().backward()
    mask = a.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask * 2.0)


def test_activations() -> None:
    x = Tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    xs = x.numpy().astype(np.float64)
    np.testing.assert_array_equal(nn.ReLU()(x).numpy(), np.maximum(xs, 0))
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(xs), rtol=1e-6)
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(nn.GELU()(x).numpy(), 0.5 * xs * (1 + erf(xs / math.sqrt(2))),
                               rtol=1e-5, atol=1e-7)
    tanh_form = 0.5 * xs * (1 + np.tanh(math.sqrt(2 / math.pi) * (xs + 0.044715 * xs ** 3)))
    np.testing.assert_allclose(nn.GELU("tanh")(x).numpy(), tanh_form, rtol=1e-5, atol=1e-7)
    for layer in (nn.ReLU(), nn.Tanh(), nn.GELU()):
        assert layer(tl.randn(2, 3, 4)).shape == (2, 3, 4)
        assert list(layer.parameters()) == []


def test_mlp_eval_output_matches_numpy() -> None:
    net = Net().eval()
    x = tl.randn(3, 4)
    p = {n: v.astype(np.float64) for n, v in net.state_dict().items()}
    h = (x.numpy() @ p["first.weight"].T + p["first.bias"]) * p["scale"]
    h = np.maximum(h @ p["blocks.0.0.weight"].T + p["blocks.0.0.bias"], 0)
    h = h @ p["blocks.1.0.weight"].T + p["blocks.1.0.bias"]
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    h = h * p["heads.b.weight"]
    expected = h @ p["heads.a.weight"].T + p["heads.a.bias"]
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- losses


def _xent_numpy(logits: np.ndarray, targets: np.ndarray, ignore: int = -100) -> np.ndarray:
    """Per-target cross-entropy for (N, C) logits; 0 where ignored."""
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    valid = targets != ignore
    picked = logp[np.arange(len(z)), np.where(valid, targets, 0)]
    return -picked * valid


def test_cross_entropy_reductions_and_gradient() -> None:
    logits = tl.randn(6, 5, requires_grad=True)
    targets = np.array([0, 4, 2, 2, 1, 3])
    losses = _xent_numpy(logits.numpy(), targets)
    none = F.cross_entropy(logits, Tensor(targets), reduction="none")
    assert none.shape == (6,)
    np.testing.assert_allclose(none.numpy(), losses, rtol=1e-5)
    np.testing.assert_allclose(F.cross_entropy(logits, targets, reduction="sum").item(),
                               losses.sum(), rtol=1e-5)
    mean = F.cross_entropy(logits, targets)
    np.testing.assert_allclose(mean.item(), losses.mean(), rtol=1e-5)
    mean.backward()
    z = logits.numpy().astype(np.float64)
    soft = np.exp(z - z.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    soft[np.arange(6), targets] -= 1
    np.testing.assert_allclose(logits.grad.numpy(), soft / 6, rtol=1e-4, atol=1e-6)


def test_cross_entropy_ignore_index_averages_over_kept_targets() -> None:
    logits = tl.randn(5, 4, requires_grad=True)
    targets = np.array([1, -1, 3, -1, 0])
    losses = _xent_numpy(logits.numpy(), targets, ignore=-1)
    loss = F.cross_entropy(logits, targets, ignore_index=-1)
    np.testing.assert_allclose(loss.item(), losses.sum() / 3, rtol=1e-5)
    loss.backward()
    assert not logits.grad.numpy()[[1, 3]].any()
    assert F.cross_entropy(logits, [-1] * 5, ignore_index=-1).item() != \
        F.cross_entropy(logits, [-1] * 5, ignore_index=-1).item()  # nan: nothing to average


def test_cross_entropy_with_spatial_dims() -> None:
    logits = tl.randn(2, 4, 3, 5)  # (N, C, d1, d2)
    targets = np.random.default_rng(0).integers(0, 4, size=(2, 3, 5))
    targets[0, 1, 2] = -100
    flat_logits = logits.numpy().transpose(0, 2, 3, 1).reshape(-1, 4)
    losses = _xent_numpy(flat_logits, targets.reshape(-1)).reshape(2, 3, 5)
    none = F.cross_entropy(logits, targets, reduction="none")
    assert none.shape == (2, 3, 5)
    np.testing.assert_allclose(none.numpy(), losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(F.cross_entropy(logits, targets).item(), losses.sum() / 29,
                               rtol=1e-5)


def test_cross_entropy_errors() -> None:
    logits = tl.randn(3, 4)
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(logits, [0, 4, 1])
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(logits, [0, -2, 1])
    with pytest.raises(ValueError, match=r"\(3,\)"):
        F.cross_entropy(logits, [0, 1])
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(logits, Tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, [0, 1, 2], reduction="max")


def test_mse_loss() -> None:
    x, y = tl.randn(4, 3, requires_grad=True), tl.randn(4, 3)
    diff = x.numpy() - y.numpy()
    np.testing.assert_allclose(F.mse_loss(x, y).item(), (diff ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(F.mse_loss(x, y, reduction="sum").item(), (diff ** 2).sum(),
                               rtol=1e-5)
    assert F.mse_loss(x, y, reduction="none").shape == (4, 3)
    F.mse_loss(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * diff / 12, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, y, reduction="avg")


@given(rows=st.integers(1, 5), classes=st.integers(2, 6), seed=st.integers(0, 2 ** 16))
def test_cross_entropy_property_matches_numpy(rows: int, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((rows, classes)) * 5
    targets = rng.integers(-1, classes, size=rows)
    expected = _xent_numpy(logits, targets, ignore=-1)
    out = F.cross_entropy(Tensor(logits), Tensor(targets), ignore_index=-1, reduction="none")
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- attention


def _attention_numpy(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(-1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(-1, keepdims=True)
    return w @ v


def _qkv(shape_q=(2, 3, 5, 4), source=6):
    q = tl.randn(*shape_q, dtype=np.float64)
    k = tl.randn(*shape_q[:-2], source, shape_q[-1], dtype=np.float64)
    v = tl.randn(*shape_q[:-2], source, 3, dtype=np.float64)
    return q, k, v


def test_attention_unmasked() -> None:
    q, k, v = _qkv()
    out = F.scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 3)
    np.testing.assert_allclose(out.numpy(), _attention_numpy(q.numpy(), k.numpy(), v.numpy()),
                               rtol=1e-10)


def test_attention_is_causal() -> None:
    q, k, v = _qkv(source=5)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    np.testing.assert_allclose(out.numpy(),
                               _attention_numpy(q.numpy(), k.numpy(), v.numpy(), mask),
                               rtol=1e-10)
    # the first query sees only the first key
    np.testing.assert_allclose(out.numpy()[..., 0, :], v.numpy()[..., 0, :], rtol=1e-12)
    # changing a later value leaves earlier outputs alone
    v2 = v.numpy().copy()
    v2[..., 3, :] += 10
    out2 = F.scaled_dot_product_attention(q, k, Tensor(v2), is_causal=True)
    np.testing.assert_array_equal(out.numpy()[..., :3, :], out2.numpy()[..., :3, :])


def test_attention_bool_and_float_masks_agree() -> None:
    q, k, v = _qkv()
    allowed = np.random.default_rng(1).random((5, 6)) > 0.4
    allowed[:, 0] = True  # every query attends to something
    as_float = np.where(allowed, 0.0, -np.inf)
    expected = _attention_numpy(q.numpy(), k.numpy(), v.numpy(), as_float)
    by_bool = F.scaled_dot_product_attention(q, k, v, attn_mask=Tensor(allowed))
    by_float = F.scaled_dot_product_attention(q, k, v, attn_mask=Tensor(as_float))
    np.testing.assert_allclose(by_bool.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(by_float.numpy(), expected, rtol=1e-10)
    bias = np.random.default_rng(2).standard_normal((5, 6))  # an additive float mask
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(q, k, v, attn_mask=bias).numpy(),
        _attention_numpy(q.numpy(), k.numpy(), v.numpy(), bias), rtol=1e-10)


def test_attention_gradient_and_errors() -> None:
    q, k, v = (t.detach() for t in _qkv((1, 2, 3, 2), source=3))
    for t in (q, k, v):
        t.requires_grad = True
    assert tl.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
                        (q, k, v))
    with pytest.raises(ValueError, match="either"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(q, tl.randn(1, 2, 3, 5, dtype=np.float64), v)


@pytest.mark.parametrize("is_causal", [False, True])
def test_multi_head_attention_is_split_heads_attention_merge(is_causal: bool) -> None:
    B, T, nh, hs = 2, 5, 3, 4
    qkv = tl.randn(B, T, 3 * nh * hs, dtype=np.float64, requires_grad=True)
    fused_out = F.multi_head_attention(qkv, nh, is_causal=is_causal)
    q, k, v = (part.reshape(B, T, nh, hs).transpose(1, 2) for part in qkv.split(nh * hs, 2))
    composed = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    composed = composed.transpose(1, 2).reshape(B, T, nh * hs)
    np.testing.assert_allclose(fused_out.numpy(), composed.numpy(), rtol=1e-12)
    g = np.random.default_rng(3).standard_normal(fused_out.shape)
    (grad_fused,) = tl.grad(fused_out, [qkv], Tensor(g))
    (grad_composed,) = tl.grad(composed, [qkv], Tensor(g))
    np.testing.assert_allclose(grad_fused.numpy(), grad_composed.numpy(), rtol=1e-10, atol=1e-12)


def test_multi_head_attention_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"multi_head_attention: .*\(2, 3, 10\)"):
        F.multi_head_attention(tl.randn(2, 3, 10), 2)
    with pytest.raises(ValueError, match="either"):
        F.multi_head_attention(tl.randn(2, 3, 12), 2, attn_mask=np.ones((3, 3), bool),
                               is_causal=True)


def test_attention_dropout_reproducible_and_identity_at_zero() -> None:
    q, k, v = _qkv()
    tl.manual_seed(11)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    tl.manual_seed(11)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    plain = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    assert not np.allclose(a.numpy(), plain.numpy())
