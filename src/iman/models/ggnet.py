"""GG-Net (Xue et al., MedIA 2021, paper 003): DeepLabV3+ with a global guidance block and
boundary detection modules.

What the paper says: a ResNeXt feature extractor, ASPP on the deepest map; a multi-layer
integrated feature (MLIF: the first four CNN layers resized to the second one's size and
concatenated) guides a spatial-wise and a channel-wise global guidance block (GGB) on the ASPP
output; a boundary detection (BD) module per CNN layer: a 1×1 convolution to one channel
``p``, boundary ``E = |p − maxpool3×3(p)|`` (stride 1), segmentation map ``p + E``. Loss (Eq.
6–9): per layer λ1·(Dice + BCE) + λ2·MSE(boundary) (λ1 = 1, λ2 = 10) plus the final
segmentation's Dice + BCE; boundary ground truth from a Canny operator.

What the public code (xorangecheng/GlobalGuidance-Net) does, and what we follow:

* ResNeXt-101 32×4d, layers 0–3 only (output stride 16, 1024 channels into ASPP).
* Side branches (DAF style): layer0..layer3 → 1×1 conv to 128 + BN + PReLU, resized to the
  layer1 size (1/4); a 1×1 side prediction on each, upsampled to the input size, boundary
  ``|o − maxpool3×3(o)|`` computed on the logits, output ``o + boundary``. The four 128-channel
  maps are concatenated (512) and fused (3×3, 3×3, 1×1 conv-BN-PReLU) into the 256-channel
  guidance map.
* ASPP(1024 → 256, rates 1/6/12/18 + image pooling, 1×1 fuse, dropout 0.5).
* Decoder: 1×1 conv-BN-ReLU on the guidance map; 1×1 conv-BN-ReLU layer1 → 48; the ASPP
  output upsampled to 1/4 goes through the DGNLB (position attention whose affinity is
  ``softmax(softmax(E_x) @ softmax(E_g))``, i.e. a *matrix* product of the feature's and the
  guide's affinities, then channel attention with the max-minus-energy trick, zero-init γ,
  3×3/1×1 conv-BN-PReLU after each, a 1×1 conv-BN-PReLU at the end); concat with layer1 (304)
  → 2× conv3×3 256-BN-ReLU-dropout(0.5/0.1) → 1×1 → ×4 upsample; boundary-enhanced output.
* Loss: for the 5 outputs (final + 4 sides) BCE-with-logits + Dice (sigmoid) + MSE between the
  predicted boundary and ``|gt − maxpool3×3(gt)|``; all 15 terms weight 1.

Assumptions / deviations:

* The channel GGB's squeeze-and-excitation on the guide (paper Eq. 4–5) is off, as in the
  code's decoder (``WSE=False``); the code's unused modules (the CAM's ``z``, ``se``,
  ``seconv``, ``W``; DGNLB's ``cov1``, ``cov2``, ``predict``; DeepLab's ``predict5``) are not
  built, so the count is the parameters in use.
* The Dice term is the trainer's Dice loss ``base`` (same role as the code's sigmoid Dice).
* Backbone: timm's ResNet class configured as ResNeXt-101 32×4d (random init; no download);
  ``weights`` may name a local timm-format ResNeXt state dict (or a whole-model state dict).
* Margin gating: the layer1 skip into the decoder and the four side-branch features.
* The ASPP image-pooling BatchNorm (on a 1×1 map) uses its running statistics for a training
  batch of one, where PyTorch would raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.resnet import Bottleneck, ResNet
from torch import Tensor, nn

from iman.models.blocks import (
    BatchNorm2dAnyBatch,
    LoadReport,
    load_report,
    read_state_file,
)
from iman.models.injection import gate

__all__ = [
    "ASPP",
    "DGNLB",
    "GGNet",
    "boundary_map",
    "build_ggnet",
]


def boundary_map(p: Tensor) -> Tensor:
    """``|p − maxpool3×3(p)|`` (stride 1, padding 1): the BD module's boundary."""
    return (p - F.max_pool2d(p, 3, stride=1, padding=1)).abs()


def _cbp(cin: int, cout: int, k: int) -> list[nn.Module]:
    """Conv(k×k, same padding) + BN + PReLU layers."""
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.PReLU()]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: rates (1, 6, 12, 18) + image pooling, 1×1 fuse."""

    def __init__(self, cin: int, cout: int, rates: Sequence[int] = (1, 6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList()
        for r in rates:
            k = 1 if r == 1 else 3
            self.branches.append(nn.Sequential(
                nn.Conv2d(cin, cout, k, padding=0 if k == 1 else r, dilation=r, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU()))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                                  BatchNorm2dAnyBatch(cout), nn.ReLU())
        self.project = nn.Sequential(
            nn.Conv2d(cout * (len(rates) + 1), cout, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        """Concatenate the branches and fuse them."""
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear",
                               align_corners=True)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class _GuidedPositionAttention(nn.Module):
    """Spatial GGB: value re-weighted by softmax(softmax(E_x) @ softmax(E_g)), γ-residual."""

    def __init__(self, ch: int, guide_ch: int) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Conv2d(ch, ch, 1) for _ in range(3))
        self.qg, self.kg = nn.Conv2d(guide_ch, guide_ch, 1), nn.Conv2d(guide_ch, guide_ch, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """x, g at the same spatial size."""
        b, c, h, w = x.shape
        att = torch.softmax(self.q(x).flatten(2).transpose(1, 2) @ self.k(x).flatten(2), -1)
        att_g = torch.softmax(self.qg(g).flatten(2).transpose(1, 2) @ self.kg(g).flatten(2), -1)
        guided = torch.softmax(att @ att_g, dim=-1)
        out = (self.v(x).flatten(2) @ guided.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class _GuidedChannelAttention(nn.Module):
    """Channel GGB: channel affinities of x and guide, max-minus-energy softmax, γ-residual."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, y: Tensor, g: Tensor) -> Tensor:
        """y, g with the same shape."""
        b, c, h, w = y.shape
        yf, gf = y.flatten(2), g.flatten(2)
        energy = torch.softmax(yf @ yf.transpose(1, 2), -1) @ torch.softmax(
            gf @ gf.transpose(1, 2), -1)
        energy = energy.amax(-1, keepdim=True) - energy
        out = (torch.softmax(energy, -1) @ yf).view(b, c, h, w)
        return self.gamma * out + y


class DGNLB(nn.Module):
    """Global guidance block: guided position attention then guided channel attention."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.pam = _GuidedPositionAttention(ch, ch)
        self.pconv = nn.Sequential(*_cbp(ch, ch, 3), *_cbp(ch, ch, 1))
        self.cam = _GuidedChannelAttention()
        self.cconv = nn.Sequential(*_cbp(ch, ch, 3), *_cbp(ch, ch, 1))
        self.fconv = nn.Sequential(*_cbp(ch, ch, 1))

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """Refine ``x`` under the guidance map ``g`` (same shape)."""
        y = self.pconv(self.pam(x, g))
        return self.fconv(self.cconv(self.cam(y, g)))


class GGNet(nn.Module):
    """DeepLabV3+ (ResNeXt layers 0–3) + side BD modules + DGNLB, boundary-enhanced output."""

    def __init__(
        self,
        in_channels: int = 3,
        layers: Sequence[int] = (3, 4, 23, 3),
        cardinality: int = 32,
        base_width: int = 4,
        channels: Sequence[int] = (64, 128, 256, 512),
        side_ch: int = 128,
        aspp_ch: int = 256,
        low_ch: int = 48,
    ) -> None:
        super().__init__()
        net = ResNet(Bottleneck, tuple(layers), in_chans=in_channels, cardinality=cardinality,
                     base_width=base_width, channels=tuple(channels))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        feat_ch = [net.conv1.out_channels] + [c * Bottleneck.expansion for c in channels[:3]]
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, side_ch, 1), nn.BatchNorm2d(side_ch), nn.PReLU())
            for c in feat_ch)
        self.side_pred = nn.ModuleList(nn.Conv2d(side_ch, 1, 1) for _ in feat_ch)
        self.fuse = nn.Sequential(*_cbp(4 * side_ch, aspp_ch, 3), *_cbp(aspp_ch, aspp_ch, 3),
                                  *_cbp(aspp_ch, aspp_ch, 1))
        self.aspp = ASPP(feat_ch[3], aspp_ch)
        self.guide_proj = nn.Sequential(nn.Conv2d(aspp_ch, aspp_ch, 1, bias=False),
                                        nn.BatchNorm2d(aspp_ch), nn.ReLU())
        self.low_proj = nn.Sequential(nn.Conv2d(feat_ch[1], low_ch, 1, bias=False),
                                      nn.BatchNorm2d(low_ch), nn.ReLU())
        self.dgnlb = DGNLB(aspp_ch)
        self.last = nn.Sequential(
            nn.Conv2d(aspp_ch + low_ch, aspp_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(aspp_ch), nn.ReLU(), nn.Dropout(0.5),
            nn.Conv2d(aspp_ch, aspp_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(aspp_ch), nn.ReLU(), nn.Dropout(0.1),
            nn.Conv2d(aspp_ch, 1, 1))
        for m in [*self.aspp.modules(), *self.guide_proj.modules(), *self.low_proj.modules(),
                  *self.last.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor | dict[str, Tensor]:
        """Final boundary-enhanced logits; in training also the side outputs and boundaries."""
        size = x.shape[-2:]
        l0 = self.stem(x)
        l1 = self.layer1(l0)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        quarter = l1.shape[-2:]
        downs = []
        for conv, feat in zip(self.down, (l0, l1, l2, l3)):
            d = conv(feat)
            if d.shape[-2:] != quarter:
                d = F.interpolate(d, size=quarter, mode="bilinear", align_corners=True)
            downs.append(gate(d, margin))
        guide = self.guide_proj(self.fuse(torch.cat(downs, dim=1)))
        a = F.interpolate(self.aspp(l3), size=quarter, mode="bilinear", align_corners=True)
        a = self.dgnlb(a, guide)
        low = self.low_proj(gate(l1, margin))
        out = F.interpolate(self.last(torch.cat([a, low], dim=1)), size=size, mode="bilinear",
                            align_corners=True)
        edge = boundary_map(out)
        final = out + edge
        if not self.training:
            return final
        result = {"logits": final, "edge0": edge}
        for i, (pred, d) in enumerate(zip(self.side_pred, downs), start=1):
            o = F.interpolate(pred(d), size=size, mode="bilinear", align_corners=True)
            e = boundary_map(o)
            result[f"side{i}"] = o + e
            result[f"edge{i}"] = e
        return result

    def loss(self, out: Tensor | dict[str, Tensor], target: Tensor,
             base: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Σ over the 5 outputs of BCE-with-logits + Dice (``base``) + MSE(boundary)."""
        target = target.float()
        if not isinstance(out, dict):
            return F.binary_cross_entropy_with_logits(out.float(), target) + base(out, target)
        gt_edge = boundary_map(target)
        total = target.new_zeros(())
        for i in range(5):
            o = out["logits"] if i == 0 else out[f"side{i}"]
            total = total + F.binary_cross_entropy_with_logits(o.float(), target) + base(o, target)
            total = total + F.mse_loss(out[f"edge{i}"].float(), gt_edge)
        return total


def build_ggnet(
    in_channels: dict[str, int],
    img_size: int,
    weights: str | None = None,
    **kwargs: Any,
) -> GGNet:
    """Build GG-Net (random init); ``weights``: a local timm ResNeXt or whole-model state dict."""
    model = GGNet(sum(in_channels.values()), **kwargs)
    if weights:
        load_ggnet_weights(model, weights).check()
    return model


def load_ggnet_weights(model: GGNet, path: str | Path) -> LoadReport:
    """Load a timm/torchvision ResNeXt ImageNet state dict into the backbone (stem, layer1–3)
    or a whole GG-Net state dict; report every key.

    The RGB stem conv is adapted to the input channels; the ResNeXt's ``layer4`` and
    classifier (unused by GG-Net) are reported as unused file tensors.
    """
    state = read_state_file(path)
    # a timm ResNeXt state dict names the stem conv1/bn1; ours wraps them in ``stem``
    renamed = {"stem.0." + k[6:] if k.startswith("conv1.") else
               "stem.1." + k[4:] if k.startswith("bn1.") else k: v for k, v in state.items()}
    whole = any(k.startswith("aspp.") for k in renamed)
    return load_report(model, renamed, str(path),
                       "GG-Net" if whole else "ResNeXt backbone (GG-Net)",
                       required=("",) if whole else _BACKBONE, first_conv="stem.0.weight")


_BACKBONE = ("stem.", "layer1.", "layer2.", "layer3.")
"""GG-Net tensors an ImageNet ResNeXt fills (the rest is trained from scratch)."""
