"""Sampling text from a trained checkpoint or pretrained weights: the work behind
``tinygrad-lm sample``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import backend
from .data import tokenizers
from .models.gpt import GPT, GPTConfig
from .models.pretrained import load_pretrained_with_tokenizer
from .serialization import load
from .tensor import Tensor
from .train import BEST_CHECKPOINT, CHECKPOINT, TrainingError


def read_checkpoint(out: str | Path) -> tuple[Path, dict[str, Any]]:
    """The path and contents of the run's best checkpoint in ``out``, else its latest."""
    out = Path(out)
    path = out / BEST_CHECKPOINT if (out / BEST_CHECKPOINT).exists() else out / CHECKPOINT
    if not path.exists():
        raise TrainingError(f"no checkpoint in {out}: train one first with "
                            f"`tinygrad-lm train --out {out}`")
    ckpt: dict[str, Any] = load(path)
    if ckpt.get("format") != "tinygrad_lm.gpt-checkpoint":
        raise TrainingError(f"{path} is not a tinygrad_lm GPT checkpoint")
    return path, ckpt


def load_model(out: str | Path, device: str | None = None) -> tuple[GPT, tokenizers.Tokenizer]:
    """The model and tokenizer of the run in ``out`` (its best checkpoint, else its latest)."""
    return model_from_checkpoint(read_checkpoint(out)[1], device)


def model_from_checkpoint(ckpt: dict[str, Any], device: str | None = None
                          ) -> tuple[GPT, tokenizers.Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer a checkpoint holds."""
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.to(backend.get_device(device)).eval()
    return model, tokenizers.tokenizer_from_dict(ckpt["tokenizer"])


def load_pretrained_model(path: str | os.PathLike[str], device: str | None = None
                          ) -> tuple[GPT, tokenizers.Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer of pretrained weights: see
    `models.pretrained.load_pretrained_with_tokenizer`."""
    model, tokenizer = load_pretrained_with_tokenizer(path)
    return model.to(backend.get_device(device)).eval(), tokenizer


def generate_text(model: GPT, tokenizer: tokenizers.Tokenizer,
                  prompt: str = "\n", max_new_tokens: int = 500, temperature: float = 0.8, top_k: int | None = None,
                  top_p: float | None = None, seed: int | None = None,
                  use_cache: bool = True, context: str = "slide") -> str:
    """The prompt followed by ``max_new_tokens`` sampled tokens, decoded to text.

    ``context`` is the policy past the model's window, as in ``GPT.generate``: ``"slide"``
    or the faster ``"halve"``."""
    if seed is not None:
        backend.manual_seed(seed)
    ids = tokenizer.encode(prompt or "\n")
    idx = Tensor(ids, dtype="int64", device=model.lm_head.weight.device).reshape(1, -1)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         use_cache=use_cache, context=context)
    return tokenizer.decode(out.numpy()[0])
