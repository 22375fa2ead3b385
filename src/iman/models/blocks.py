"""Building blocks shared by several methods."""

from __future__ import annotations

from torch import nn

__all__ = ["double_conv"]


def double_conv(c_in: int, c_out: int, mid: int | None = None) -> nn.Sequential:
    """Two conv3×3-BN-ReLU layers (the U-net block); ``mid`` channels in between."""
    mid = mid or c_out
    return nn.Sequential(
        nn.Conv2d(c_in, mid, 3, padding=1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )
