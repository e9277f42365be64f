"""Parameter initialisers, drawing from the library's random generator (``tl.manual_seed``)."""
from __future__ import annotations

from ..config import no_grad
from ..tensor import Tensor


@no_grad()
def uniform_(t: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Fill ``t`` in place with U(low, high)."""
    t.data[...] = t.device_obj.rand(t.shape, t.dtype) * (high - low) + low
    return t


@no_grad()
def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill ``t`` in place with N(mean, std^2)."""
    t.data[...] = t.device_obj.randn(t.shape, t.dtype) * std + mean
    return t


@no_grad()
def zeros_(t: Tensor) -> Tensor:
    """Fill ``t`` in place with zeros (no graph is recorded).

    >>> from tinygrad_lm import Tensor
    >>> zeros_(Tensor([1.0, 2.0])).tolist()
    [0.0, 0.0]
    """
    t.data[...] = 0
    return t


@no_grad()
def ones_(t: Tensor) -> Tensor:
    """Fill ``t`` in place with ones (no graph is recorded)."""
    t.data[...] = 1
    return t
