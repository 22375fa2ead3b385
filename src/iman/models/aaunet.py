"""AAU-net (Chen et al., IEEE TMI 2023): U-net whose convolutions are HAAM blocks.

What the paper says: an adaptive attention U-net for breast-lesion segmentation in US; the
hybrid adaptive attention module (HAAM) replaces the convolutions of U-net; it combines a
channel self-attention block (two receptive fields, selected adaptively) and a spatial
self-attention block.

What the public code does (CGPxy/AAU-net, Keras, described in
``/work/shared/reference/peers.md`` section 5): only the HAAM block is published.

* Channel block: ``a = ReLU(BN(conv3x3 dil 3))``, ``b = ReLU(BN(conv5x5))``,
  ``s = sigmoid(Dense(ReLU(BN(Dense(GAP(concat[a, b]))))))``,
  ``C = ReLU(BN(conv1x1(concat[a*s, b*(1-s)])))``.
* Spatial block: ``S = ReLU(BN(conv1x1(ReLU(BN(conv3x3(x))))))``,
  ``m = sigmoid(conv1x1->1(ReLU(C + S)))``, ``out = BN(conv kxk(concat[m*C, (1-m)*S]))``
  with no final activation.
* Parameters per block (in-channels c, f filters, k = 3): ``43cf + 24f^2 + 23f + 1``.

Assumptions beyond both (flagged; the full wiring is unpublished, issue #4 unanswered):

* A standard 5-level U-net (4 poolings) with one HAAM per level in the encoder and one per
  decoder level, widths 64-128-256-512-1024 for ``paper``; 2x2 max-pooling; decoder = nearest
  2x up-sampling (Keras ``UpSampling2D``, as in the same authors' NU-net code) + concat skip
  + HAAM; 1x1 head to one logit channel (no sigmoid). With 3 input channels this gives
  **116,807,946** parameters (computed; no published figure exists).
* The channel block's dense-layer BatchNorm cannot compute batch statistics from one sample;
  with a training batch of one it normalises with its running statistics instead of raising.
* Margin: skip features are multiplied by the margin (``gates_skips=True``).

Any input size divisible by 16 works (64-320 included). ``demo`` variant: widths
(4, 8, 16, 32, 64), 460,402 parameters for a 1-channel input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import check_size, load_weight_file
from iman.models.injection import gate

__all__ = ["HAAM", "AAUNet", "build_aaunet", "haam_param_count"]

PAPER_WIDTHS = (64, 128, 256, 512, 1024)


def haam_param_count(c: int, f: int, k: int = 3) -> int:
    """Trainable parameters of one HAAM block (peers.md section 5 formula, general k)."""
    return 43 * c * f + (6 + 2 * k * k) * f * f + 23 * f + 1


def _conv_bn_relu(c_in: int, c_out: int, k: int, dilation: int = 1) -> nn.Sequential:
    """'same'-padded conv (with bias, as Keras) -> BN -> ReLU."""
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=pad, dilation=dilation),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _VectorBN(nn.BatchNorm1d):
    """BatchNorm1d that falls back to running statistics for a training batch of one."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``(B, C)``; batch statistics need at least two samples."""
        if self.training and x.shape[0] < 2:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class _ChannelBlock(nn.Module):
    """Two receptive fields (dilated 3x3, 5x5) mixed by squeeze-excite-style weights."""

    def __init__(self, c_in: int, f: int) -> None:
        super().__init__()
        self.dil = _conv_bn_relu(c_in, f, 3, dilation=3)
        self.wide = _conv_bn_relu(c_in, f, 5)
        self.fc1 = nn.Linear(2 * f, f)
        self.bn = _VectorBN(f)
        self.fc2 = nn.Linear(f, f)
        self.fuse = _conv_bn_relu(2 * f, f, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Channel-attended feature ``C``."""
        a, b = self.dil(x), self.wide(x)
        s = torch.cat([a, b], dim=1).mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(F.relu(self.bn(self.fc1(s)))))[:, :, None, None]
        return self.fuse(torch.cat([a * s, b * (1 - s)], dim=1))


class HAAM(nn.Module):
    """Hybrid adaptive attention module: channel block + spatial block + k x k fusion."""

    def __init__(self, c_in: int, f: int, k: int = 3) -> None:
        super().__init__()
        self.channel = _ChannelBlock(c_in, f)
        self.spatial = nn.Sequential(_conv_bn_relu(c_in, f, 3), _conv_bn_relu(f, f, 1))
        self.mask = nn.Conv2d(f, 1, 1)
        self.out = nn.Sequential(nn.Conv2d(2 * f, f, k, padding=k // 2), nn.BatchNorm2d(f))

    def forward(self, x: Tensor) -> Tensor:
        """Fused feature (no final activation, as in the public block)."""
        c = self.channel(x)
        s = self.spatial(x)
        m = torch.sigmoid(self.mask(F.relu(c + s)))
        return self.out(torch.cat([m * c, (1 - m) * s], dim=1))


class AAUNet(nn.Module):
    """5-level U-net with a HAAM at every encoder and decoder level (assumed wiring)."""

    def __init__(self, c_in: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.enc = nn.ModuleList(
            HAAM(c_in if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)
        )
        self.dec = nn.ModuleList(
            HAAM(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 2, -1, -1)
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Logits ``(B, 1, H, W)``; the margin (if any) gates every skip."""
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        y = skips.pop()
        for block in self.dec:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="nearest")
            y = block(torch.cat([gate(skip, margin), y], dim=1))
        return self.head(y)


def build_aaunet(
    in_channels: dict[str, int],
    img_size: int,
    widths: tuple[int, ...] = PAPER_WIDTHS,
    weights: str | None = None,
) -> AAUNet:
    """Registry constructor (US only: ``in_channels = {"us": C}``)."""
    depth = len(widths) - 1
    check_size("AAU-net", img_size, 2**depth)
    model = AAUNet(sum(in_channels.values()), tuple(widths))
    if weights:
        load_weight_file(model, weights, "AAU-net")
    return model
