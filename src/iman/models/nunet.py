"""NU-net (Chen et al., Pattern Recognition 2023): nested U-net with side sub-networks.

What the paper and the public code (CGPxy/NU-net, Keras ``model_net.deep_unet7``; described
in ``/work/shared/reference/peers.md`` section 6) do, in this module's terms (level k has
1/2^k of the input resolution; L = 7 poolings, 384 -> 3):

* ConvBlock = 2 x (3x3 conv with bias + BN + LeakyReLU 0.01).
* Main path ``M_k`` (widths 64, 128, 128, 256, 256, 512, 512, 1024): ``M_0 = CB(x)``,
  ``M_k = CB(pool2(M_{k-1}))``; at even levels k >= 2 a "shortcut" input (3x3 conv to 32
  channels + BN + LeakyReLU of ``pool4(M_{k-2})``) is concatenated before the block.
* Side sub-networks: for every j = 0..L-2 a chain starts at level j+2 with
  ``CB(pool4(M_j))`` (width of ``M_j``) and continues with ``CB(pool2(.))`` down to level L.
* Bottleneck (3x3 at 384 px): concatenation of ``M_L`` and the L-1 chain ends
  (1024 + 512 + 256 + 256 + 128 + 128 + 64 = 2368 channels), no block of its own.
* Decoder, for k = L-1 .. 0: nearest 2x up-sampling, concat with the skip, CB of width
  ``width(M_k)`` (512, 512, 256, 256, 128, 128, 64). The skip is ``M_{L-1}`` alone at level
  L-1; at level k <= L-2 it is ``concat[M_k, side_k]`` where ``side_k`` is the end of chain k
  brought up by (L-2-k) x (nearest 2x + CB of the chain's width) and a final nearest 4x.
* Head: 1x1 conv to one channel (+ sigmoid in the public code; logits here).
* Trainable parameters at the paper configuration (384 px, 3 channels): 77,052,833.

Choices made here:

* The architecture is generated from ``widths`` (L + 1 entries) and ``shortcut`` width, so
  the paper network and smaller variants share one definition.
* Any input size: an input that is not a multiple of ``2**L`` is padded (reflected, split
  evenly over both sides) to the next multiple, and the logits are cropped back. The public
  code only runs at multiples of 128 (Keras' floor pooling breaks the skip concatenations
  elsewhere), yet IMAN trains NU-net at 320 px: padded to 384, NU-net's own input size, with
  the paper's 7 poolings, widths and 77.05 M parameters unchanged. A margin is padded the
  same way. At a multiple of ``2**L`` (the ``demo`` variant, L = 5, at 64 px) nothing changes.
* Margin: every decoder skip (main + side branch concatenation) is multiplied by the margin
  (``gates_skips=True``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import load_weight_file
from iman.models.injection import gate

__all__ = ["NUNet", "build_nunet"]

PAPER_WIDTHS = (64, 128, 128, 256, 256, 512, 512, 1024)
PAPER_SHORTCUT = 32


def _conv_bn_lrelu(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 'same' conv (with bias, as Keras) -> BN -> LeakyReLU(0.01)."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.01)]


class _ConvBlock(nn.Sequential):
    """NU-net ConvBlock: two 3x3 conv-BN-LeakyReLU layers."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(*_conv_bn_lrelu(c_in, c_out), *_conv_bn_lrelu(c_out, c_out))


def _up(x: Tensor, factor: int) -> Tensor:
    """Nearest up-sampling (Keras ``UpSampling2D`` default)."""
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def _pad_to(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that brings ``h x w`` to multiples of ``multiple``."""
    dh, dw = -h % multiple, -w % multiple
    return (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)


def _pad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Reflect padding (replicate where a side is too short to reflect)."""
    small = max(pad[0], pad[1]) >= x.shape[-1] or max(pad[2], pad[3]) >= x.shape[-2]
    return F.pad(x, pad, mode="replicate" if small else "reflect")


class NUNet(nn.Module):
    """Nested U-net with shortcut inputs and side sub-networks; ``L = len(widths) - 1``."""

    def __init__(self, c_in: int, widths: tuple[int, ...], shortcut: int) -> None:
        super().__init__()
        L = len(widths) - 1
        if L < 3:
            raise ValueError("NU-net needs at least 3 poolings")
        self.depth = L
        self.main = nn.ModuleList()
        self.shortcut = nn.ModuleDict()
        for k in range(L + 1):
            extra = 0
            if k >= 2 and k % 2 == 0:
                self.shortcut[str(k)] = nn.Sequential(*_conv_bn_lrelu(widths[k - 2], shortcut))
                extra = shortcut
            prev = c_in if k == 0 else widths[k - 1]
            self.main.append(_ConvBlock(prev + extra, widths[k]))
        # chain j: blocks at levels j+2 .. L, all of width widths[j]
        self.chains = nn.ModuleList(
            nn.ModuleList(_ConvBlock(widths[j], widths[j]) for _ in range(L - j - 1))
            for j in range(L - 1)
        )
        # side path of chain j back to level j+2: (L-2-j) x (up2 + block)
        self.side_up = nn.ModuleList(
            nn.ModuleList(_ConvBlock(widths[j], widths[j]) for _ in range(L - 2 - j))
            for j in range(L - 1)
        )
        bottleneck = widths[L] + sum(widths[: L - 1])
        dec = []
        prev = bottleneck
        for k in range(L - 1, -1, -1):
            skip = widths[k] + (widths[k] if k <= L - 2 else 0)
            dec.append(_ConvBlock(skip + prev, widths[k]))
            prev = widths[k]
        self.dec = nn.ModuleList(dec)
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Logits ``(B, 1, H, W)``; the margin (if any) gates every decoder skip."""
        h, w = x.shape[-2:]
        pad = _pad_to(h, w, 2**self.depth)
        if any(pad):
            x = _pad(x, pad)
            margin = _pad(margin, pad) if margin is not None else None
        logits = self._forward(x, margin)
        return logits[..., pad[2]:pad[2] + h, pad[0]:pad[0] + w] if any(pad) else logits

    def _forward(self, x: Tensor, margin: Tensor | None) -> Tensor:
        """The network on an input whose sides are multiples of ``2**depth``."""
        L = self.depth
        main: list[Tensor] = []
        for k, block in enumerate(self.main):
            if k == 0:
                main.append(block(x))
                continue
            inp = F.max_pool2d(main[k - 1], 2)
            if str(k) in self.shortcut:
                short = self.shortcut[str(k)](F.max_pool2d(main[k - 2], 4))
                inp = torch.cat([short, inp], dim=1)
            main.append(block(inp))
        ends: list[Tensor] = []
        for j, chain in enumerate(self.chains):
            c = F.max_pool2d(main[j], 4)
            for i, block in enumerate(chain):
                c = block(c if i == 0 else F.max_pool2d(c, 2))
            ends.append(c)
        y = torch.cat([main[L], *reversed(ends)], dim=1)
        for block, k in zip(self.dec, range(L - 1, -1, -1)):
            skip = main[k]
            if k <= L - 2:
                side = ends[k]
                for up_block in self.side_up[k]:
                    side = up_block(_up(side, 2))
                skip = torch.cat([skip, _up(side, 4)], dim=1)
            y = block(torch.cat([gate(skip, margin), _up(y, 2)], dim=1))
        return self.head(y)


def build_nunet(
    in_channels: dict[str, int],
    img_size: int,
    widths: tuple[int, ...] = PAPER_WIDTHS,
    shortcut: int = PAPER_SHORTCUT,
    weights: str | None = None,
) -> NUNet:
    """Registry constructor (US only); any size (padded inside to a multiple of
    ``2**(len(widths)-1)``)."""
    model = NUNet(sum(in_channels.values()), tuple(widths), shortcut)
    if weights:
        load_weight_file(model, weights, "NU-net")
    return model
