"""The benchmarked GPT sizes and the inputs built from them, the same in every worker.

Both libraries' workers draw their inputs here from the same seeds, so they time the same
work on the same numbers. NumPy is the only import (every worker has it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

CONFIGS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=32, batch_size=8),
    "baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64),
    "medium": dict(n_layer=12, n_head=12, n_embd=768, block_size=512, batch_size=16),  # GPU
}
VOCAB = 65
EPS = 1e-5  # layer norm's
MAX_NORM = 1.0  # gradient clipping's
ADAMW = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1}
"""The optimizer of ``train`` (TrainConfig's defaults, kept equal by a test); only 2-D
weights decay."""
MODEL_OPS = ("adamw", "clip_grad_norm")  # act on a whole model's parameters
FUSED_OPS = ("gelu", "layer_norm", "cross_entropy", "attention", "embedding") + MODEL_OPS


def model_kwargs(name: str) -> dict[str, Any]:
    """GPTConfig's fields for the config ``name`` (also what benchmarks/torch_gpt.py takes)."""
    c = CONFIGS[name]
    return dict(block_size=c["block_size"], vocab_size=VOCAB, n_layer=c["n_layer"],
                n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=True)


def tokens(name: str) -> int:
    """Tokens in one batch of the config ``name``."""
    return CONFIGS[name]["batch_size"] * CONFIGS[name]["block_size"]


def flops_per_step(name: str) -> float:
    """Matmul FLOPs of one training step: 6 per matmul weight per token (forward 2,
    backward 4) plus attention's 12 L T C per token (scores and weighted sum, forward and
    backward). Matmul weights: per layer c_attn (3C x C), c_proj (C x C) and the MLP's
    (4C x C twice), plus lm_head (V x C, tied to the token embedding). The position
    embedding, norms and biases take part in no matmul, so they are left out (nanoGPT
    leaves the position embedding out of its 6N too). The count of
    ``tinygrad_lm.models.gpt.training_flops_per_token``, written out here so that the torch
    worker never imports tinygrad_lm (a test keeps the two equal)."""
    c = CONFIGS[name]
    width = c["n_embd"]
    weights = c["n_layer"] * 12 * width * width + VOCAB * width
    return tokens(name) * (6 * weights + 12 * c["n_layer"] * c["block_size"] * width)


def step_matmuls(name: str) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The operand shapes of every matmul one training step of config ``name`` must do, the
    fewest there can be: for each Linear (per layer c_attn, c_proj and the MLP's two, then
    lm_head) y = x W^T, dx = dy W and dW = dy^T x over the B*T rows; for attention, batched
    over batch and heads, S = q k^T and O = P v forward, dP = dO v^T, dV = P^T dO, dq = dS k
    and dk = dS^T q backward. Their FLOPs are ``flops_per_step``'s (a test checks), and the
    time they take alone is a floor under any step built on the same matmuls."""
    c = CONFIGS[name]
    rows, width, heads = tokens(name), c["n_embd"], (c["batch_size"], c["n_head"])
    length, head = c["block_size"], c["n_embd"] // c["n_head"]
    products: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    linears = [(width, 3 * width), (width, width), (width, 4 * width), (4 * width, width)]
    for fan_in, fan_out in linears * c["n_layer"] + [(width, VOCAB)]:
        products += [((rows, fan_in), (fan_in, fan_out)), ((rows, fan_out), (fan_out, fan_in)),
                     ((fan_out, rows), (rows, fan_in))]
    scores_by_head = ((*heads, length, head), (*heads, head, length))  # q k^T, dO v^T
    weights_by_value = ((*heads, length, length), (*heads, length, head))  # P v, P^T dO, ...
    products += ([scores_by_head] * 2 + [weights_by_value] * 4) * c["n_layer"]
    return products


def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (B, T) and their next-token targets for the config ``name``."""
    c = CONFIGS[name]
    x = np.random.default_rng(0).integers(0, VOCAB, (c["batch_size"], c["block_size"]))
    return x, np.roll(x, -1, axis=1)


def op_inputs(op: str, name: str) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The inputs of a fused op at the config ``name``'s shapes, and the upstream gradient
    of its output (None: the output is a scalar loss). Float inputs get gradients; integer
    ones are ids. ``adamw`` and ``clip_grad_norm`` act on a model's parameters instead
    (the workers build the model)."""
    c = CONFIGS[name]
    B, T, C, heads = c["batch_size"], c["block_size"], c["n_embd"], c["n_head"]
    rng = np.random.default_rng(1)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    if op == "gelu":
        arrays, out = [normal(B * T, 4 * C)], (B * T, 4 * C)
    elif op == "layer_norm":
        arrays, out = [normal(B * T, C), normal(C), normal(C)], (B * T, C)
    elif op == "cross_entropy":
        return [normal(B * T, VOCAB), rng.integers(0, VOCAB, B * T)], None
    elif op == "attention":
        head = (B, heads, T, C // heads)
        arrays, out = [normal(*head) for _ in range(3)], head
    elif op == "embedding":
        arrays, out = [normal(VOCAB, C), rng.integers(0, VOCAB, (B, T))], (B, T, C)
    else:
        raise ValueError(f"op_inputs: no inputs for {op!r}")
    return arrays, normal(*out)


def op_shapes(op: str, name: str) -> list[list[int]]:
    """The shapes of ``op``'s inputs at config ``name`` (for the JSON rows; empty for the
    ops on a model's parameters, whose rows give the parameter count instead)."""
    if op in MODEL_OPS:
        return []
    return [list(a.shape) for a in op_inputs(op, name)[0]]
