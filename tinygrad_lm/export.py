"""Exporting a training run's model: the work behind ``tinygrad-lm export``.

``export_run(out)`` writes the run's checkpoint (its best, else its latest) as a Hugging
Face GPT-2 directory, ``out/safetensors/``: ``model.safetensors`` and ``config.json``,
which `GPT.from_pretrained` and Hugging Face's GPT2LMHeadModel read, and the run's own
tokenizer (GPT-2's ``vocab.json`` and ``merges.txt`` for a fine-tuned GPT-2, else
``tokenizer.tlm``), so that ``tinygrad-lm sample --init-from`` can turn ids
back into text. The folder is named after the format, beside the checkpoints it was
made from, which it never touches.
"""
from __future__ import annotations

import os
from pathlib import Path

from .models.pretrained import save_tokenizer
from .sample import load_model

FORMATS = ("safetensors",)


def export_run(out: str | os.PathLike[str], fmt: str = "safetensors") -> Path:
    """Write the model of the run in ``out`` to ``out/<fmt>/``; returns that directory."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    model, tokenizer = load_model(out)
    directory = model.save_pretrained(Path(out) / fmt)
    save_tokenizer(tokenizer, directory)
    return directory
