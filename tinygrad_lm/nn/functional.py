"""Functional forms of the layers and losses (``import tinygrad_lm.nn.functional as F``).

The hot ones (softmax, log_softmax, cross_entropy, layer_norm, rms_norm, gelu, swiglu,
attention) run fused kernels from ``tinygrad_lm.fused``; the rest are compositions of Tensor
ops.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .. import backend, fused
from ..tensor import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight^T + bias (fused.Linear); a batched input is folded into one (N, in) matrix:
    one GEMM.

    >>> from tinygrad_lm import Tensor
    >>> linear(Tensor([[1.0, 2.0]]), Tensor([[1.0, 1.0], [0.0, 2.0]]), Tensor([0.5, 0.0])).tolist()
    [[3.5, 4.0]]
    """
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                         f"{weight.shape} (expected last dim {weight.shape[1]})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} does not match weight of shape "
                         f"{weight.shape} (expected ({weight.shape[0]},))")
    params = (weight,) if bias is None else (weight, bias)
    if any(p.dtype != x.dtype for p in params):
        raise TypeError(f"linear: input is {x.dtype} but the parameters are "
                        f"{', '.join(str(p.dtype) for p in params)}; convert one of them")
    return fused.Linear.apply(x, weight, bias)


def relu(x: Tensor) -> Tensor:
    """``x.relu()``: max(x, 0); d/dx = [x > 0]."""
    return x.relu()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """``x.gelu(approximate)``: x Phi(x), or its tanh approximation; d/dx = Phi(x) + x phi(x)."""
    return x.gelu(approximate)


def softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """``x.softmax(axis)`` (or ``dim``, default -1): exp(x) / sum(exp(x));
    dx = y (dout - sum(dout y))."""
    return x.softmax(axis, dim=dim)


def log_softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """``x.log_softmax(axis)`` (or ``dim``, default -1): x - logsumexp(x);
    dx = dout - softmax(x) sum(dout)."""
    return x.log_softmax(axis, dim=dim)


def cross_entropy(logits: Tensor, targets: Any, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (N, C) or (N, C, d...) against integer targets (N) or (N, d...),
    as in PyTorch: ``mean`` averages over the targets that are not ``ignore_index``.

    d loss_i / d logits_i = softmax(logits_i) - onehot(target_i) (zero for ignored targets).
    With ``label_smoothing`` = s the target is (1 - s) onehot + s / C: the loss adds
    s (mean over classes of -log_softmax - nll), and its gradient s (onehot - 1 / C).

    >>> from tinygrad_lm import Tensor
    >>> logits = Tensor([[0.0, 0.0], [0.0, 0.0]])
    >>> round(cross_entropy(logits, [0, 1]).item(), 4)
    0.6931
    >>> [round(v, 4) for v in cross_entropy(logits, [0, -100], reduction="none").tolist()]
    [0.6931, 0.0]
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    targets = targets if isinstance(targets, Tensor) else Tensor(targets, device=logits.device)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, not {targets.dtype}")
    if logits.ndim < 2 or targets.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:1] + logits.shape[2:]}, got {targets.shape}")
    classes = logits.shape[1]
    if logits.ndim > 2:  # (N, C, d...) -> (N * d..., C)
        logits = logits.permute(0, *range(2, logits.ndim), 1).reshape(-1, classes)
    flat = targets.reshape(-1)
    counted = flat.data != ignore_index
    bad = ((flat.data < 0) | (flat.data >= classes)) & counted
    if bad.any():
        raise IndexError(f"cross_entropy: target {int(flat.data[bad][0])} is out of range for "
                         f"{classes} classes")
    count = int(counted.sum())
    if reduction != "none" and not label_smoothing and count:  # one node: losses and their sum
        return fused.CrossEntropy.apply(logits, flat, ignore_index=ignore_index,
                                        reduction=reduction, count=count)
    losses = fused.CrossEntropy.apply(logits, flat, ignore_index=ignore_index)
    if label_smoothing:
        kept = Tensor._make(counted)
        uniform = -logits.log_softmax(-1).mean(-1) * kept  # ignored targets add nothing
        losses = losses * (1.0 - label_smoothing) + uniform * label_smoothing
    if reduction == "none":
        return losses.reshape(*targets.shape)
    if reduction == "sum":
        return losses.sum()
    if count == 0:  # as in PyTorch: the mean over no targets is NaN, its gradient zero
        return losses.sum() * 0.0 + math.nan
    return losses.sum() * (1.0 / count)


def mse_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of (x - target)^2; d/dx = 2 (x - target) / n for the mean.

    >>> from tinygrad_lm import Tensor
    >>> mse_loss(Tensor([1.0, 3.0]), Tensor([0.0, 1.0])).item()
    2.5
    """
    diff = x - target
    return _reduce("mse_loss", diff * diff, reduction)


def l1_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of |x - target|; d/dx = sign(x - target) / n for the mean.

    >>> from tinygrad_lm import Tensor
    >>> l1_loss(Tensor([1.0, 3.0]), Tensor([0.0, 1.0])).item()
    1.5
    """
    return _reduce("l1_loss", (x - target).abs(), reduction)


def _reduce(op: str, losses: Tensor, reduction: str) -> Tensor:
    """The elementwise ``losses`` reduced as ``reduction`` says: "mean", "sum" or "none"."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = x.device_obj.rand(x.shape, x.dtype) >= p
    return x * Tensor._make(keep * x.dtype.type(1.0 / (1.0 - p)))


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing ``normalized_shape``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with "
                         f"normalized_shape {shape}")
    lead = x.shape[:x.ndim - len(shape)]
    flat = x.reshape(*lead, -1) if len(shape) != 1 else x
    w = weight.reshape(-1) if weight is not None and len(shape) != 1 else weight
    b = bias.reshape(-1) if bias is not None and len(shape) != 1 else bias
    out = fused.LayerNorm.apply(flat, w, b, eps=eps)
    return out.reshape(*x.shape) if len(shape) != 1 else out


def rms_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
             eps: float = 1e-5) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the trailing ``normalized_shape`` (fused.RMSNorm;
    PyTorch's ``F.rms_norm`` with eps 1e-5).

    >>> from tinygrad_lm import Tensor
    >>> [round(v, 3) for v in rms_norm(Tensor([[3.0, -4.0]]), 2).tolist()[0]]
    [0.849, -1.131]
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"rms_norm: input of shape {x.shape} does not end with "
                         f"normalized_shape {shape}")
    flat = x.reshape(*x.shape[:x.ndim - len(shape)], -1) if len(shape) != 1 else x
    w = weight.reshape(-1) if weight is not None and len(shape) != 1 else weight
    out = fused.RMSNorm.apply(flat, w, eps=eps)
    return out.reshape(*x.shape) if len(shape) != 1 else out


def swiglu(a: Tensor, b: Tensor) -> Tensor:
    """The gate of a SwiGLU MLP, silu(a) * b, in one fused op (fused.SwiGLU): in the MLP,
    a = w1(x) and b = w3(x).

    >>> from tinygrad_lm import Tensor
    >>> [round(v, 4) for v in swiglu(Tensor([0.0, 1.0]), Tensor([5.0, 2.0])).tolist()]
    [0.0, 1.4621]
    """
    if a.shape != b.shape:
        raise ValueError(f"swiglu: a of shape {a.shape} and b of shape {b.shape} must have the "
                         f"same shape")
    if a.dtype != b.dtype:
        raise TypeError(f"swiglu: a is {a.dtype} but b is {b.dtype}; convert one of them")
    return fused.SwiGLU.apply(a, b)


def rotary_tables(start: int, length: int, head_size: int, base: float = 10000.0,
                  dtype: Any = "float32", device: Any = None) -> tuple[Tensor, Tensor]:
    """cos and sin of the RoPE angles theta[t, i] = t * base^(-2i / head_size) for the
    positions t = start .. start + length - 1 and i < head_size / 2: two (length,
    head_size / 2) tensors. The angles are computed in float64, so a far position rounds
    like a near one."""
    if head_size % 2:
        raise ValueError(f"rotary_tables: head_size must be even, got {head_size}")
    xp = backend.get_device(device).xp
    inv_freq = base ** (-xp.arange(0, head_size, 2, dtype=xp.float64) / head_size)
    angles = xp.arange(start, start + length, dtype=xp.float64)[:, None] * inv_freq
    return Tensor._make(xp.cos(angles).astype(dtype)), Tensor._make(xp.sin(angles).astype(dtype))


def rotary_embedding(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """RoPE, rotate-half convention: each pair (x1, x2) = (x[..., i], x[..., i + d/2]) of the
    last axis (size d) turns by its angle theta, (x1 cos - x2 sin, x1 sin + x2 cos), with
    ``cos``, ``sin`` (T, d/2) from `rotary_tables` for x (..., T, d). A rotation is
    orthogonal, so d/dx is the rotation by -theta: (g1 cos + g2 sin, g2 cos - g1 sin).

    >>> from tinygrad_lm import Tensor
    >>> cos, sin = Tensor([[0.0]]), Tensor([[1.0]])  # a quarter turn
    >>> rotary_embedding(Tensor([[1.0, 2.0]]), cos, sin).tolist()
    [[-2.0, 1.0]]
    """
    half = x.shape[-1] // 2
    if x.ndim < 2 or x.shape[-1] % 2 or cos.shape != (x.shape[-2], half) or sin.shape != cos.shape:
        raise ValueError(f"rotary_embedding: x of shape {x.shape} needs an even last axis and "
                         f"cos, sin of shape {(x.shape[-2:-1] + (half,))}, got {cos.shape}, "
                         f"{sin.shape}")
    if cos.dtype != x.dtype or sin.dtype != x.dtype:
        raise TypeError(f"rotary_embedding: x is {x.dtype} but cos, sin are {cos.dtype}, "
                        f"{sin.dtype}; make the tables in x's dtype (rotary_tables(dtype=...))")
    if cos.device != x.device or sin.device != x.device:
        raise ValueError(f"rotary_embedding: x is on {x.device} but cos, sin on {cos.device}, "
                         f"{sin.device}")
    return fused.Rotary.apply(x, cos, sin)


def embedding(idx: Any, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (num, dim) picked by integer ids; the backward scatter-adds.

    >>> from tinygrad_lm import Tensor
    >>> embedding([2, 0], Tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    idx = idx if isinstance(idx, Tensor) else Tensor(idx, device=weight.device)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, not {idx.dtype}")
    if idx.numel() and (int(idx.data.min()) < 0 or int(idx.data.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: index out of range for {weight.shape[0]} embeddings "
                         f"(got min {int(idx.data.min())}, max {int(idx.data.max())})")
    return fused.Embedding.apply(weight, idx.data, num_embeddings=weight.shape[0])


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Any = None,
                                 is_causal: bool = False, dropout_p: float = 0.0,
                                 scale: float | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v over (..., L, d) queries and (..., S, d) keys.

    ``attn_mask``: a bool mask (True = may attend) or a float mask added to the scores, as in
    PyTorch; ``is_causal`` lets query i see keys 0..i. The mask carries no gradient.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: shapes q {q.shape}, k {k.shape}, "
                         f"v {v.shape} do not fit")
    mask, keep = _mask_and_dropout("scaled_dot_product_attention", q, q.shape[:-1],
                                   k.shape[-2], attn_mask, is_causal, dropout_p)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return fused.Attention.apply(q, k, v, mask=mask, scale=scale, keep=keep)


def multi_head_attention(qkv: Tensor, n_head: int, attn_mask: Any = None,
                         is_causal: bool = False, dropout_p: float = 0.0) -> Tensor:
    """Self-attention with ``n_head`` heads from packed projections: ``qkv`` (B, T, 3C) holds
    q, k and v side by side (as a GPT's ``c_attn`` makes them); returns the heads merged,
    (B, T, C). The same as splitting q, k, v into heads, ``scaled_dot_product_attention`` and
    merging, without the copies (fused.PackedAttention).
    """
    if qkv.ndim != 3 or qkv.shape[2] % (3 * n_head):
        raise ValueError(f"multi_head_attention: qkv must be (B, T, 3C) with C a multiple of "
                         f"n_head={n_head}, got shape {qkv.shape}")
    B, T, width = qkv.shape
    mask, keep = _mask_and_dropout("multi_head_attention", qkv, (B, n_head, T), T, attn_mask,
                                   is_causal, dropout_p)
    scale = 1.0 / math.sqrt(width // (3 * n_head))
    return fused.PackedAttention.apply(qkv, n_head=n_head, mask=mask, scale=scale, keep=keep)


def _mask_and_dropout(op: str, like: Tensor, query_shape: tuple[int, ...], source: int,
                      attn_mask: Any, is_causal: bool, dropout_p: float) -> tuple[Any, Any]:
    """The additive score mask (L, S) or as given, and the scaled dropout keep-mask of the
    weights (``query_shape`` + (S,)), each None when not needed."""
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}: pass either attn_mask or is_causal")
    xp, dtype = like.device_obj.xp, like.dtype
    length = query_shape[-1]
    mask = None
    if is_causal:
        mask = xp.triu(xp.full((length, source), -xp.inf, dtype=dtype), k=1)
    elif attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else xp.asarray(attn_mask)
        mask = xp.where(m, 0.0, -xp.inf).astype(dtype) if m.dtype == bool else m.astype(dtype)
    keep = None
    if dropout_p > 0.0:
        keep = (like.device_obj.rand(query_shape + (source,), dtype) >= dropout_p) \
            * dtype.type(1 / (1 - dropout_p))
    return mask, keep
