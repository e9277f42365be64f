"""Losses as modules (``nn.MSELoss()(x, target)``), each the matching ``functional`` call."""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class MSELoss(Module):
    """``F.mse_loss``: the mean (or sum, or none) of (x - target)^2.

    >>> from tinygrad_lm import Tensor
    >>> MSELoss()(Tensor([1.0, 3.0]), Tensor([0.0, 1.0])).item()
    2.5
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x: Tensor, target: Any) -> Tensor:
        return F.mse_loss(x, target, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class L1Loss(Module):
    """``F.l1_loss``: the mean (or sum, or none) of |x - target|."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x: Tensor, target: Any) -> Tensor:
        return F.l1_loss(x, target, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(Module):
    """``F.cross_entropy`` of logits against integer class targets.

    >>> from tinygrad_lm import Tensor
    >>> loss = CrossEntropyLoss(ignore_index=-1, label_smoothing=0.1)
    >>> loss, round(loss(Tensor([[0.0, 0.0], [1.0, 0.0]]), [0, -1]).item(), 4)
    (CrossEntropyLoss(ignore_index=-1, reduction='mean', label_smoothing=0.1), 0.6931)
    """

    def __init__(self, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index, self.reduction = ignore_index, reduction
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return F.cross_entropy(logits, targets, self.ignore_index, self.reduction,
                               self.label_smoothing)

    def extra_repr(self) -> str:
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")
