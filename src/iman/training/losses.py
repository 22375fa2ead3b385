"""Segmentation losses: the paper's Dice loss (Eq. 1) with an optional BCE term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SegLoss", "dice_loss"]


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """Eq. 1: ``1 - (2Σpy + ε) / (Σp + Σy + ε)`` per image on sigmoid probabilities, averaged."""
    p = torch.sigmoid(logits.float()).flatten(1)
    y = target.float().flatten(1)
    dice = (2 * (p * y).sum(1) + eps) / (p.sum(1) + y.sum(1) + eps)
    return (1 - dice).mean()


class SegLoss:
    """Dice loss plus ``bce_weight`` × BCE-with-logits; callable ``(logits, target)``."""

    def __init__(self, bce_weight: float = 0.0, eps: float = 1e-5) -> None:
        self.bce_weight = bce_weight
        self.eps = eps

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        """Combined loss on one batch."""
        loss = dice_loss(logits, target, self.eps)
        if self.bce_weight:
            loss = loss + self.bce_weight * F.binary_cross_entropy_with_logits(
                logits.float(), target.float())
        return loss
