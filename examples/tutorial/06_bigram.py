"""Step 6: the simplest language model, a bigram, counted and then learned.

A character-level bigram predicts the next character from the current one only. Counting
pairs in the text gives its best probabilities directly; training a (V, V) table of logits
with cross-entropy finds the same probabilities by gradient descent, with exactly the loop
that will train the GPT in step 8. The text is the library's built-in corpus (Python's
standard-library sources), so nothing is downloaded.

    python examples/tutorial/06_bigram.py [--quick]
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

import numpy as np

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import nn, optim
from tinygrad_lm.data import CharTokenizer, load_corpus
from tinygrad_lm.data.batches import Batcher
from tinygrad_lm.models.gpt import sample_next

from _tutorial import check  # this folder's shared helper


def count_bigrams(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """P(next = j | current = i) from pair counts, with one extra count per pair (add-one
    smoothing) so that a pair never seen in training does not get probability 0."""
    counts = np.ones((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, ids: np.ndarray) -> float:
    """Mean negative log-likelihood of each next character: the cross-entropy in nats."""
    return float(-np.log(probs[ids[:-1], ids[1:]]).mean())


def most_likely_after(probs: np.ndarray, tok: CharTokenizer, char: str) -> str:
    """The three likeliest next characters after ``char``, with their probabilities."""
    row = probs[tok.encode(char)[0]]
    return ", ".join(f"{tok.decode([j])!r} {row[j]:.2f}" for j in np.argsort(-row)[:3])


def learn_bigram(train_ids: np.ndarray, V: int, steps: int) -> tuple[nn.Embedding, list[float]]:
    """A (V, V) table of logits trained by cross-entropy; the model and its training losses."""
    tl.manual_seed(0)
    model = nn.Embedding(V, V)  # row i holds the logits of the character after character i
    nn.init.zeros_(model.weight)  # every logit 0: the uniform guess, loss exactly ln V
    opt = optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.0)
    batches = Batcher(train_ids, batch_size=32, block_size=64, rng=np.random.default_rng(0))
    losses = []
    for step in range(steps):
        x, y = batches.next_batch()  # (32, 64) ids, y one character ahead of x
        logits = model(tl.Tensor(x))  # (32, 64, V)
        loss = F.cross_entropy(logits.reshape(-1, V), tl.Tensor(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % (steps // 5) == 0 or step == steps - 1:
            print(f"  step {step:4d}  training loss {losses[-1]:.4f}")
    return model, losses


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less text, fewer steps")
    args = parser.parse_args(argv)
    chars, steps = (100_000, 150) if args.quick else (1_000_000, 1500)

    text = load_corpus("stdlib")[:chars]
    tok = CharTokenizer.train(text)
    ids = tok.encode(text)
    n_train = int(0.9 * len(ids))
    train_ids, val_ids = ids[:n_train], ids[n_train:]
    V = tok.vocab_size
    print(f"{len(text):,} characters of Python source, {V} distinct; "
          f"{len(train_ids):,} for training, {len(val_ids):,} for validation")
    print(f"a uniform guess scores ln V = {math.log(V):.4f} nats per character")

    print("1. counting")
    counted = count_bigrams(train_ids, V)
    counted_val = nll(counted, val_ids)
    print(f"  validation loss of the counted bigram: {counted_val:.4f}")

    print(f"2. learning a ({V}, {V}) table of logits, {steps} steps of AdamW")
    model, losses = learn_bigram(train_ids, V, steps)
    learned = model.weight.softmax(axis=-1).numpy().astype(np.float64)
    learned_val = nll(learned, val_ids)
    print(f"  validation loss of the learned bigram: {learned_val:.4f} "
          f"(counted: {counted_val:.4f})")
    for char in ("d", "("):
        print(f"  after {char!r}: counted {most_likely_after(counted, tok, char)};  "
              f"learned {most_likely_after(learned, tok, char)}")

    print("3. sampling: feed the last character, draw the next from softmax(logits)")
    tl.manual_seed(1)
    out = list(tok.encode("def "))
    with tl.no_grad():
        for _ in range(120):
            logits = model(tl.Tensor([[out[-1]]]))[:, -1, :]  # (1, V)
            out.append(sample_next(logits, temperature=1.0).item())
    print("  " + tok.decode(out).replace("\n", "\n  "))

    check(abs(losses[0] - math.log(V)) < 1e-4, "the all-zero table starts at exactly ln V")
    check(learned_val < math.log(V) - 1.0, "learning beats the uniform guess by over 1 nat")
    check(learned_val < counted_val + 0.25, "the learned bigram comes within 0.25 nats of counting")


if __name__ == "__main__":
    main()
