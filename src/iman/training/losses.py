"""Segmentation losses: the paper's Dice loss (Eq. 1) with an optional BCE term, and
:func:`build_loss`, which builds the one a config names (``train.loss``, registered in
:data:`iman.training.settings.LOSSES`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import reduce
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from iman.training.settings import LOSSES

if TYPE_CHECKING:
    from iman.training.settings import TrainConfig

__all__ = ["Loss", "SegLoss", "build_loss", "dice_loss"]

Loss = Callable[[Tensor, Tensor], Tensor]
"""A training loss: ``loss(logits, target)`` → scalar tensor."""


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

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> SegLoss:
        """The registry's ``dice`` entry: the node's ``bce_weight``."""
        return cls(cfg.bce_weight)

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        """Combined loss on one batch."""
        loss = dice_loss(logits, target, self.eps)
        if self.bce_weight:
            loss = loss + self.bce_weight * F.binary_cross_entropy_with_logits(
                logits.float(), target.float())
        return loss


def build_loss(cfg: TrainConfig) -> Loss:
    """The loss ``cfg.loss`` names: its :data:`~iman.training.settings.LOSSES` factory
    (``"module:attribute"``) called with ``cfg``."""
    module, _, attr = LOSSES[cfg.loss].partition(":")
    factory = reduce(getattr, attr.split("."), importlib.import_module(module))
    return factory(cfg)
