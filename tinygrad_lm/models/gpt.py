"""A GPT language model: the decoder-only transformer of GPT-2, with nanoGPT's names.

Pre-LayerNorm blocks (attention, then a 4x GELU MLP, each added to the residual stream),
learned position embeddings, and an ``lm_head`` that shares its weight with the token
embedding. Parameter names match nanoGPT's, so state_dicts move between the two.

Llama's choices are options of `GPTConfig`: rotary position embeddings (``pos_emb="rope"``,
no ``wpe``), RMSNorm (``norm="rmsnorm"``), the SwiGLU MLP (``mlp="swiglu"``, layers
``mlp.w1``, ``mlp.w3``, ``mlp.c_proj``) and grouped-query attention (``n_kv_head``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
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

    Llama's options (the defaults keep nanoGPT's architecture and state_dict names):
    ``pos_emb`` ``"learned"`` (``wpe``) or ``"rope"`` (rotary, base 10000, on q and k; a
    RoPE model reads any length, each position attending to the last ``block_size``);
    ``norm`` ``"layernorm"`` or ``"rmsnorm"`` (a weight, no bias, eps 1e-5); ``mlp``
    ``"gelu"`` (4x) or ``"swiglu"`` (`swiglu_hidden_size`); ``n_kv_head``: key/value heads,
    each shared by ``n_head / n_kv_head`` query heads (None: ``n_head``).
    """

    block_size: int = 256
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    gelu_approximate: str = "none"
    pos_emb: str = "learned"
    norm: str = "layernorm"
    mlp: str = "gelu"
    n_kv_head: int | None = None

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
        for name, choices in (("pos_emb", ("learned", "rope")), ("norm", ("layernorm", "rmsnorm")),
                              ("mlp", ("gelu", "swiglu"))):
            if getattr(self, name) not in choices:
                raise ValueError(f"GPTConfig: {name} must be {' or '.join(map(repr, choices))}, "
                                 f"got {getattr(self, name)!r}")
        if self.n_kv_head is not None and (self.n_kv_head < 1 or self.n_head % self.n_kv_head):
            raise ValueError(f"GPTConfig: n_kv_head ({self.n_kv_head}) must divide n_head "
                             f"({self.n_head})")
        if self.pos_emb == "rope" and self.head_size % 2:
            raise ValueError(f"GPTConfig: rope needs an even head size, got n_embd / n_head = "
                             f"{self.head_size}")

    @property
    def head_size(self) -> int:
        """The width of one attention head: n_embd / n_head."""
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads: ``n_kv_head``, or ``n_head`` when it is None."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head


def training_flops_per_token(config: GPTConfig) -> int:
    """Matmul FLOPs of one training step per token (nanoGPT's count): 6 per matmul weight
    (forward 2, backward 4) plus attention's 12 L T C (scores and weighted sum, forward and
    backward, at T = block_size). The weights: c_attn, c_proj and the MLP of every layer,
    and lm_head (tied to wte); position embeddings, norms and biases do no matmul."""
    c = config.n_embd
    mlp = 3 * swiglu_hidden_size(c) * c if config.mlp == "swiglu" else 8 * c * c
    per_layer = c * (c + 2 * config.kv_heads * config.head_size) + c * c + mlp
    weights = config.n_layer * per_layer + config.vocab_size * c
    return 6 * weights + 12 * config.n_layer * config.block_size * c


def swiglu_hidden_size(n_embd: int) -> int:
    """The SwiGLU MLP's width: 8 n_embd / 3 (its three matrices then hold as many weights as
    the 4x GELU MLP's two), rounded up to a multiple of 32."""
    return 32 * -(-8 * n_embd // 96)


class KVCache:
    """Keys and values of the last ``capacity`` positions, for one attention layer.

    Generation feeds one new position per step; its query attends over all cached keys, so a
    step costs O(T) instead of recomputing the whole O(T^2) prefix. Position p lives in slot
    p % capacity, so once ``capacity`` positions are cached each new one replaces the oldest
    (the rolling cache of a RoPE model past its window). The slots are then out of order,
    which does not matter: a step's query comes after every cached key, so it attends
    without a mask, and attention without a mask does not depend on the order of the keys.
    """

    def __init__(self, batch: int, n_kv_head: int, capacity: int, head_size: int,
                 dtype: Any, device: backend.Device) -> None:
        shape = (batch, n_kv_head, capacity, head_size)
        self.xp = device.xp
        self.keys = self.xp.zeros(shape, dtype=dtype)
        self.values = self.xp.zeros(shape, dtype=dtype)
        self.length = 0  # positions seen so far

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``k, v`` (B, nkv, T, hs) of the next T positions (the last ``capacity`` of
        them); return the keys and values of every cached position, (B, nkv, t, hs)."""
        T, capacity = k.shape[2], self.keys.shape[2]
        kept = min(T, capacity)
        slots = (self.length + T - kept + self.xp.arange(kept)) % capacity
        self.keys[:, :, slots] = k.data[:, :, T - kept:]
        self.values[:, :, slots] = v.data[:, :, T - kept:]
        self.length += T
        filled = min(self.length, capacity)
        return Tensor._make(self.keys[:, :, :filled]), Tensor._make(self.values[:, :, :filled])


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and the past: the last
    ``block_size`` positions (a sequence longer than that exists only with RoPE). With
    ``n_kv_head`` < ``n_head`` (grouped-query attention), c_attn makes ``n_kv_head`` key and
    value heads, and query head h uses key/value head h // (n_head / n_kv_head)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_size = config.n_head, config.kv_heads, config.head_size
        kv_width = self.n_kv_head * self.head_size
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * kv_width, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout, self.window = config.dropout, config.block_size

    def forward(self, x: Tensor, cache: KVCache | None = None,
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(B, T, C) in and out; with ``cache``, ``x`` holds only the new positions; ``rope``
        is the (cos, sin) of their angles (`F.rotary_tables`), for a RoPE model."""
        dropout = self.dropout if self.training else 0.0
        B, T, C = x.shape
        if cache is None and rope is None and self.n_kv_head == self.n_head:
            # nanoGPT's model in training: one fused op from c_attn's (B, T, 3C) to merged heads
            y = F.multi_head_attention(self.c_attn(x), self.n_head, is_causal=True,
                                       dropout_p=dropout)
            return self.resid_dropout(self.c_proj(y))
        hs, kv_width = self.head_size, self.n_kv_head * self.head_size
        q, k, v = self.c_attn(x).split([C, kv_width, kv_width], axis=2)
        q = q.reshape(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.reshape(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.reshape(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if rope is not None:  # q and k turn by their positions' angles; v carries no position
            q, k = F.rotary_embedding(q, *rope), F.rotary_embedding(k, *rope)
        fresh = cache is None or cache.length == 0  # the queries see only these T positions
        if cache is not None:
            cached_k, cached_v = cache.append(k, v)  # (B, nkv, t, hs), t = cached positions
            if not fresh:
                if T != 1:
                    raise ValueError("CausalSelfAttention: after the prefill, a cache takes one "
                                     f"position at a time, got {T}")
                k, v = cached_k, cached_v
        groups = self.n_head // self.n_kv_head
        k, v = _repeat_heads(k, groups), _repeat_heads(v, groups)  # (B, nh, t, hs)
        # a cached step's query comes after every cached key: no mask; else causal, and past
        # the window (RoPE only) each position sees the last `window` positions
        mask = _window_mask(T, self.window, x.device) if fresh and T > self.window else None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                           is_causal=fresh and 1 < T <= self.window)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))


def _repeat_heads(x: Tensor, groups: int) -> Tensor:
    """(B, nkv, t, hs) -> (B, nkv * groups, t, hs): each key/value head serves ``groups``
    consecutive query heads (the gradient of the copies adds up in expand's backward)."""
    if groups == 1:
        return x
    B, n_kv, t, hs = x.shape
    return x.unsqueeze(2).expand(B, n_kv, groups, t, hs).reshape(B, n_kv * groups, t, hs)


def _window_mask(length: int, window: int, device: str) -> Tensor:
    """(length, length) bools: position i sees position j when i - window < j <= i."""
    i = Tensor.arange(length, device=device).data[:, None]
    j = Tensor.arange(length, device=device).data[None, :]
    return Tensor._make((j <= i) & (j > i - window))


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


class SwiGLUMLP(nn.Module):
    """Llama's feed-forward: c_proj(silu(w1 x) * w3 x), `swiglu_hidden_size` wide."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = swiglu_hidden_size(config.n_embd)
        self.w1 = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.w3 = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) in and out: c_proj(swiglu(w1(x), w3(x))), then dropout."""
        return self.dropout(self.c_proj(F.swiglu(self.w1(x), self.w3(x))))


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd)
    return nn.LayerNorm(config.n_embd, bias=config.bias)


class Block(nn.Module):
    """One transformer layer: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = _norm(config)
        self.mlp = SwiGLUMLP(config) if config.mlp == "swiglu" else MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None,
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(B, T, C) in and out: the residual stream after this layer."""
        x = x + self.attn(self.ln_1(x), cache, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The language model: token ids (B, T) in, next-token logits (B, T, vocab_size) out."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        layers = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.pos_emb == "learned":
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(dict(
            **layers,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=_norm(config),
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
            elif p.ndim == 2:  # Linear and Embedding weights; the norms keep their ones
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

    @no_grad()
    def crop_block_size(self, block_size: int) -> None:
        """Shorten the context window to ``block_size`` (to fine-tune pretrained weights on
        shorter, cheaper sequences, as nanoGPT does): learned positions keep their first
        ``block_size`` rows; every attention layer sees that many positions."""
        if not 1 <= block_size <= self.config.block_size:
            raise ValueError(f"GPT.crop_block_size: block_size must be between 1 and the "
                             f"model's {self.config.block_size}, got {block_size}")
        self.config = replace(self.config, block_size=block_size)
        if self.config.pos_emb == "learned":
            wpe = self.transformer.wpe
            wpe.weight = nn.Parameter(wpe.weight.data[:block_size].copy())
            wpe.num_embeddings = block_size
        for block in self.transformer.h:
            block.attn.window = block_size

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embedding (as nanoGPT reports)."""
        n = super().num_parameters()
        if non_embedding and self.config.pos_emb == "learned":
            return n - self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: Any, targets: Any = None,
                caches: list[KVCache] | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, vocab_size) for token ids ``idx`` (B, T), and the mean cross-entropy
        against ``targets`` (B, T) when given (positions with target -1 are ignored).

        With learned position embeddings T is at most ``block_size``; a RoPE model takes any
        T, each position attending to itself and the ``block_size - 1`` before it."""
        idx = idx if isinstance(idx, Tensor) else Tensor(idx, device=self.lm_head.weight.device)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT.forward: idx must be integer token ids of shape (B, T), got "
                             f"shape {idx.shape} and dtype {idx.dtype}")
        B, T = idx.shape
        start = caches[0].length if caches else 0
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.pos_emb == "learned":
            if start + T > self.config.block_size:
                raise ValueError(f"GPT.forward: sequence length {start + T} exceeds block_size "
                                 f"{self.config.block_size}")
            x = x + self.transformer.wpe(Tensor.arange(start, start + T, device=idx.device))
        else:  # the angles of positions start .. start + T - 1, for every layer's q and k
            rope = F.rotary_tables(start, T, self.config.head_size, dtype=x.dtype,
                                   device=idx.device)  # 2 x (T, hs / 2)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, caches[i] if caches else None, rope)
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

        - ``"slide"``: the context is always the last ``block_size`` tokens. With learned
          position embeddings, past the window every step shifts all positions, so the cache
          is refilled from the whole window at every step and no longer saves work. With
          RoPE, attention depends only on how far apart two positions are, so the cache
          rolls instead: it keeps the last ``block_size`` positions of each layer and each
          step replaces the oldest, never refilling. Every layer then attends over the last
          ``block_size`` positions (sliding-window attention); a token's logits depend on
          the last ``n_layer * (block_size - 1) + 1`` tokens, which is what runs without
          the cache.
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
        block, n_layer = self.config.block_size, self.config.n_layer
        rolling = self.config.pos_emb == "rope" and context == "slide"
        # tokens the context keeps when it would outgrow the window: all but one, or half
        keep = block if context == "slide" else max(1, block // 2)
        start = 0  # the context is idx[:, start:]
        caches: list[KVCache] | None = None
        for _ in range(max_new_tokens):
            if rolling:  # the tokens the next one depends on, through every layer's window
                start, overflow = max(0, idx.shape[1] - (n_layer * (block - 1) + 1)), False
            else:
                overflow = idx.shape[1] - start > block  # the context outgrew the window
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
        return [KVCache(batch, c.kv_heads, c.block_size, c.head_size, w.dtype, w.device_obj)
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
