"""Step 8: train the GPT on the built-in corpus with a visible loop, then sample from it.

Everything the bigram of step 6 had (character tokens, random (x, y) windows, cross-entropy,
AdamW) plus what ``tinygrad-lm train`` adds: the GPT of ``tinygrad_lm.models.gpt``, weight
decay on 2-D weights only, gradient clipping, a warm-up then cosine learning rate, and a
fixed set of validation batches to measure progress. The hyperparameters come from the
trainer's presets (``tiny`` with --quick, ``cpu`` otherwise, with fewer steps).

    python examples/tutorial/08_gpt.py [--quick]
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

import numpy as np

import tinygrad_lm as tl
from tinygrad_lm import nn, optim
from tinygrad_lm.data import CharTokenizer, load_corpus
from tinygrad_lm.data.batches import Batcher
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.train import PRESETS, TrainConfig, configure_optimizer

from _tutorial import check  # this folder's shared helper


@tl.no_grad()
def evaluate(model: GPT, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean loss over fixed batches: the same ones every time, so values are comparable."""
    model.eval()
    total = sum(model(tl.Tensor(x), tl.Tensor(y))[1].item() for x, y in batches)
    model.train()
    return total / len(batches)


def train(cfg: TrainConfig) -> tuple[GPT, CharTokenizer, np.ndarray, dict[str, list]]:
    """Train a GPT as ``cfg`` says, printing the losses; return the model, its tokenizer, the
    token ids (the first 90% for training) and the history of the run, for the checks and
    pictures: the training loss and learning rate of every step, the validation losses."""
    text = load_corpus(cfg.data)
    tok = CharTokenizer.train(text)
    ids = tok.encode(text)
    n_train = int(0.9 * len(ids))
    train_ids, val_ids = ids[:n_train], ids[n_train:]

    tl.manual_seed(cfg.seed)
    config = GPTConfig(block_size=cfg.block_size, vocab_size=tok.vocab_size, n_layer=cfg.n_layer,
                       n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias)
    model = GPT(config)
    opt = configure_optimizer(model, cfg)  # AdamW; weight decay on matrices only
    schedule = optim.lr_scheduler.CosineWarmup(opt, cfg.warmup, cfg.max_iters, cfg.min_lr)
    batches = Batcher(train_ids, cfg.batch_size, cfg.block_size, np.random.default_rng(cfg.seed))
    val_rng = np.random.default_rng(cfg.seed + 1)
    val_batcher = Batcher(val_ids, cfg.batch_size, cfg.block_size, val_rng)
    val_batches = [val_batcher.next_batch() for _ in range(cfg.eval_iters)]  # drawn once, reused
    print(f"{len(text):,} characters, vocabulary of {tok.vocab_size}; {config}")
    print(f"{model.num_parameters():,} parameters; {cfg.max_iters} steps of {cfg.batch_size} "
          f"windows of {cfg.block_size} characters")

    history: dict[str, list] = {"train_loss": [], "lr": [],
                                "val": [(0, evaluate(model, val_batches))]}
    print(f"  step    0  validation loss {history['val'][0][1]:.4f} "
          f"(ln V = {math.log(tok.vocab_size):.4f})")
    for step in range(1, cfg.max_iters + 1):
        history["lr"].append(schedule.get_last_lr()[0])  # the rate this step uses
        x, y = batches.next_batch()
        _, loss = model(tl.Tensor(x), tl.Tensor(y))  # logits (B, T, V) and the mean loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # total norm capped at grad_clip
        opt.step()
        schedule.step()
        history["train_loss"].append(loss.item())
        if step % cfg.eval_interval == 0:
            history["val"].append((step, evaluate(model, val_batches)))
            print(f"  step {step:4d}  training loss {loss.item():.4f}  validation loss "
                  f"{history['val'][-1][1]:.4f}  lr {history['lr'][-1]:.2e}")
    return model, tok, ids, history


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo; ``--quick`` runs the same code on less data, as the tests do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny preset, fewer steps")
    args = parser.parse_args(argv)
    # the trainer's presets; the cpu preset's 2000 steps cut to 400
    cfg = (TrainConfig(**PRESETS["tiny"]) if args.quick
           else TrainConfig(**{**PRESETS["cpu"], "max_iters": 400, "eval_interval": 100}))
    model, tok, ids, history = train(cfg)
    first_val, last_val = history["val"][0][1], history["val"][-1][1]
    n_train = int(0.9 * len(ids))
    train_ids, val_ids = ids[:n_train], ids[n_train:]
    counts = np.ones((tok.vocab_size, tok.vocab_size))  # the counted bigram of step 6
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1)
    bigram = -np.log(counts / counts.sum(axis=1, keepdims=True))[val_ids[:-1], val_ids[1:]].mean()
    print(f"  for scale: the counted bigram of step 6 scores {bigram:.4f} on this validation split")

    model.eval()
    prompt = tl.Tensor(tok.encode("def ")[None])  # (1, 4): a batch of one prompt
    tl.manual_seed(0)
    sample = model.generate(prompt, max_new_tokens=200, temperature=0.8, top_k=20)
    print("a sample at temperature 0.8, top-k 20:\n  " + tok.decode(sample[0].numpy())
          .replace("\n", "\n  "))
    greedy = model.generate(prompt, max_new_tokens=40, temperature=0)
    uncached = model.generate(prompt, max_new_tokens=40, temperature=0, use_cache=False)

    print(f"the same loop with checkpoints, resume and a progress bar: tinygrad-lm train "
          f"--preset {'tiny' if args.quick else 'cpu'}")
    check(abs(first_val - math.log(tok.vocab_size)) < 0.5,
          "an untrained GPT scores within half a nat of ln V")
    check(last_val < first_val - 1.0, "training lowered the validation loss by over 1 nat")
    check(greedy.tolist() == uncached.tolist(), "greedy generation with and without the "
          "key/value cache writes the same text")


if __name__ == "__main__":
    main()
