"""DC-Net (Ning et al., EAAI 2025 / arXiv 2308.00947, paper 004): decomposition-coupling net.

What the paper says: a decomposition subnet disentangles the image into foreground and
background saliency maps (weakly supervised by the mask and its complement); a coupling
subnet segments the lesion from [image, saliency map] with a background U-net and a foreground
U-net whose encoder pools with the differentiable context pooling (DCP), whose decoder fuses
encoder and decoder features by cross-correlation fusion (CCF), and where a "DaR" coupler
merges the background features into the foreground ones at every level. Loss (Eq. 18, 27):
λ1·Dice(S_f, Y) + λ2·Dice(S_b, 1 − Y) + λ3·(Dice + λ4·harmonic) with λ1:λ2:λ3 = 0.5:0.5:1 and
λ3:λ4 = 1:10; harmonic loss (Eq. 26) with α = 0.25, γ = 5, σ = 1e-3.

What the official code (smu-myx/DC-Net) does, and what we follow (our own implementation):

* Decomposition: conv3×3 → 32; attention blocks (1×1 conv-BN-ReLU → GAP → linear + softmax
  channel weights → 3×3 conv-BN-ReLU) 32→64, 4× max-pool, 64→128, 4× max-pool, dropout 0.3,
  128→256→256, dropout 0.3, bilinear ×4 with skips (→ 64, → 32); foreground head
  ``σ(conv1×1(B))``, background head ``σ(conv1×1(1 − B))`` (the paper's self-reversal uses the
  channel max instead of 1; the code's ``1 − B`` is kept).
* Coupling: background U-net (single conv3×3-BN-ReLU blocks, widths 32–512, max-pool, bilinear
  up, concat skips); foreground U-net (same widths) pooling with DCP; a simple DaR coupler
  (``[f(fg), 1 − f(bg)]``, each half-width through 1×1 and 3×3 conv-BN-ReLU) after every pool
  and decoder stage; at the bottleneck the attention DaR (dilated 1/3/5 keys and values from the
  background, GAP, ``σ(q·k)·v``, θ = 0.2); the decoder has no concat skips: each up-sampled stage
  goes through a conv block then CCF with the same-level encoder feature.
* DCP: a 2×2 conv predicts a weight map ``w``; each 2×2 block is pooled as Σ x·w̄ with
  ``w̄ = (1/9)·Σ`` of ``w`` shifted by one block (2 px) in the 3×3 block neighbourhood
  (reflect padding). This is the code's ``dcp_function`` written as a dilated box filter.
* CCF: ``W = E·Dᵀ`` (channel correlation of encoder and decoder features over all pixels); a
  Conv1d with kernel length = channel count turns W (and Wᵀ) into one weight per channel of
  each input; the reweighted inputs are concatenated and fused by a conv3×3-BN-ReLU.
* Harmonic loss as in ``loss_function/myloss.py``: the factor 10 (= λ4) is inside, the per-pixel
  value is clamped to [1e-6, 1 − 1e-6] before averaging (so pixels whose loss exceeds 1 give no
  gradient — kept as the code does it; ``clamp=False`` turns it off).

Assumptions / deviations:

* The model returns logits (the code's final sigmoid is moved into the loss); the saliency
  maps are fed to the coupling subnet as probabilities, as in the code.
* Loss: 0.5·Dice(fg map) + 0.5·Dice(bg map vs 1 − Y) + Dice(final) + harmonic(final), with the
  trainer's Dice ``base`` for the Dice terms (the code has no training script; the paper's
  weights are used).
* Margin gating: the four foreground-encoder skips entering the CCF modules.
* Any input size divisible by 16 works (two 4× pools in the decomposition, four 2× in the
  coupling). The bottleneck DaR's BatchNorm on 1×1 maps falls back to running statistics for
  a training batch of one (PyTorch would raise).
* Width scale ``base`` (32 in the paper) for the CPU demo; CCF parameters grow with base³.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import BatchNorm2dAnyBatch, check_size, load_matching
from iman.models.injection import gate

__all__ = [
    "CCF",
    "DCP",
    "DCNet",
    "build_dcnet",
    "harmonic_loss",
]

SMOOTH = 1e-6


def harmonic_loss(
    prob: Tensor,
    target: Tensor,
    alpha: float = 0.25,
    gamma: float = 5.0,
    sigma: float = 1e-3,
    scale: float = 10.0,
    clamp: bool = True,
) -> Tensor:
    """Mean of −scale·(1+σ)·α_t·(1−p_t)^(γ−1)·log p_t / (σ + (1−p_t)^γ) (paper Eq. 26).

    ``p_t`` = prob of the true class (+1e-6), ``α_t`` = α on foreground, 1 − α on background;
    the per-pixel value is clamped to [1e-6, 1 − 1e-6] as in the official code.
    """
    alpha_t = target * alpha + (1 - target) * (1 - alpha)
    p_t = target * prob + (1 - target) * (1 - prob) + SMOOTH
    q = 1 - p_t
    value = (-scale * (1 + sigma) * alpha_t * q.pow(gamma - 1) * torch.log(p_t)
             / (sigma + q.pow(gamma)))
    if clamp:
        value = value.clamp(SMOOTH, 1 - SMOOTH)
    return value.mean()


def _cbr(cin: int, cout: int, k: int = 3, norm: type[nn.BatchNorm2d] = nn.BatchNorm2d
         ) -> nn.Sequential:
    """Conv(k×k, same padding) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), norm(cout),
                         nn.ReLU(inplace=True))


class _AttentionBlock(nn.Module):
    """1×1 conv, softmax channel weights from GAP + linear, 3×3 conv."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.conv_in = _cbr(cin, mid, 1)
        self.fc = nn.Linear(mid, mid)
        self.conv_out = _cbr(mid, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        """Channel-reweighted features."""
        x = self.conv_in(x)
        w = torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=1)
        return self.conv_out(x * w[:, :, None, None])


class _Decomposition(nn.Module):
    """Decomposition subnet: foreground and background saliency logits at the input size."""

    def __init__(self, cin: int, b: int) -> None:
        super().__init__()
        self.pre = _cbr(cin, b)
        self.b1 = _AttentionBlock(b, b, 2 * b)
        self.b2 = _AttentionBlock(2 * b, 2 * b, 4 * b)
        self.b3 = _AttentionBlock(4 * b, 8 * b, 8 * b)
        self.b4 = _AttentionBlock(12 * b, 4 * b, 2 * b)
        self.b5 = _AttentionBlock(4 * b, 2 * b, b)
        self.fore = nn.Conv2d(b, 1, 1)
        self.back = nn.Conv2d(b, 1, 1)
        self.drop1, self.drop2 = nn.Dropout(0.3), nn.Dropout(0.3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(foreground logits, background logits)."""
        a1 = self.b1(self.pre(x))
        a2 = self.b2(F.max_pool2d(a1, 4))
        h = self.drop2(self.b3(self.drop1(F.max_pool2d(a2, 4))))
        h = self.b4(torch.cat([F.interpolate(h, scale_factor=4, mode="bilinear"), a2], 1))
        h = self.b5(torch.cat([F.interpolate(h, scale_factor=4, mode="bilinear"), a1], 1))
        return self.fore(h), self.back(1 - h)


class DCP(nn.Module):
    """Differentiable context pooling: 2× down-sampling by a learned, context-averaged weight."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.w = nn.Conv2d(ch, 1, 2)
        self.register_buffer("box", torch.full((1, 1, 3, 3), 1.0 / 9.0), persistent=False)

    def weight_map(self, x: Tensor) -> Tensor:
        """Raw weight map ``w`` (B, 1, H, W): a 2×2 conv, zero padding on the top/left."""
        return self.w(F.pad(x, (1, 0, 1, 0)))

    def forward(self, x: Tensor) -> Tensor:
        """Σ over each 2×2 block of x·w̄, w̄ = mean of w over the 3×3 neighbouring blocks."""
        w = self.weight_map(x)
        w_bar = F.conv2d(F.pad(w, (2, 2, 2, 2), mode="reflect"), self.box.to(w.dtype),
                         dilation=2)
        return F.avg_pool2d(x * w_bar, 2) * 4


class CCF(nn.Module):
    """Cross-correlation fusion of a decoder feature (``ch1``) and an encoder feature (``ch2``)."""

    def __init__(self, ch1: int, ch2: int | None = None) -> None:
        super().__init__()
        ch2 = ch2 or ch1
        self.dec_conv = nn.Conv1d(ch1, ch1, kernel_size=ch2)
        self.enc_conv = nn.Conv1d(ch2, ch2, kernel_size=ch1)
        self.fuse = _cbr(ch1 + ch2, ch1)

    def forward(self, dec: Tensor, enc: Tensor) -> Tensor:
        """Reweight each input's channels from the correlation matrix, then fuse."""
        corr = enc.flatten(2) @ dec.flatten(2).transpose(1, 2)  # (B, ch2, ch1)
        dec_w = self.dec_conv(corr.transpose(1, 2)).unsqueeze(-1)  # (B, ch1, 1, 1)
        enc_w = self.enc_conv(corr).unsqueeze(-1)  # (B, ch2, 1, 1)
        return self.fuse(torch.cat([dec_w * dec, enc_w * enc], dim=1))


class _DaRSimple(nn.Module):
    """Coupler: [f(fg), 1 − f(bg)], f = 1×1 then 3×3 conv-BN-ReLU to half width."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.fore = nn.Sequential(_cbr(ch, ch // 2, 1), _cbr(ch // 2, ch // 2))
        self.back = nn.Sequential(_cbr(ch, ch // 2, 1), _cbr(ch // 2, ch // 2))

    def forward(self, fore: Tensor, back: Tensor) -> Tensor:
        """Foreground features plus the reversed background features."""
        f = self.fore(fore).clamp(0, 1e6)
        b = self.back(back).clamp(0, 1e6)
        return torch.cat([f, 1 - b], dim=1)


class _DaR(nn.Module):
    """Bottleneck coupler: foreground query, dilated (1, 3, 5) GAP key/value from background."""

    def __init__(self, ch: int, theta: float = 0.2) -> None:
        super().__init__()
        h = ch // 2
        self.theta = theta
        self.pre_fore = nn.Sequential(_cbr(ch, h, 1), _cbr(h, h))
        self.pre_back = _cbr(ch, h, 1)
        self.post_back = _cbr(h, h)
        self.key_dil = nn.ModuleList(self._dilated(h, r) for r in (1, 3, 5))
        self.key_conv = _cbr(3 * h, h, 1, BatchNorm2dAnyBatch)
        self.value_dil = nn.ModuleList(self._dilated(h, r) for r in (1, 3, 5))
        self.value_conv = _cbr(3 * h, h, 1, BatchNorm2dAnyBatch)
        self.out_conv = _cbr(h, ch, 1)

    @staticmethod
    def _dilated(ch: int, rate: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(ch, ch, 3, padding=rate, dilation=rate),
                             nn.BatchNorm2d(ch), nn.ReLU(inplace=True))

    def forward(self, fore: Tensor, back: Tensor) -> Tensor:
        """θ·out_conv(σ(q·k)·v) + [fg, post(bg)]."""
        f = self.pre_fore(fore)
        b = self.pre_back(back)
        key = self.key_conv(torch.cat([d(b).mean((2, 3), keepdim=True) for d in self.key_dil],
                                      1)).flatten(1)  # (B, h)
        value = self.value_conv(torch.cat(
            [d(b).mean((2, 3), keepdim=True) for d in self.value_dil], 1)).flatten(1)
        weight = torch.sigmoid(torch.einsum("bchw,bc->bhw", f, key))  # (B, H, W)
        out = weight[:, None] * value[:, :, None, None]
        return self.theta * self.out_conv(out) + torch.cat([f, self.post_back(b)], dim=1)


class _Coupling(nn.Module):
    """Background U-net + foreground U-net (DCP, CCF) joined by DaR couplers."""

    def __init__(self, cin: int, b: int) -> None:
        super().__init__()
        w = [b, 2 * b, 4 * b, 8 * b, 16 * b]
        self.back_enc = nn.ModuleList(_cbr(c0, c1) for c0, c1 in zip([cin + 1, *w[:4]], w))
        self.back_dec = nn.ModuleList(_cbr(w[i + 1] + w[i], w[i]) for i in (3, 2, 1, 0))
        self.fore_enc = nn.ModuleList(_cbr(c0, c1) for c0, c1 in zip([cin + 1, *w[:4]], w))
        self.fore_dec = nn.ModuleList(_cbr(w[i + 1], w[i]) for i in (3, 2, 1, 0))
        self.dcp = nn.ModuleList(DCP(c) for c in w[:4])
        self.ccf = nn.ModuleList(CCF(w[i]) for i in (3, 2, 1, 0))
        self.dar_enc = nn.ModuleList(_DaRSimple(c) for c in w[:4])
        self.dar_mid = _DaR(w[4])
        self.dar_dec = nn.ModuleList(_DaRSimple(w[i]) for i in (3, 2, 1, 0))
        self.head = nn.Conv2d(b, 1, 1)
        self.drop = nn.ModuleList(nn.Dropout(0.3) for _ in range(4))

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear")

    def forward(self, img: Tensor, fore: Tensor, back: Tensor,
                margin: Tensor | None = None) -> Tensor:
        """Segmentation logits from the image and the two saliency probability maps."""
        # background U-net
        h = torch.cat([img, back], 1)
        back_skips, back_pools = [], []
        for i, conv in enumerate(self.back_enc):
            if i == 4:
                h = self.drop[0](h)
            h = conv(h)
            if i < 4:
                back_skips.append(h)
                h = F.max_pool2d(h, 2)
                back_pools.append(h)
        back_mid = h
        h = self.drop[1](h)
        back_dec = []
        for conv, skip in zip(self.back_dec, reversed(back_skips)):
            h = conv(torch.cat([self._up(h), skip], 1))
            back_dec.append(h)
        # foreground U-net coupled with the background one
        h = torch.cat([img, fore], 1)
        fore_skips = []
        for i in range(4):
            h = self.fore_enc[i](h)
            fore_skips.append(h)
            h = self.dar_enc[i](self.dcp[i](h), back_pools[i])
        h = self.fore_enc[4](self.drop[2](h))
        h = self.drop[3](self.dar_mid(h, back_mid))
        for j in range(4):
            h = self.fore_dec[j](self._up(h))
            h = self.ccf[j](h, gate(fore_skips[3 - j], margin))
            h = self.dar_dec[j](h, back_dec[j])
        return self.head(h)


class DCNet(nn.Module):
    """Decomposition subnet → saliency maps → coupling subnet; logits at the input size."""

    def __init__(
        self,
        in_channels: int = 1,
        base: int = 32,
        decomp_weight: float = 0.5,
        clamp_harmonic: bool = True,
    ) -> None:
        super().__init__()
        self.decomposition = _Decomposition(in_channels, base)
        self.coupling = _Coupling(in_channels, base)
        self.decomp_weight = decomp_weight
        self.clamp_harmonic = clamp_harmonic
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv1d | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor | dict[str, Tensor]:
        """Final logits; in training a dict with the saliency-map logits too."""
        fore, back = self.decomposition(x)
        logits = self.coupling(x, torch.sigmoid(fore), torch.sigmoid(back), margin)
        if not self.training:
            return logits
        return {"logits": logits, "fore": fore, "back": back}

    def loss(self, out: Tensor | dict[str, Tensor], target: Tensor,
             base: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """λ·Dice(fg) + λ·Dice(bg vs 1 − Y) + Dice(final) + harmonic(final) (Eq. 18, 27)."""
        logits = out["logits"] if isinstance(out, dict) else out
        total = base(logits, target) + harmonic_loss(torch.sigmoid(logits.float()),
                                                     target.float(), clamp=self.clamp_harmonic)
        if isinstance(out, dict):
            total = total + self.decomp_weight * (base(out["fore"], target)
                                                  + base(out["back"], 1 - target))
        return total


def build_dcnet(
    in_channels: dict[str, int],
    img_size: int,
    weights: str | None = None,
    **kwargs: Any,
) -> DCNet:
    """Build DC-Net (random init); ``weights`` may name a local whole-model state dict."""
    check_size("DC-Net", img_size, 16)
    model = DCNet(sum(in_channels.values()), **kwargs)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        load_matching(model, state, f"DC-Net ({weights})")
    return model
