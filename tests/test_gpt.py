"""The GPT: golden parity with a PyTorch implementation, model properties, generation."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lm as tl
from tinygrad_lm import optim
from tinygrad_lm.models import GPT, GPTConfig
from tinygrad_lm.train import configure_optimizer, TrainConfig

GOLDEN = Path(__file__).parent / "fixtures" / "golden_gpt.npz"


def tiny_config(**overrides) -> GPTConfig:
    values = dict(block_size=16, vocab_size=13, n_layer=2, n_head=2, n_embd=16)
    values.update(overrides)
    return GPTConfig(**values)


def test_golden_fixture_matches_pytorch_tensor_by_tensor():
    """Logits, loss, every gradient and three AdamW steps equal an independent PyTorch GPT
    (scripts/make_golden_gpt.py), in float64."""
    golden = np.load(GOLDEN, allow_pickle=False)
    config = GPTConfig(**ast.literal_eval(str(golden["config"])))
    model = GPT(config)
    state = {k[len("param/"):]: v for k, v in golden.items() if k.startswith("param/")}
    for p in model.parameters():  # float64 first: load_state_dict keeps the model's dtype
        p.data = p.data.astype(np.float64)
    model.load_state_dict(state)
    idx, targets = golden["idx"], golden["targets"]
    logits, loss = model(idx, targets)
    np.testing.assert_allclose(logits.numpy(), golden["logits"], rtol=1e-10, atol=1e-10)
    assert loss.item() == pytest.approx(float(golden["loss"]), rel=1e-12)
    loss.backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), golden[f"grad/{name}"], rtol=1e-8, atol=1e-10,
                                   err_msg=name)
    cfg = TrainConfig(lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=0.1)
    opt = configure_optimizer(model, cfg)
    losses = []
    for _ in range(3):
        opt.step()
        opt.zero_grad()
        _, step_loss = model(idx, targets)
        step_loss.backward()
        losses.append(step_loss.item())
    np.testing.assert_allclose(losses, golden["step_losses"], rtol=1e-9)


def test_state_dict_has_nanogpt_names_and_tied_head():
    model = GPT(tiny_config())
    state = model.state_dict()
    assert "transformer.wte.weight" in state and "lm_head.weight" in state
    assert "transformer.h.0.attn.c_attn.weight" in state
    assert "transformer.h.1.mlp.c_proj.bias" in state
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (48, 16)
    assert model.transformer.wte.weight is model.lm_head.weight
    # the shared matrix is counted once
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(set(id(p) for p in model.parameters()))


def test_initial_loss_is_about_log_vocab():
    tl.manual_seed(0)
    config = tiny_config(vocab_size=65)
    model = GPT(config)
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 65, (8, 16)), rng.integers(0, 65, (8, 16))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(65)) < 0.1


def test_causality_future_tokens_never_change_past_logits():
    tl.manual_seed(0)
    model = GPT(tiny_config())
    idx = np.random.default_rng(1).integers(0, 13, (2, 10))
    base, _ = model(idx)
    for t in range(9):
        changed = idx.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] + 5) % 13
        out, _ = model(changed)
        np.testing.assert_allclose(out.numpy()[:, :t + 1], base.numpy()[:, :t + 1], atol=1e-5)
        assert not np.allclose(out.numpy()[:, t + 1:], base.numpy()[:, t + 1:])


def test_overfits_one_batch():
    tl.manual_seed(0)
    model = GPT(tiny_config())
    idx = np.random.default_rng(2).integers(0, 13, (4, 16))
    targets = np.roll(idx, -1, axis=1)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_sequence_longer_than_block_size_is_a_clear_error():
    model = GPT(tiny_config(block_size=4))
    with pytest.raises(ValueError, match="block_size 4"):
        model(np.zeros((1, 5), dtype=np.int64))


@pytest.mark.parametrize("prompt_len,new", [(1, 12), (3, 30)])
def test_greedy_generation_is_identical_with_and_without_cache(prompt_len, new):
    tl.manual_seed(0)
    model = GPT(tiny_config(block_size=16)).eval()
    prompt = np.random.default_rng(3).integers(0, 13, (2, prompt_len))
    cached = model.generate(prompt, new, temperature=0.0, use_cache=True)
    uncached = model.generate(prompt, new, temperature=0.0, use_cache=False)
    assert cached.shape == (2, prompt_len + new)
    np.testing.assert_array_equal(cached.numpy(), uncached.numpy())
    np.testing.assert_array_equal(cached.numpy()[:, :prompt_len], prompt)


@pytest.mark.parametrize("context", ["slide", "halve"])
@pytest.mark.parametrize("prompt_len,temperature", [(1, 0.0), (11, 0.0), (3, 1.0)])
def test_cached_and_uncached_generation_agree_past_the_window(context, prompt_len, temperature):
    """Several windows' worth of tokens, from a short prompt and from one longer than the
    window; sampling draws the same random numbers in both runs, so it agrees too."""
    tl.manual_seed(0)
    model = GPT(tiny_config(block_size=8)).eval()
    prompt = np.random.default_rng(5).integers(0, 13, (2, prompt_len))
    outputs = []
    for use_cache in (True, False):
        tl.manual_seed(11)
        outputs.append(model.generate(prompt, 30, temperature=temperature, top_k=5,
                                      use_cache=use_cache, context=context).numpy())
    assert outputs[0].shape == (2, prompt_len + 30)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0][:, :prompt_len], prompt)


def record_forward_calls(model: GPT, monkeypatch) -> list[tuple[int, int]]:
    """(tokens fed, positions already cached) for each call of ``model``'s forward."""
    calls: list[tuple[int, int]] = []
    forward = model.forward

    def recording(idx, targets=None, caches=None):
        calls.append((idx.shape[1], caches[0].length if caches else 0))
        return forward(idx, targets, caches)

    monkeypatch.setattr(model, "forward", recording)
    return calls


def test_halve_keeps_the_last_half_window_and_refills_the_cache_once(monkeypatch):
    tl.manual_seed(0)
    model = GPT(tiny_config(block_size=8)).eval()
    calls = record_forward_calls(model, monkeypatch)
    prompt = np.array([[1, 2, 3]])
    out = model.generate(prompt, 14, temperature=0.0, use_cache=False, context="halve").numpy()
    # contexts of 3..8 tokens, then 4 (the last 8 // 2) growing to 8 again, then 4, 5, 6
    assert [t for t, _ in calls] == [3, 4, 5, 6, 7, 8, 4, 5, 6, 7, 8, 4, 5, 6]
    calls.clear()
    model.generate(prompt, 14, temperature=0.0, use_cache=True, context="halve")
    prefill = (4, 0)  # the kept 4 tokens fed to fresh caches
    expected = [(3, 0)] + [(1, n) for n in range(3, 8)] + [prefill] \
        + [(1, n) for n in range(4, 8)] + [prefill] + [(1, 4), (1, 5)]
    assert calls == expected
    # the last token is the argmax after the last 6 tokens, at positions 0..5
    logits, _ = model(out[:, -7:-1])
    assert out[0, -1] == logits.numpy()[0, -1].argmax()


def test_generate_rejects_an_unknown_context_policy():
    model = GPT(tiny_config())
    with pytest.raises(ValueError, match=r"GPT.generate: context must be 'slide' or 'halve'"):
        model.generate(np.array([[1]]), 2, context="window")


def test_sampling_is_reproducible_and_respects_top_k():
    model = GPT(tiny_config()).eval()
    prompt = np.array([[1, 2, 3]])
    tl.manual_seed(7)
    a = model.generate(prompt, 20, temperature=1.0, top_k=3).numpy()
    tl.manual_seed(7)
    b = model.generate(prompt, 20, temperature=1.0, top_k=3).numpy()
    np.testing.assert_array_equal(a, b)
    tl.manual_seed(7)
    c = model.generate(prompt, 20, temperature=1.0, top_p=0.5).numpy()
    assert c.shape == (1, 23)


def test_top_k_one_equals_greedy():
    tl.manual_seed(0)
    model = GPT(tiny_config()).eval()
    prompt = np.array([[4, 5]])
    greedy = model.generate(prompt, 10, temperature=0.0).numpy()
    top1 = model.generate(prompt, 10, temperature=1.0, top_k=1).numpy()
    np.testing.assert_array_equal(greedy, top1)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    tl.manual_seed(0)
    model = GPT(tiny_config())
    idx = np.random.default_rng(4).integers(0, 13, (2, 8))
    before, _ = model(idx)
    tl.save({"model": model.state_dict()}, tmp_path / "ckpt.tlm")
    tl.manual_seed(1)
    restored = GPT(tiny_config())
    restored.load_state_dict(tl.load(tmp_path / "ckpt.tlm")["model"])
    after, _ = restored(idx)
    np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_nanogpt_style_state_dict_loads_with_tied_keys_agreeing():
    """nanoGPT's state_dict lists the tied matrix twice (wte and lm_head); both load."""
    model = GPT(tiny_config())
    state = model.state_dict()
    assert np.array_equal(state["transformer.wte.weight"], state["lm_head.weight"])
    state = {k: v + 1 for k, v in state.items()}
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.lm_head.weight.numpy(), state["lm_head.weight"])
