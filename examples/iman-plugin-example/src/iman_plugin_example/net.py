"""The example network: a small U-net whose encoder skips are multiplied by the margin.

The IMAN model contract: ``forward(x, margin=None)`` takes the channel concatenation of the
consumed modalities ``(B, C, H, W)`` and an optional margin ``(B, 1, H, W)`` in ``[0, 1]``
(``None``: no gating, loop 0) and returns logits ``(B, 1, H, W)``.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ExampleUNet", "build_example_unet"]


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv + GroupNorm + ReLU (group statistics: independent of the batch, which
    is 4 cases in the demo; with BatchNorm it learned far slower at the demo step)."""
    groups = 4 if cout % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
        nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
        nn.ReLU(True),
    )


def _gate(skip: Tensor, margin: Tensor | None) -> Tensor:
    """``skip`` times the margin resized to it (unchanged without a margin)."""
    if margin is None:
        return skip
    margin = F.interpolate(margin.to(skip.dtype), size=skip.shape[-2:], mode="bilinear",
                           align_corners=False)
    return skip * margin


class ExampleUNet(nn.Module):
    """U-net with ``len(widths)`` levels; every skip is gated by the margin."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList(_block(a, b) for a, b in pairwise((in_channels, *widths)))
        pairs = list(pairwise(widths[::-1]))  # (deeper, shallower) widths, deepest first
        self.up = nn.ModuleList(nn.ConvTranspose2d(a, b, 2, stride=2) for a, b in pairs)
        self.dec = nn.ModuleList(_block(2 * b, b) for _, b in pairs)
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Encoder, then decoder levels that read the gated skips; logits at input size."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, skips[-2::-1]):
            x = dec(torch.cat([up(x), _gate(skip, margin)], dim=1))
        return self.head(x)


def build_example_unet(in_channels: dict[str, int], img_size: int,
                       widths: tuple[int, ...] = (32, 64, 128, 256),
                       weights: str | None = None) -> ExampleUNet:
    """The card's constructor: channels of every consumed modality stacked; ``weights``
    names an optional whole-model state dict."""
    stride = 2 ** (len(widths) - 1)
    if img_size % stride:
        raise ValueError(f"example_unet needs an input size divisible by {stride}, "
                         f"got {img_size}")
    model = ExampleUNet(sum(in_channels.values()), tuple(widths))
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model
