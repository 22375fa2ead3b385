"""Margin injection helpers shared by every model.

Two modes (config ``model.injection``):

* ``gate_skips`` (what the IMAN authors' code does): the margin multiplies encoder skip
  features, resized to each; ``None`` means no gating, so loop 0 runs the same architecture.
* ``input_channel`` (the paper's wording): the margin is one extra input channel; in loop 0
  a constant placeholder (all ones) fills it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InputChannelMargin", "gate"]


def gate(feature: Tensor, margin: Tensor | None) -> Tensor:
    """Multiply ``feature`` by ``margin`` bilinearly resized to its spatial size."""
    if margin is None:
        return feature
    if margin.shape[-2:] != feature.shape[-2:]:
        margin = F.interpolate(margin, size=feature.shape[-2:], mode="bilinear",
                               align_corners=False)
    return feature * margin.to(feature.dtype)


class InputChannelMargin(nn.Module):
    """Wrap a model so the margin enters as its last input channel (ones when absent)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        if hasattr(inner, "adversary"):
            self.adversary = inner.adversary

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor | dict[str, Tensor]:
        """Append the margin (or a ones placeholder) and run the inner model ungated."""
        if margin is None:
            margin = torch.ones_like(x[:, :1])
        return self.inner(torch.cat([x, margin.to(x.dtype)], dim=1), None)

    def loss(self, out: Tensor | dict[str, Tensor], target: Tensor, base) -> Tensor:
        """Delegate to the inner model's loss when it has one."""
        if hasattr(self.inner, "loss"):
            return self.inner.loss(out, target, base)
        logits = out["logits"] if isinstance(out, dict) else out
        return base(logits, target)

    def adversary_loss(self, out: Tensor | dict[str, Tensor], target: Tensor) -> Tensor:
        """Delegate the adversary's loss to the inner model."""
        return self.inner.adversary_loss(out, target)
