"""Scoring a trained model on a whole split of its data: the work behind ``tinygrad-lm eval``.

Training estimates the loss on a few random batches; this reads every token of the split
once, in consecutive windows of the model's context, so the figure has no sampling noise.
Perplexity is exp(loss): the number of equally likely tokens the model is, on average,
choosing between.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import backend
from .config import no_grad
from .data import batches, corpora
from .data.tokenizers import Tokenizer
from .models.gpt import GPT
from .sample import model_from_checkpoint, read_checkpoint
from .tensor import Tensor


@no_grad()
def split_loss(model: GPT, ids: Any, block_size: int, batch_size: int = 64,
               device: str | None = None) -> tuple[float, int]:
    """The mean next-token cross-entropy over consecutive, non-overlapping windows of
    ``block_size`` tokens covering ``ids``, and the number of tokens predicted."""
    windows = (len(ids) - 1) // block_size
    if windows < 1:
        raise ValueError(f"the split has {len(ids)} tokens, fewer than one window of "
                         f"{block_size} + 1")
    total, count = 0.0, 0
    for start in range(0, windows, batch_size):
        rows = range(start, min(windows, start + batch_size))
        x = [ids[r * block_size:(r + 1) * block_size] for r in rows]
        y = [ids[r * block_size + 1:(r + 1) * block_size + 1] for r in rows]
        _, loss = model(Tensor(x, dtype="int64", device=device),
                        Tensor(y, dtype="int64", device=device))
        total += loss.item() * len(x) * block_size
        count += len(x) * block_size
    return total / count, count


def split_ids(text: str, tokenizer: Tokenizer, split: str,
              val_fraction: float = batches.DEFAULT_VAL_FRACTION) -> Any:
    """The token ids of ``split`` of ``text`` as training cut it: validation is the last
    ``val_fraction`` of the tokens."""
    ids = tokenizer.encode(text)
    n_val = int(round(len(ids) * val_fraction))
    return ids[len(ids) - n_val:] if split == "val" else ids[:len(ids) - n_val]


def evaluate_run(out: str | Path, data: str | None = None, split: str = "val",
                 batch_size: int = 64, device: str | None = None) -> dict[str, Any]:
    """The loss and perplexity of the run in ``out`` on the whole ``split`` of ``data`` (by
    default the corpus it trained on), tokenized with the run's own tokenizer."""
    if split not in batches.SPLITS:
        raise ValueError(f"--split must be one of {', '.join(batches.SPLITS)}, got {split!r}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    path, ckpt = read_checkpoint(out)
    model, tokenizer = model_from_checkpoint(ckpt, device)
    spec = data if data is not None else ckpt["train_config"]["data"]
    ids = split_ids(corpora.load_corpus(spec), tokenizer, split)
    loss, tokens = split_loss(model, ids, model.config.block_size, batch_size,
                              backend.get_device(device).name)
    return {"checkpoint": str(path), "iter": ckpt.get("iter"), "data": spec, "split": split,
            "loss": loss, "perplexity": math.exp(loss), "tokens": tokens}
