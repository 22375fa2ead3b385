"""CEUSegNet (Meng et al., ISBI 2022): dual-branch U-net that segments CEUS with help from US.

What the paper says: two top-down branches (CEUS part and US part of a dual-amplitude CEUS
frame), a Cross-modality Segmentation Attention (CSA) and a Cross-modality Feature Fusion
(CFF) module at every encoder level, one U-net decoder, 128x128 input, Adam 1e-3, 150 epochs.
CSA (eq. 1-2): ``w = softmax(W_ceus GAP(F_ceus) * W_us GAP(F_us))``,
``F_ceus' = F_ceus + w * F_ceus``.

What the public code does (RichardSunnyMeng/CEUSegNet, described in
``/work/shared/reference/peers.md`` section 2): encoders of widths [64, 64, 128, 256, 256];
a DoubleConv at full resolution, then 4 stages of DoubleConv + 1x1 conv-BN projection
shortcut, added, ReLU, 2x max-pool; CFF = concat -> 1x1 conv-BN-ReLU -> four parallel dilated
3x3 convs (dilation 1, 2, 4, 8; C/4 each) -> concat -> BN-ReLU-1x1 conv-BN-ReLU; decoder of 4
Up blocks (bilinear x2, concat skip, DoubleConv with mid = in/2) and a 1x1 head. The CSA
scale factor is computed with integer floor division and evaluates to 0, so the public
softmax is uniform (every weight 1/C) and CSA is a constant rescale.

Choices made here:

* CSA is implemented as *intended*: the product of the two projections is scaled by
  ``1/sqrt(C)`` (standard attention temperature) before the softmax over channels, so the
  channel weights really depend on the inputs. (The public expression
  ``sqrt(1/(2C) // 4)`` suggests ``1/sqrt(2C/4)`` was meant; ``1/sqrt(C)`` differs from it by
  a factor sqrt(2) in temperature only; no parameters change.)
* Inputs in the IMAN setting: ``x = cat([us, ceus], 1)``; the first ``in_channels["us"]``
  channels feed the US encoder, the remaining ``in_channels["ceus"]`` channels (the T CEUS
  frames stacked as channels) feed the CEUS encoder's first convolution.
* Output: raw logits (the public code applies a sigmoid; the trainer's loss does that here).
* Margin: the fused (CFF) skip features of levels 1..4 are multiplied by the margin
  (``gates_skips=True``); the 1/16 bottleneck is not gated, as in IMAN's own gating.
* Parameters at the paper configuration (1-channel US, 1-channel CEUS): 9,281,025,
  identical to the public model (README: 9.281 M). Input sizes: any multiple of 16.
* ``demo`` variant: widths (8, 8, 16, 32, 32), 147,937 parameters with a 5-frame CEUS input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import check_size, double_conv, load_weight_file
from iman.models.injection import gate

__all__ = ["CEUSegNet", "CrossModalFusion", "CrossModalSegAttention", "build_ceusegnet"]

PAPER_WIDTHS = (64, 64, 128, 256, 256)


class _ResidualStage(nn.Module):
    """DoubleConv + 1x1 conv-BN projection shortcut, added, ReLU, 2x max-pool."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = double_conv(c_in, c_out)
        self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        """Residual stage at the input resolution, then halve it."""
        return self.pool(F.relu(self.body(x) + self.proj(x)))


class _Encoder(nn.Module):
    """One top-down branch: features at 1, 1/2, 1/4, 1/8, 1/16 of the input size."""

    def __init__(self, c_in: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.inc = double_conv(c_in, widths[0])
        self.stages = nn.ModuleList(
            _ResidualStage(widths[i - 1], widths[i]) for i in range(1, len(widths))
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature of every level, finest first."""
        feats = [self.inc(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class CrossModalSegAttention(nn.Module):
    """CSA: channel weights from both modalities' pooled features reweight the CEUS feature."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.w_ceus = nn.Linear(channels, channels, bias=False)
        self.w_us = nn.Linear(channels, channels, bias=False)
        self.scale = 1.0 / math.sqrt(channels)

    def weights(self, f_ceus: Tensor, f_us: Tensor) -> Tensor:
        """Softmax-over-channels weights ``(B, C)`` (eq. 1 with a 1/sqrt(C) temperature)."""
        v_ceus = self.w_ceus(f_ceus.mean(dim=(2, 3)))
        v_us = self.w_us(f_us.mean(dim=(2, 3)))
        return torch.softmax(v_ceus * v_us * self.scale, dim=1)

    def forward(self, f_ceus: Tensor, f_us: Tensor) -> Tensor:
        """Return ``F_ceus + w * F_ceus`` (eq. 2); the US feature is left unchanged."""
        w = self.weights(f_ceus, f_us)[:, :, None, None]
        return f_ceus + w * f_ceus


class CrossModalFusion(nn.Module):
    """CFF: concat -> 1x1 -> four dilated 3x3 (1, 2, 4, 8) -> concat -> BN ReLU 1x1 BN ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"CFF needs a channel count divisible by 4, got {channels}")
        self.early = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.dilated = nn.ModuleList(
            nn.Conv2d(channels, channels // 4, 3, padding=d, dilation=d) for d in (1, 2, 4, 8)
        )
        self.late = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, f_ceus: Tensor, f_us: Tensor) -> Tensor:
        """Fuse the (reweighted) CEUS feature with the US feature at one level."""
        x = self.early(torch.cat([f_ceus, f_us], dim=1))
        return self.late(torch.cat([conv(x) for conv in self.dilated], dim=1))


class _Up(nn.Module):
    """Bilinear x2 (align_corners), concat the skip, DoubleConv with mid = in/2."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = double_conv(c_in, c_out, mid=c_in // 2)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x`` to the skip's size and refine the concatenation."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv(torch.cat([skip, x], dim=1))


class CEUSegNet(nn.Module):
    """Dual-encoder CEUS segmenter; ``x = cat([us, ceus], 1)``, output CEUS-mask logits."""

    def __init__(self, us_channels: int, ceus_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError("CEUSegNet uses exactly 5 encoder widths")
        self.us_channels = us_channels
        self.ceus_channels = ceus_channels
        self.enc_us = _Encoder(us_channels, widths)
        self.enc_ceus = _Encoder(ceus_channels, widths)
        self.csa = nn.ModuleList(CrossModalSegAttention(w) for w in widths)
        self.cff = nn.ModuleList(CrossModalFusion(w) for w in widths)
        ups = []
        prev = widths[-1]
        for level in range(len(widths) - 2, -1, -1):
            out = widths[max(level - 1, 0)]
            ups.append(_Up(prev + widths[level], out))
            prev = out
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(prev, 1, 1)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Logits ``(B, 1, H, W)``; the margin (if any) gates the fused skips."""
        if x.shape[1] != self.us_channels + self.ceus_channels:
            raise ValueError(
                f"expected {self.us_channels}+{self.ceus_channels} channels, got {x.shape[1]}"
            )
        x_us, x_ceus = x[:, : self.us_channels], x[:, self.us_channels :]
        feats_us = self.enc_us(x_us)
        feats_ceus = self.enc_ceus(x_ceus)
        fused = [
            cff(csa(fc, fu), fu)
            for csa, cff, fc, fu in zip(self.csa, self.cff, feats_ceus, feats_us)
        ]
        y = fused[-1]
        for up, skip in zip(self.ups, reversed(fused[:-1])):
            y = up(y, gate(skip, margin))
        return self.head(y)


def build_ceusegnet(
    in_channels: dict[str, int],
    img_size: int,
    widths: tuple[int, ...] = PAPER_WIDTHS,
    weights: str | None = None,
) -> CEUSegNet:
    """Registry constructor; ``in_channels`` must name ``us`` and ``ceus``."""
    check_size("CEUSegNet", img_size, 16)
    model = CEUSegNet(in_channels["us"], in_channels["ceus"], tuple(widths))
    if weights:
        load_weight_file(model, weights, "CEUSegNet")
    return model
