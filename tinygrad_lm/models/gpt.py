"""A GPT language model: the decoder-only transformer of GPT-2, with nanoGPT's names.

Pre-LayerNorm blocks (attention, then a 4x GELU MLP, each added to the residual stream),
learned position embeddings, and an ``lm_head`` that shares its weight with the token
embedding. Parameter names match nanoGPT's, so state_dicts move between the two.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend, nn
from ..config import no_grad
from ..nn import functional as F
from ..tensor import Tensor, cat


@dataclass
class GPTConfig:
    """Model size. The defaults are nanoGPT's character-level Shakespeare model.

    ``gelu_approximate`` is the MLP's GELU: ``"none"`` (exact, nanoGPT's) or ``"tanh"``
    (GPT-2's ``gelu_new``, needed to reproduce its logits).
    """

    block_size: int = 256
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    gelu_approximate: str = "none"

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be a multiple of "
                             f"n_head ({self.n_head})")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig: {name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f"GPTConfig: gelu_approximate must be 'none' or 'tanh', got "
                             f"{self.gelu_approximate!r}")


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    Generation feeds one new position per step; its query attends over all cached keys, so a
    step costs O(T) instead of recomputing the whole O(T^2) prefix.
    """

    def __init__(self, batch: int, n_head: int, block_size: int, head_size: int,
                 dtype: Any, device: backend.Device) -> None:
        shape = (batch, n_head, block_size, head_size)
        self.keys = device.xp.zeros(shape, dtype=dtype)
        self.values = device.xp.zeros(shape, dtype=dtype)
        self.length = 0

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``k, v`` (B, nh, T, hs) after the cached positions; return all of them."""
        start, stop = self.length, self.length + k.shape[2]
        self.keys[:, :, start:stop] = k.data
        self.values[:, :, start:stop] = v.data
        self.length = stop
        return Tensor._make(self.keys[:, :, :stop]), Tensor._make(self.values[:, :, :stop])


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and the past."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        """(B, T, C) in and out; with ``cache``, ``x`` holds only the new positions."""
        dropout = self.dropout if self.training else 0.0
        if cache is None:  # training: one fused op from c_attn's (B, T, 3C) to merged heads
            y = F.multi_head_attention(self.c_attn(x), self.n_head, is_causal=True,
                                       dropout_p=dropout)
            return self.resid_dropout(self.c_proj(y))
        B, T, C = x.shape  # generation: split the heads, to keep their keys and values
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, axis=2)  # 3 x (B, T, C)
        q = q.reshape(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.reshape(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.reshape(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        # a cached step's queries come after every cached key, so only a prefill needs a mask
        causal = cache.length == 0 and T > 1
        k, v = cache.append(k, v)  # (B, nh, t, hs) with t = all positions so far
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: expand 4x, GELU, project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(config.gelu_approximate)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) in and out: c_proj(gelu(c_fc(x))), then dropout."""
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One transformer layer: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        """(B, T, C) in and out: the residual stream after this layer."""
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The language model: token ids (B, T) in, next-token logits (B, T, vocab_size) out."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one (V, C) matrix
        self._init_weights()

    @no_grad()
    def _init_weights(self) -> None:
        """N(0, 0.02) for weights and embeddings, zero biases; the projections into the
        residual stream get std 0.02 / sqrt(2 n_layer) so its variance does not grow with depth."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.data[...] = 0
            elif p.ndim == 2:  # Linear and Embedding weights; LayerNorm keeps its ones
                std = residual_std if name.endswith("c_proj.weight") else 0.02
                p.data[...] = Tensor.randn(*p.shape, dtype=p.dtype, device=p.device).data * std

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], dropout: float = 0.0) -> GPT:
        """GPT-2 from a Hugging Face directory (``model.safetensors`` and ``config.json``),
        its ``model.safetensors``, or a name (``gpt2``, ``gpt2-medium``, ``gpt2-large``,
        ``gpt2-xl``: downloaded once into the cache). See `models.pretrained`."""
        from .pretrained import load_pretrained
        return load_pretrained(path, dropout)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write this model as a Hugging Face GPT-2 directory that `from_pretrained` (and
        Hugging Face's GPT2LMHeadModel) reads back; returns the directory."""
        from .pretrained import save_pretrained
        return save_pretrained(self, directory)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embedding (as nanoGPT reports)."""
        n = super().num_parameters()
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: Any, targets: Any = None,
                caches: list[KVCache] | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, vocab_size) for token ids ``idx`` (B, T), and the mean cross-entropy
        against ``targets`` (B, T) when given (positions with target -1 are ignored)."""
        idx = idx if isinstance(idx, Tensor) else Tensor(idx, device=self.lm_head.weight.device)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT.forward: idx must be integer token ids of shape (B, T), got "
                             f"shape {idx.shape} and dtype {idx.dtype}")
        B, T = idx.shape
        start = caches[0].length if caches else 0
        if start + T > self.config.block_size:
            raise ValueError(f"GPT.forward: sequence length {start + T} exceeds block_size "
                             f"{self.config.block_size}")
        pos = Tensor.arange(start, start + T, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, caches[i] if caches else None)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        targets = targets if isinstance(targets, Tensor) else Tensor(targets, device=idx.device)
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    @no_grad()
    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 use_cache: bool = True, context: str = "slide") -> Tensor:
        """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + new).

        ``temperature=0`` picks the most likely token. The model sees at most ``block_size``
        tokens, its *context*; ``context`` says what happens when the text outgrows it:

        - ``"slide"``: the context is always the last ``block_size`` tokens. Past the window
          every step shifts all positions, so the cache is refilled from the whole window at
          every step and the cache no longer saves work.
        - ``"halve"``: the context keeps only its last ``block_size // 2`` tokens (positions
          restart at 0) and then grows by one token per step until the window is full again.
          The cache is refilled once per halving, so it stays fast past the window. A prompt
          longer than ``block_size`` is halved the same way before the first step.

        With ``use_cache`` each step feeds only the newest token and reuses cached keys and
        values; without it each step runs the model over the same context, so for either
        policy cached and uncached greedy outputs are identical.
        """
        if context not in ("slide", "halve"):
            raise ValueError(f"GPT.generate: context must be 'slide' or 'halve', got {context!r}")
        idx = idx if isinstance(idx, Tensor) else Tensor(idx, device=self.lm_head.weight.device)
        if idx.ndim == 1:
            idx = idx.unsqueeze(0)
        if idx.shape[1] == 0:
            raise ValueError("GPT.generate: the prompt needs at least one token")
        block = self.config.block_size
        # tokens the context keeps when it would outgrow the window: all but one, or half
        keep = block if context == "slide" else max(1, block // 2)
        start = 0  # the context is idx[:, start:]
        caches: list[KVCache] | None = None
        for _ in range(max_new_tokens):
            overflow = idx.shape[1] - start > block  # the context no longer fits the window
            if overflow:  # cut it: its tokens get new positions, from 0
                start = idx.shape[1] - keep
            if not use_cache:
                logits, _ = self(idx[:, start:])
            elif caches is None or overflow:  # new positions: (re)fill from the context
                caches = self._new_caches(idx.shape[0])
                logits, _ = self(idx[:, start:], caches=caches)
            else:
                logits, _ = self(idx[:, -1:], caches=caches)
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p)  # (B, 1)
            idx = cat([idx, next_id], axis=1)
        return idx

    def _new_caches(self, batch: int) -> list[KVCache]:
        c, w = self.config, self.lm_head.weight
        return [KVCache(batch, c.n_head, c.block_size, c.n_embd // c.n_head, w.dtype, w.device_obj)
                for _ in range(c.n_layer)]


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None) -> Tensor:
    """One token id per row of ``logits`` (B, V): greedy at temperature 0, else sampled from
    softmax(logits / temperature) restricted to the top-k tokens and the top-p nucleus."""
    if temperature < 0:
        raise ValueError(f"sample: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"sample: top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"sample: top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(axis=-1, keepdims=True)
    device = logits.device_obj
    xp = device.xp
    scores = logits.data / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = xp.partition(scores, -top_k, axis=-1)[:, -top_k:].min(axis=-1, keepdims=True)
        scores = xp.where(scores < kth, -xp.inf, scores)
    probs = Tensor._make(scores).softmax(axis=-1).data
    if top_p is not None and top_p < 1.0:
        order = xp.argsort(-probs, axis=-1)
        sorted_probs = xp.take_along_axis(probs, order, axis=-1)
        # drop a token when the more likely ones before it already cover top_p
        drop_sorted = xp.cumsum(sorted_probs, axis=-1) - sorted_probs >= top_p
        drop = xp.zeros_like(drop_sorted)
        xp.put_along_axis(drop, order, drop_sorted, axis=-1)
        probs = xp.where(drop, 0, probs)
        probs = probs / probs.sum(axis=-1, keepdims=True)
    cumulative = xp.cumsum(probs, axis=-1)
    u = device.rand((probs.shape[0], 1), probs.dtype) * cumulative[:, -1:]
    choice = (cumulative <= u).sum(axis=-1, keepdims=True)
    return Tensor._make(xp.minimum(choice, probs.shape[-1] - 1).astype(xp.int64))
