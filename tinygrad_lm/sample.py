"""Sampling text from a trained checkpoint or pretrained weights: the work behind
``tinygrad-lm sample``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import backend
from .data import tokenizers
from .data.gpt2_tokenizer import GPT2Tokenizer
from .models.gpt import GPT, GPTConfig
from .models.pretrained import resolve_weights
from .serialization import load
from .tensor import Tensor
from .train import BEST_CHECKPOINT, CHECKPOINT, TrainingError

# a run's own tokenizer, written beside its exported weights by `tinygrad-lm export`
TOKENIZER_FILE = "tokenizer.tlm"


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
                          ) -> tuple[GPT, tokenizers.Tokenizer | GPT2Tokenizer]:
    """The model of ``GPT.from_pretrained(path)`` and the tokenizer beside its weights:
    GPT-2's (``vocab.json``, ``merges.txt``) or a run's (``tokenizer.tlm``)."""
    weights = resolve_weights(path)
    directory = weights.parent
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        tokenizer = GPT2Tokenizer.from_files(directory / "vocab.json", directory / "merges.txt")
    elif (directory / TOKENIZER_FILE).is_file():
        tokenizer = tokenizers.tokenizer_from_dict(load(directory / TOKENIZER_FILE))
    else:
        raise TrainingError(f"no tokenizer beside {weights}: it needs vocab.json and "
                            f"merges.txt (GPT-2's) or {TOKENIZER_FILE} (tinygrad-lm export)")
    model = GPT.from_pretrained(weights).to(backend.get_device(device)).eval()
    return model, tokenizer


def generate_text(model: GPT, tokenizer: tokenizers.Tokenizer | GPT2Tokenizer,
                  prompt: str = "\n", max_new_tokens: int = 500, temperature: float = 0.8, top_k: int | None = None,
                  top_p: float | None = None, seed: int | None = None,
                  use_cache: bool = True, context: str = "slide") -> str:
    """The prompt followed by ``max_new_tokens`` sampled tokens, decoded to text.

    ``context`` is the policy past the model's window, as in ``GPT.generate``: ``"slide"``
    or the faster ``"halve"``."""
    if seed is not None:
        backend.manual_seed(seed)
    ids = tokenizer.encode(prompt or "\n")  # an array, or a list from GPT-2's tokenizer
    idx = Tensor(ids, dtype="int64", device=model.lm_head.weight.device).reshape(1, -1)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         use_cache=use_cache, context=context)
    return tokenizer.decode(out.numpy()[0])
