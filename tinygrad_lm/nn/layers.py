"""Layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout and the activations."""
from __future__ import annotations

import math
from typing import Any

from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features); PyTorch's default init
    U(-1/sqrt(in), 1/sqrt(in)) for W and b.

    >>> import tinygrad_lm as tl
    >>> tl.manual_seed(0); layer = Linear(3, 2)
    >>> layer(tl.zeros(4, 3)).shape, layer.weight.shape, layer
    ((4, 2), (2, 3), Linear(3, 2, bias=True))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(init.uniform_(Tensor.zeros(out_features, in_features), -bound, bound))
        self.bias = Parameter(init.uniform_(Tensor.zeros(out_features), -bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table of vectors looked up by integer id; N(0, 1) init.

    >>> import tinygrad_lm as tl
    >>> tl.manual_seed(0); Embedding(10, 4)(tl.Tensor([[1, 2, 3]])).shape
    (1, 3, 4)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(Tensor.randn(num_embeddings, embedding_dim))

    def forward(self, idx: Any) -> Tensor:
        return F.embedding(idx, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalise the last dimension to zero mean and unit variance, then scale and shift.

    >>> from tinygrad_lm import Tensor
    >>> [round(v, 3) for v in LayerNorm(2)(Tensor([[1.0, 3.0]])).tolist()[0]]
    [-1.0, 1.0]
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(Tensor.ones(dim))
        self.bias = Parameter(Tensor.zeros(dim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.dim, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, bias={self.bias is not None}"


class RMSNorm(Module):
    """Scale the last dimension to unit root-mean-square, then by a learned weight (no
    centering, no bias): x / sqrt(mean(x^2) + eps) * weight.

    >>> from tinygrad_lm import Tensor
    >>> [round(v, 3) for v in RMSNorm(2)(Tensor([[1.0, -1.0]])).tolist()[0]]
    [1.0, -1.0]
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(Tensor.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.dim, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class Dropout(Module):
    """Zero elements with probability p while training (scaling the rest); identity in eval."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    """max(x, 0) as a layer.

    >>> from tinygrad_lm import Tensor
    >>> ReLU()(Tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class GELU(Module):
    """x Phi(x) as a layer; ``approximate="tanh"`` uses the tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(self.approximate)


class Tanh(Module):
    """tanh(x) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()
