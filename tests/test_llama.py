"""Llama's options of the GPT (issue #16): RoPE, RMSNorm, SwiGLU, grouped-query attention,
and generation past the window on a rolling cache. Each op is checked with gradcheck and
against PyTorch; each option's model against the same model written in PyTorch below."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_gpt import record_forward_calls
import tinygrad_lm as tl
from tinygrad_lm import Tensor, cli
from tinygrad_lm.models import GPT, GPTConfig
from tinygrad_lm.models.gpt import swiglu_hidden_size, training_flops_per_token
from tinygrad_lm.nn import functional as F

OPTIONS = {
    "rope": dict(pos_emb="rope"),
    "rmsnorm": dict(norm="rmsnorm"),
    "swiglu": dict(mlp="swiglu"),
    "gqa": dict(n_kv_head=2),
    "mqa": dict(n_kv_head=1),
    "llama": dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=2),
}


def config(**overrides: Any) -> GPTConfig:
    values = dict(block_size=8, vocab_size=13, n_layer=2, n_head=4, n_embd=16)
    return GPTConfig(**{**values, **overrides})


def spread(model: GPT, std: float = 0.5) -> GPT:
    """Larger random weights: logits far apart, so greedy tokens vary and ties are rare."""
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(p.dtype) * std
    return model


# ----------------------------------------------------------------------------- config


def test_n_kv_head_must_divide_n_head_and_the_error_names_both():
    with pytest.raises(ValueError, match=r"n_kv_head \(3\) must divide n_head \(4\)"):
        config(n_kv_head=3)
    with pytest.raises(ValueError, match=r"n_kv_head \(0\) must divide n_head \(4\)"):
        config(n_kv_head=0)


@pytest.mark.parametrize("field,value", [("pos_emb", "alibi"), ("norm", "batchnorm"),
                                         ("mlp", "relu")])
def test_unknown_options_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"GPTConfig: {field} must be"):
        config(**{field: value})


def test_rope_needs_an_even_head_size():
    with pytest.raises(ValueError, match="rope needs an even head size"):
        config(n_embd=12, n_head=4, pos_emb="rope")


def test_defaults_keep_nanogpts_state_dict():
    names = list(GPT(config()).state_dict())
    assert names[:2] == ["transformer.wte.weight", "transformer.wpe.weight"]
    assert "transformer.h.0.mlp.c_fc.weight" in names and "transformer.h.0.ln_1.bias" in names


def test_llama_state_dict_reads_naturally():
    state = GPT(config(**OPTIONS["llama"], bias=False)).state_dict()
    hidden = swiglu_hidden_size(16)
    shapes = {k: v.shape for k, v in state.items() if k.startswith("transformer.h.0.")}
    assert shapes == {
        "transformer.h.0.ln_1.weight": (16,),
        "transformer.h.0.attn.c_attn.weight": (16 + 2 * 2 * 4, 16),  # q, then 2 k and 2 v heads
        "transformer.h.0.attn.c_proj.weight": (16, 16),
        "transformer.h.0.ln_2.weight": (16,),
        "transformer.h.0.mlp.w1.weight": (hidden, 16),
        "transformer.h.0.mlp.w3.weight": (hidden, 16),
        "transformer.h.0.mlp.c_proj.weight": (16, hidden),
    }
    assert "transformer.wpe.weight" not in state and "transformer.ln_f.weight" in state


@pytest.mark.parametrize("n_embd,hidden", [(16, 64), (48, 128), (128, 352), (384, 1024),
                                           (4096, 10944)])
def test_swiglu_hidden_size_is_8_thirds_rounded_up_to_32(n_embd, hidden):
    assert swiglu_hidden_size(n_embd) == hidden
    assert hidden % 32 == 0 and hidden - 32 < 8 * n_embd / 3 <= hidden


# ----------------------------------------------------------------------------- the ops


@pytest.mark.parametrize("options", [{}, {"mlp": "swiglu"}, {"n_kv_head": 2},
                                     {"pos_emb": "rope", "norm": "rmsnorm", "mlp": "swiglu",
                                      "n_kv_head": 1}])
def test_training_flops_count_every_matmul_weight_six_times(options):
    config = GPTConfig(block_size=16, vocab_size=30, n_layer=2, n_head=4, n_embd=32, **options)
    model = GPT(config)
    weights = sum(p.numel() for name, p in model.named_parameters()
                  if p.ndim == 2 and "wpe" not in name)  # wte is lm_head's, counted once
    assert training_flops_per_token(config) == 6 * weights + 12 * 2 * 16 * 32


def test_rotary_embedding_passes_gradcheck():
    cos, sin = F.rotary_tables(3, 5, 6, dtype="float64")
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 6)), requires_grad=True)
    assert tl.gradcheck(lambda t: F.rotary_embedding(t, cos, sin), (x,))
    assert tl.gradgradcheck(lambda t: F.rotary_embedding(t, cos, sin), (x,))


def test_rotary_backward_is_the_rotation_by_minus_theta():
    cos, sin = F.rotary_tables(0, 5, 8, dtype="float64")
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((5, 8)), requires_grad=True)
    dout = rng.standard_normal((5, 8))
    F.rotary_embedding(x, cos, sin).backward(Tensor(dout))
    expected = F.rotary_embedding(Tensor(dout), cos, -sin).numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_rotary_scores_depend_only_on_relative_position():
    """<R(m) q, R(n) k> is the same for (m, n) and (m + s, n + s)."""
    rng = np.random.default_rng(2)
    q, k = (Tensor(rng.standard_normal((1, 8))) for _ in range(2))

    def score(m: int, n: int) -> float:
        return float((F.rotary_embedding(q, *F.rotary_tables(m, 1, 8, dtype="float64"))
                      * F.rotary_embedding(k, *F.rotary_tables(n, 1, 8, dtype="float64"))).sum())

    assert score(7, 3) == pytest.approx(score(1007, 1003), rel=1e-9)
    assert score(7, 3) != pytest.approx(score(7, 4), rel=1e-3)


def test_rotary_tables_follow_the_definition():
    cos, sin = F.rotary_tables(2, 3, 4, base=100.0, dtype="float64")
    angles = np.arange(2, 5)[:, None] * 100.0 ** (-np.array([0, 2]) / 4)
    np.testing.assert_array_equal(cos.numpy(), np.cos(angles))
    np.testing.assert_array_equal(sin.numpy(), np.sin(angles))
    assert F.rotary_tables(0, 2, 4)[0].dtype == np.float32


def test_shape_errors_name_the_op():
    with pytest.raises(ValueError, match="swiglu: a of shape"):
        F.swiglu(tl.ones(2, 3), tl.ones(3))
    with pytest.raises(ValueError, match="rotary_embedding: x of shape"):
        F.rotary_embedding(tl.ones(2, 3), *F.rotary_tables(0, 2, 4))
    with pytest.raises(ValueError, match="rms_norm: input of shape"):
        F.rms_norm(tl.ones(2, 3), 4)


def test_rms_norm_layer_has_a_weight_and_no_bias():
    layer = tl.nn.RMSNorm(5)
    assert [n for n, _ in layer.named_parameters()] == ["weight"] and layer.eps == 1e-5
    assert repr(layer) == "RMSNorm(5, eps=1e-05)"


# ----------------------------------------------------------------------------- PyTorch oracle

torch_tests = pytest.mark.skipif(not __import__("importlib").util.find_spec("torch"),
                                 reason="torch not installed")
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def _pair(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> tuple[Tensor, Any]:
    torch = pytest.importorskip("torch")
    a = rng.standard_normal(shape).astype(dtype) * 2
    return Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _rotate_half_torch(x: Any, cos: Any, sin: Any) -> Any:
    """Hugging Face Llama's form: x cos + rotate_half(x) sin, the angles repeated twice."""
    torch = pytest.importorskip("torch")
    half = x.shape[-1] // 2
    cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def _torch_angles(start: int, length: int, head_size: int) -> tuple[Any, Any]:
    torch = pytest.importorskip("torch")
    inv_freq = 1.0 / 10000 ** (torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)
    angles = torch.outer(torch.arange(start, start + length, dtype=torch.float64), inv_freq)
    return angles.cos(), angles.sin()


@torch_tests
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("op", ["rms_norm", "swiglu", "rotary"])
def test_ops_match_pytorch(op, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, tx = _pair(rng, (3, 5, 8), dtype)
    if op == "rms_norm":
        w, tw = _pair(rng, (8,), dtype)
        ours, theirs = F.rms_norm(x, 8, w), torch.nn.functional.rms_norm(tx, (8,), tw, eps=1e-5)
        inputs = [(x, tx), (w, tw)]
    elif op == "swiglu":
        b, tb = _pair(rng, (3, 5, 8), dtype)
        ours, theirs = F.swiglu(x, b), torch.nn.functional.silu(tx) * tb
        inputs = [(x, tx), (b, tb)]
    else:
        cos, sin = _torch_angles(4, 5, 8)
        ours = F.rotary_embedding(x, *F.rotary_tables(4, 5, 8, dtype=dtype))
        theirs = _rotate_half_torch(tx, cos.to(tx.dtype), sin.to(tx.dtype))
        inputs = [(x, tx)]
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **TOL[dtype])
    dout = rng.standard_normal(ours.shape).astype(dtype)
    ours.backward(Tensor(dout))
    theirs.backward(torch.tensor(dout))
    for mine, their in inputs:
        assert mine.grad.dtype == dtype
        np.testing.assert_allclose(mine.grad.numpy(), their.grad.numpy(), **TOL[dtype])


def torch_gpt(state: dict[str, Any], c: GPTConfig, idx: Any) -> Any:
    """The GPT with ``c``'s options, written with PyTorch's own ops: logits (B, T, V). Past
    ``block_size`` (RoPE only) each position sees the last ``block_size`` positions."""
    torch = pytest.importorskip("torch")
    nnf = torch.nn.functional
    B, T = idx.shape
    C, nh, hs = c.n_embd, c.n_head, c.n_embd // c.n_head
    nkv = c.n_kv_head or nh

    def linear(x: Any, name: str) -> Any:
        return nnf.linear(x, state[f"{name}.weight"], state.get(f"{name}.bias"))

    def norm(x: Any, name: str) -> Any:
        if c.norm == "rmsnorm":
            return nnf.rms_norm(x, (C,), state[f"{name}.weight"], eps=1e-5)
        return nnf.layer_norm(x, (C,), state[f"{name}.weight"], state.get(f"{name}.bias"), 1e-5)

    x = state["transformer.wte.weight"][idx]
    if c.pos_emb == "learned":
        x = x + state["transformer.wpe.weight"][:T]
    cos, sin = _torch_angles(0, T, hs)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    allowed = (j <= i) & (i - j < c.block_size)
    for layer in range(c.n_layer):
        h = f"transformer.h.{layer}"
        q, k, v = linear(norm(x, f"{h}.ln_1"), f"{h}.attn.c_attn").split(
            [C, nkv * hs, nkv * hs], -1)
        q = q.view(B, T, nh, hs).transpose(1, 2)
        k = k.view(B, T, nkv, hs).transpose(1, 2)
        v = v.view(B, T, nkv, hs).transpose(1, 2)
        if c.pos_emb == "rope":
            q, k = _rotate_half_torch(q, cos, sin), _rotate_half_torch(k, cos, sin)
        y = nnf.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
        x = x + linear(y.transpose(1, 2).reshape(B, T, C), f"{h}.attn.c_proj")
        m = norm(x, f"{h}.ln_2")
        if c.mlp == "swiglu":
            m = nnf.silu(linear(m, f"{h}.mlp.w1")) * linear(m, f"{h}.mlp.w3")
        else:
            m = nnf.gelu(linear(m, f"{h}.mlp.c_fc"))
        x = x + linear(m, f"{h}.mlp.c_proj")
    return linear(norm(x, "transformer.ln_f"), "lm_head")


@torch_tests
@pytest.mark.parametrize("length", [8, 19], ids=["window", "past_window"])
@pytest.mark.parametrize("option", ["default", *OPTIONS])
def test_model_matches_pytorch_logits_loss_and_every_gradient(option, length):
    torch = pytest.importorskip("torch")
    c = config(**OPTIONS.get(option, {}))
    if length > c.block_size and c.pos_emb != "rope":
        pytest.skip("only a RoPE model reads past block_size")
    tl.manual_seed(0)
    model = spread(GPT(c), 0.3)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    rng = np.random.default_rng(4)
    idx, targets = rng.integers(0, 13, (2, length)), rng.integers(0, 13, (2, length))
    logits, loss = model(idx, targets)
    loss.backward()
    state = {k: torch.tensor(v, requires_grad=True) for k, v in model.state_dict().items()
             if k != "lm_head.weight"}
    state["lm_head.weight"] = state["transformer.wte.weight"]  # tied
    expected = torch_gpt(state, c, torch.tensor(idx))
    np.testing.assert_allclose(logits.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    expected_loss = torch.nn.functional.cross_entropy(expected.reshape(-1, 13),
                                                      torch.tensor(targets).reshape(-1))
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-12)
    expected_loss.backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), state[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-10, err_msg=name)


# ----------------------------------------------------------------------------- model properties


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_is_causal_and_trains(option):
    tl.manual_seed(0)
    model = GPT(config(**OPTIONS[option]))
    idx = np.random.default_rng(5).integers(0, 13, (2, 8))
    base = model(idx)[0].numpy()
    changed = idx.copy()
    changed[:, 5:] = (changed[:, 5:] + 3) % 13
    np.testing.assert_allclose(model(changed)[0].numpy()[:, :5], base[:, :5], atol=1e-5)
    opt = tl.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    targets = np.roll(idx, -1, axis=1)
    for _ in range(60):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("option", ["rope", "llama"])
@pytest.mark.parametrize("prompt_len", [1, 5, 30])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rolling_cache_generation_equals_uncached_past_the_window(option, prompt_len,
                                                                  temperature):
    """Four windows' worth of tokens, from a short prompt and from one longer than the tokens
    the next one depends on (n_layer * (block_size - 1) + 1 = 15); sampling draws the same
    random numbers in both runs, so it agrees too."""
    tl.manual_seed(0)
    model = spread(GPT(config(**OPTIONS[option])).eval())
    prompt = np.random.default_rng(6).integers(0, 13, (2, prompt_len))
    outputs = []
    for use_cache in (True, False):
        tl.manual_seed(11)
        outputs.append(model.generate(prompt, 32, temperature=temperature,
                                      use_cache=use_cache).numpy())
    assert outputs[0].shape == (2, prompt_len + 32)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    if temperature:  # a varied text, not a constant one that any cache would reproduce
        assert len(set(outputs[0][:, prompt_len:].ravel())) >= 6


def test_the_rolling_cache_is_filled_once_and_never_refilled(monkeypatch):
    tl.manual_seed(0)
    model = GPT(config(pos_emb="rope")).eval()
    calls = record_forward_calls(model, monkeypatch)
    model.generate(np.array([[1, 2, 3]]), 20, temperature=0.0)
    assert calls == [(3, 0)] + [(1, n) for n in range(3, 22)]
    calls.clear()
    model.generate(np.arange(20)[None] % 13, 3, temperature=0.0, use_cache=False)
    assert [t for t, _ in calls] == [15, 15, 15]  # 2 * (8 - 1) + 1 tokens reach the logits


def test_with_one_layer_the_rolling_cache_equals_the_model_on_the_last_window():
    """One layer: a token's logits depend only on the last block_size tokens, so each
    generated token is the argmax of the model run on exactly them."""
    tl.manual_seed(0)
    model = spread(GPT(config(pos_emb="rope", n_layer=1)).eval())
    out = model.generate(np.array([[1, 2, 3]]), 25, temperature=0.0).numpy()[0]
    for end in range(9, len(out)):
        logits, _ = model(out[None, end - 8:end])
        assert out[end] == logits.numpy()[0, -1].argmax()


def test_halve_still_works_with_rope():
    tl.manual_seed(0)
    model = spread(GPT(config(**OPTIONS["llama"])).eval())
    prompt = np.array([[4, 5, 6]])
    outputs = [model.generate(prompt, 20, temperature=0.0, use_cache=c, context="halve").numpy()
               for c in (True, False)]
    np.testing.assert_array_equal(*outputs)


def test_a_cache_takes_one_position_at_a_time_after_the_prefill():
    model = GPT(config(pos_emb="rope")).eval()
    caches = model._new_caches(1)
    model(np.array([[1, 2]]), caches=caches)
    with pytest.raises(ValueError, match="one position at a time"):
        model(np.array([[3, 4]]), caches=caches)


# ----------------------------------------------------------------------------- command line

QUICK = ["--quiet", "--max-iters", "2", "--eval-iters", "1", "--eval-interval", "1",
         "--sample-tokens", "0", "--batch-size", "2", "--block-size", "8", "--n-layer", "1",
         "--n-head", "2", "--n-embd", "16"]
TEXT = "To be, or not to be, that is the question:\n" * 40


def _train(*args: Any) -> int:
    return cli.main(["train", *map(str, args)])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_llama_preset_trains_saves_its_options_and_resumes_with_them(corpus: Path,
                                                                   tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert _train("--preset", "llama", "--n-kv-head", "1", "--out", out, "--data", corpus,
                  *QUICK) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["pos_emb"], saved["norm"], saved["mlp"], saved["n_kv_head"]) == \
        ("rope", "rmsnorm", "swiglu", 1)
    ckpt = tl.load(out / "ckpt.tlm")
    assert ckpt["model_config"]["pos_emb"] == "rope" and "transformer.h.0.mlp.w3.weight" in \
        ckpt["model"]
    assert _train("--out", out, "--resume", "--max-iters", "3", "--quiet") == 0
    capsys.readouterr()
    assert _train("--out", out, "--resume", "--max-iters", "4", "--pos-emb", "learned") == 2
    err = capsys.readouterr().err.strip()
    assert "--pos-emb learned contradicts the run being resumed, which has --pos-emb rope" in err
    assert cli.main(["export", "--out", str(out)]) == 2
    assert "cannot express this model (pos_emb='rope'" in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [
    (["--n-kv-head", "3", "--n-head", "4"], "--n-kv-head 3 must divide --n-head 4"),
    (["--pos-emb", "rope", "--n-embd", "6", "--n-head", "2"], "--pos-emb rope needs an even"),
])
def test_bad_llama_flags_are_one_line(corpus: Path, tmp_path: Path, capsys, flags, message):
    assert _train("--out", tmp_path / "run", "--data", corpus, *QUICK, *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_saved_before_the_options_existed_resumes_with_the_defaults(corpus: Path,
                                                                         tmp_path: Path):
    out = tmp_path / "run"
    assert _train("--out", out, "--data", corpus, *QUICK) == 0
    for name in ("config.json",):  # as an older version wrote it: without the new fields
        saved = json.loads((out / name).read_text())
        (out / name).write_text(json.dumps({k: v for k, v in saved.items()
                                            if k not in ("pos_emb", "norm", "mlp", "n_kv_head")}))
    ckpt = tl.load(out / "ckpt.tlm")
    for key in ("pos_emb", "norm", "mlp", "n_kv_head"):
        del ckpt["model_config"][key], ckpt["train_config"][key]
    tl.save(ckpt, out / "ckpt.tlm")
    assert _train("--out", out, "--resume", "--max-iters", "3", "--quiet",
                  "--norm", "layernorm") == 0
