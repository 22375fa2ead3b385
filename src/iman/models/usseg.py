"""US-SEG (Li et al., paper 002): UNet + multi-scale deep supervision + per-stage discriminators.

What the paper says: a UNet backbone; a Dice loss on each of the 4 decoder stages
(α1 = 1 on the last stage, α2..α4 = 0.1 on the deeper ones) plus, per stage, an adversarial
term β·E log(1 − CN_n(P⁽ⁿ⁾)) (β = 0.05) from a discriminator of five convolutions with kernels
7, 5, 4, 4, 4 that sees a probability map (Eq. 1); each discriminator is trained with Eq. 2
(real masks vs predicted maps), alternately with the segmentation network. Four
discriminators, no weight sharing.

What the public code (limy-ulab/US-SEG) does: only a plain UNet (widths 64-128-256-512-1024,
double conv3×3-BN-ReLU, 2×2 max-pool, 2×2 transposed-conv up, 1×1 head; 31,042,369
parameters for 1-channel input). No deep supervision, no discriminator, no training script.

Assumptions beyond both:

* Side heads: a 1×1 convolution on each of the three deeper decoder stages (1/8, 1/4, 1/2),
  bilinearly upsampled to the input size; stage 1 is the network's final 1×1 head.
* Discriminator widths (64, 128, 256, 512 → 1), strides 2, 2, 2, 2, 1, LeakyReLU(0.2), no
  normalisation layer (real and fake batches are fed separately); its output is a patch map
  of logits and every patch counts as one real/fake decision (mean binary cross-entropy).
* Discriminator input: the sigmoid probability map *and the input image* (conditional, as in
  Luc et al. 2016, "Semantic segmentation using adversarial networks"); the paper writes
  CN(P), CN(G). Measured reason (tests/test_overfit.py, 4 phantom cases): with the map alone
  the cheapest way to look like a real mask of a small lesion (98 % background) is an empty
  map, and the paper's saturating term ``log(1 − D(P))``, unbounded below, reached −4.8 while
  the Dice terms were abandoned (training Dice loss 0.97 after 300 steps at lr 1e-2, vs 0.02
  with β = 0). Seeing the image, D can tell an empty map of a lesion image from a real mask.
  ``conditional=False`` restores the paper's input.
* The generator's adversarial term is the paper's literal (saturating) form
  ``log(1 − D(P)) = −softplus(logit)``; the Dice terms use the trainer's Dice loss ``base``.
* Margin gating: the four encoder skip features are multiplied by the margin.

Deviations: none in the segmentation network; the discriminator widths, the patch output and
the image-conditioned discriminator input are our choice (the paper gives only the kernel
sizes). The ``demo`` variant weights the adversarial terms with β = 0.005 instead of 0.05: at
the demo scale (random init, 64 px, ~250 steps) the paper's β kept the network from learning
at all (best validation DSC 0.07 on the phantom, early-stopped after 15 epochs) while β =
0.005 reached 0.66 (docs/performance.md); the ``paper`` variant keeps β = 0.05.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import double_conv, load_weight_file
from iman.models.injection import gate

__all__ = [
    "ALPHAS",
    "BETA",
    "StageDiscriminator",
    "USSeg",
    "build_usseg",
]

ALPHAS = (1.0, 0.1, 0.1, 0.1)
"""Dice weights of the decoder stages, last stage first (paper Eq. 1)."""
BETA = 0.05
"""Weight of each stage's adversarial term (paper Eq. 1)."""


class StageDiscriminator(nn.Module):
    """Five convolutions (kernels 7, 5, 4, 4, 4) mapping a probability map to patch logits."""

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), in_channels: int = 1) -> None:
        super().__init__()
        kernels = (7, 5, 4, 4)
        layers: list[nn.Module] = []
        cin = in_channels
        for k, w in zip(kernels, widths):
            pad = (k - 1) // 2 if k % 2 else k // 2 - 1  # exact halving for stride 2
            layers += [nn.Conv2d(cin, w, k, stride=2, padding=pad), nn.LeakyReLU(0.2, inplace=True)]
            cin = w
        layers.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits ``(B, 1, h, w)``: high = judged a real mask."""
        return self.net(x)


class USSeg(nn.Module):
    """UNet with 4-stage deep supervision; ``adversary`` holds the 4 stage discriminators."""

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (64, 128, 256, 512, 1024),
        disc_widths: Sequence[int] = (64, 128, 256, 512),
        alphas: Sequence[float] = ALPHAS,
        beta: float = BETA,
        conditional: bool = True,
    ) -> None:
        super().__init__()
        self.conditional = conditional
        if len(widths) != 5:
            raise ValueError("US-SEG needs 5 widths (4 pooling levels)")
        self.alphas = tuple(alphas)
        self.beta = beta
        self.enc = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.enc.append(double_conv(cin, w))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_deep, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_deep, w, 2, stride=2))
            self.dec.append(double_conv(2 * w, w))
        self.head = nn.Conv2d(widths[0], 1, 1)
        # side heads of the deeper stages (1/2, 1/4, 1/8), ordered as stages 2, 3, 4
        self.side_heads = nn.ModuleList(nn.Conv2d(w, 1, 1) for w in widths[1:4])
        d_in = 1 + (in_channels if conditional else 0)
        self.adversary = nn.ModuleList(StageDiscriminator(disc_widths, d_in) for _ in range(4))

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor | dict[str, Tensor]:
        """Logits at the input size; in training a dict with the 3 deeper side logits too."""
        skips: list[Tensor] = []
        h = x
        for i, block in enumerate(self.enc):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        h = skips.pop()
        stage_feats: list[Tensor] = []
        for up, dec in zip(self.up, self.dec):
            h = dec(torch.cat([gate(skips.pop(), margin), up(h)], dim=1))
            stage_feats.append(h)
        logits = self.head(h)
        if not self.training:
            return logits
        size = x.shape[-2:]
        # stage_feats: 1/8, 1/4, 1/2, 1/1 → side heads on the first three, as stages 4, 3, 2
        sides = [
            F.interpolate(head(feat), size=size, mode="bilinear", align_corners=False)
            for head, feat in zip(self.side_heads, stage_feats[-2::-1])
        ]
        return {"logits": logits, "side2": sides[0], "side3": sides[1], "side4": sides[2],
                "image": x}

    def _judge(self, disc: nn.Module, mask: Tensor, out: dict[str, Tensor]) -> Tensor:
        """Patch logits of one discriminator for a (probability or real) mask."""
        if self.conditional:
            mask = torch.cat([mask, out["image"].float()], dim=1)
        return disc(mask)

    @staticmethod
    def stage_logits(out: dict[str, Tensor]) -> list[Tensor]:
        """The 4 stage outputs, stage 1 (final) first."""
        return [out["logits"], out["side2"], out["side3"], out["side4"]]

    def loss(self, out: Tensor | dict[str, Tensor], target: Tensor,
             base: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Paper Eq. 1: Σ αₙ·Dice(Pⁿ) + β·Σ mean log(1 − Dₙ(Pⁿ)); discriminators frozen here."""
        if not isinstance(out, dict):
            return self.alphas[0] * base(out, target)
        stages = self.stage_logits(out)
        total = sum(a * base(s, target) for a, s in zip(self.alphas, stages))
        params = list(self.adversary.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            for disc, s in zip(self.adversary, stages):
                # log(1 - sigmoid(l)) = -softplus(l)
                total = total - self.beta * F.softplus(
                    self._judge(disc, torch.sigmoid(s.float()), out)).mean()
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
        return total

    def adversary_loss(self, out: Tensor | dict[str, Tensor], target: Tensor) -> Tensor:
        """Paper Eq. 2 summed over the 4 discriminators: real masks vs detached predictions."""
        if not isinstance(out, dict):
            raise ValueError("adversary_loss needs the training-mode output (a dict)")
        total = target.new_zeros((), dtype=torch.float32)
        image = {"image": out["image"].detach()}
        for disc, s in zip(self.adversary, self.stage_logits(out)):
            real = self._judge(disc, target.float(), image)
            fake = self._judge(disc, torch.sigmoid(s.detach().float()), image)
            total = total + F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            total = total + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return total


def build_usseg(
    in_channels: dict[str, int],
    img_size: int,
    widths: Sequence[int] = (64, 128, 256, 512, 1024),
    disc_widths: Sequence[int] = (64, 128, 256, 512),
    weights: str | None = None,
    **kwargs: Any,
) -> USSeg:
    """Build US-SEG (random init); ``weights`` may name a local state dict of the whole model."""
    model = USSeg(sum(in_channels.values()), widths, disc_widths, **kwargs)
    if weights:
        load_weight_file(model, weights, "US-SEG (whole model)")
    return model
