"""Step 9: sampling and evaluation: what a language model's loss means, and how text is drawn.

The model of step 8 (trained again here) gives a distribution over the next token. The
chain rule of probabilities turns those into the probability of a whole text; its negative
log, per token, is the cross-entropy the training minimised, and its exponential is the
perplexity. Then the ways of drawing from the distribution: temperature, top-k, top-p and
the inverse-CDF draw itself, each written in NumPy and compared with the library's sampler.

    python examples/tutorial/09_sampling.py [--quick]
"""
from __future__ import annotations

import argparse
import math
from importlib import import_module
from typing import Sequence

import numpy as np

import tinygrad_lm as tl
from tinygrad_lm.data import CharTokenizer
from tinygrad_lm.models.gpt import GPT, sample_next
from tinygrad_lm.train import PRESETS, TrainConfig

from _tutorial import check  # this folder's shared helper

train = import_module("08_gpt").train  # step 8's training loop, reused as is

# ----------------------------------------------------------------------------- evaluation


@tl.no_grad()
def token_log_probs(model: GPT, ids: np.ndarray) -> np.ndarray:
    """log P(x_t | x_1 .. x_{t-1}) for t = 2 .. n, by one forward pass over x_1 .. x_{n-1}."""
    logits, _ = model(tl.Tensor(ids[None, :-1]))  # (1, n - 1, V): position t predicts t + 1
    log_probs = logits.log_softmax(axis=-1).numpy()[0]  # (n - 1, V)
    return log_probs[np.arange(len(ids) - 1), ids[1:]]  # the log-probability of what came


@tl.no_grad()
def evaluation(model: GPT, tok: CharTokenizer, val_ids: np.ndarray) -> None:
    """The chain rule against the model's loss, and perplexity against its baselines."""
    text_ids = val_ids[:model.config.block_size + 1]
    log_probs = token_log_probs(model, text_ids)
    _, loss = model(tl.Tensor(text_ids[None, :-1]), tl.Tensor(text_ids[None, 1:]))
    print(f"  log P(text | first character) = sum of {len(log_probs)} terms = "
          f"{log_probs.sum():.2f} nats, or {log_probs.sum() / math.log(2):.1f} bits")
    print(f"  its mean, negated: {-log_probs.mean():.4f}; the model's loss: {loss.item():.4f}")
    check(abs(-log_probs.mean() - loss.item()) < 1e-4,
          "the cross-entropy is the mean negative log-likelihood of the text")
    V = tok.vocab_size
    nll = -np.mean([token_log_probs(model, val_ids[s:s + model.config.block_size + 1]).mean()
                    for s in range(0, len(val_ids) - 200, len(val_ids) // 20)])
    print(f"  perplexity on the validation text: exp({nll:.4f}) = {math.exp(nll):.2f} "
          f"(a uniform guess: exp(ln {V}) = {V})")
    check(math.exp(nll) < V / 4, "the trained model's perplexity is below a quarter of V")


# ----------------------------------------------------------------------------- sampling


def softmax(z: np.ndarray) -> np.ndarray:
    """e^z / sum e^z, with the largest logit subtracted first so exp cannot overflow."""
    e = np.exp(z - z.max())
    return e / e.sum()


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the logits at least as large as the k-th largest (ties with it too); -inf else."""
    kth = np.sort(logits)[-k]
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(probs: np.ndarray, p: float) -> np.ndarray:
    """Keep the likeliest tokens until their mass reaches p (the nucleus); renormalise."""
    order = np.argsort(-probs)  # likeliest first
    mass_before = np.cumsum(probs[order]) - probs[order]  # of the tokens ranked above each
    keep = np.zeros(probs.shape, dtype=bool)
    keep[order[mass_before < p]] = True  # those above cover less than p: still needed
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum()


def draw(probs: np.ndarray, u: float) -> int:
    """The inverse-CDF draw: token i owns [F_(i-1), F_i) of [0, 1), a width of p_i."""
    cdf = np.cumsum(probs)
    return int((cdf <= u * cdf[-1]).sum())  # how many intervals end at or before u


def frequencies(tokens: np.ndarray, V: int) -> np.ndarray:
    """How often each of V tokens was drawn, as a share of the draws."""
    return np.bincount(tokens, minlength=V) / len(tokens)


@tl.no_grad()
def next_token_distributions(model: GPT, context: np.ndarray) -> dict[str, np.ndarray]:
    """The next-token distribution after ``context`` at three temperatures, and after
    top-k and top-p at temperature 1 (these feed the page's picture as well)."""
    logits, _ = model(tl.Tensor(context[None]))
    z = logits.numpy()[0, -1].astype(np.float64)  # (V,): the last position's logits
    return {"temperature 0.5": softmax(z / 0.5), "temperature 1": softmax(z),
            "temperature 2": softmax(z / 2), "top-k 5": softmax(top_k_filter(z, 5)),
            "top-p 0.9": top_p_filter(softmax(z), 0.9)}


def effective_choices(probs: np.ndarray) -> float:
    """exp(entropy): the number of equally likely tokens that would be as uncertain."""
    nonzero = probs[probs > 0]
    return float(np.exp(-(nonzero * np.log(nonzero)).sum()))


def sampling(model: GPT, tok: CharTokenizer, context_text: str, draws: int) -> None:
    """Each filter against the library's sampler, by the frequencies of many draws."""
    context = tok.encode(context_text)
    dists = next_token_distributions(model, context)
    for name, probs in dists.items():
        top = np.argsort(-probs)[:3]
        print(f"  {name:>15}: {effective_choices(probs):5.2f} effective choices; likeliest "
              + ", ".join(f"{tok.decode([i])!r} {probs[i]:.2f}" for i in top))
    check(effective_choices(dists["temperature 0.5"]) < effective_choices(dists["temperature 1"])
          < effective_choices(dists["temperature 2"]), "a higher temperature spreads the choice")
    check(np.count_nonzero(dists["top-k 5"]) >= 5, "top-k keeps at least k tokens")

    tl.manual_seed(0)
    logits, _ = model(tl.Tensor(context[None]))
    batch = tl.Tensor(np.repeat(logits.numpy()[:, -1, :], draws, axis=0))  # (draws, V)
    V = tok.vocab_size
    rng = np.random.default_rng(0)
    ours = np.array([draw(dists["temperature 1"], u) for u in rng.random(draws)])
    for name, probs, kwargs in (("no filter", dists["temperature 1"], {}),
                                ("top-k 5", dists["top-k 5"], {"top_k": 5}),
                                ("top-p 0.9", dists["top-p 0.9"], {"top_p": 0.9})):
        library = sample_next(batch, 1.0, **kwargs).numpy()[:, 0]
        gap = np.abs(frequencies(library, V) - probs).max()
        print(f"  {name:>15}: {draws} draws by sample_next, largest gap to our "
              f"probabilities {gap:.3f}")
        check(set(library.tolist()) <= set(np.flatnonzero(probs).tolist()) and gap < 0.04,
              f"sample_next with {name} draws from our distribution")
    gap = np.abs(frequencies(ours, V) - dists["temperature 1"]).max()
    check(gap < 0.04, f"our draw() matches the probabilities (largest gap {gap:.3f})")


def samples(model: GPT, tok: CharTokenizer, prompt: str, length: int) -> None:
    """The same prompt and seed under each setting."""
    ids = tl.Tensor(tok.encode(prompt)[None])
    for label, kwargs in (("greedy", {"temperature": 0}), ("temperature 0.5", {"temperature": 0.5}),
                          ("temperature 1", {}), ("temperature 1.5", {"temperature": 1.5}),
                          ("top-k 5", {"top_k": 5}), ("top-p 0.9", {"top_p": 0.9})):
        tl.manual_seed(0)
        text = tok.decode(model.generate(ids, max_new_tokens=length, **kwargs)[0].numpy())
        print(f"  {label:>15}: {text!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny preset, fewer draws")
    args = parser.parse_args(argv)
    cfg = (TrainConfig(**PRESETS["tiny"]) if args.quick
           else TrainConfig(**{**PRESETS["cpu"], "max_iters": 400, "eval_interval": 100}))
    print("0. step 8's model, trained again")
    model, tok, ids, _ = train(cfg)
    model.eval()
    print("1. the probability of a text, cross-entropy and perplexity")
    evaluation(model, tok, ids[int(0.9 * len(ids)):])
    print("2. the next-token distribution after 'def __init__(self' and how sampling changes it")
    sampling(model, tok, "def __init__(self", draws=2000 if args.quick else 20000)
    print("3. samples")
    samples(model, tok, "def ", length=60)


if __name__ == "__main__":
    main()
