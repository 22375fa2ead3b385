"""Swin-Unet: a U-shaped pure Swin Transformer (compared with in IMAN's Table I).

What the paper says (Cao et al. 2022): patch partition 4×4 + linear embedding, a Swin
encoder with patch merging, a symmetric decoder with patch expanding, skip connections fused
by concatenation + linear layer, and a final ×4 patch expanding + linear projection.

What the public code does (HuCaoFighting/Swin-Unet; IMAN's ``networks/`` copy; peers.md §1.3,
§4): patch 4, embed 96, encoder depths [2, 2, 6, 2] (IMAN's config), heads [3, 6, 12, 24],
window 7, MLP ratio 4, qkv bias, drop-path 0.1 (linear over the encoder blocks), no absolute
position embedding, patch norm. Shifted windows alternate (shift = window // 2 on odd blocks);
a stage whose grid is not larger than the window uses one window of the whole grid and no
shift. Decoder: a patch expand on the bottleneck (dim 768 → 384, grid ×2), then three up
layers at dims 384, 192, 96, each preceded by concat(skip) + Linear(2C → C). The class
argument ``depths_decoder`` ([1, 2, 2, 2]) is never used: the up layers take the encoder
depths mirrored (6, 2, 2 blocks) and the mirrored drop-path rates; the "1" is the bare patch
expand of the first up step. This is the configuration that gives the published parameter
count (41,380,068 for 3 channels at 224², 1 class; peers.md: 41.38 M); it is the default here
(``decoder_depths=None``). Final: LayerNorm, ×4 patch expand (Linear C → 16C, LayerNorm),
1×1 conv without bias → 1 class, no activation.

IMAN has no CNN skip to gate here: the margin enters as an extra input channel
(``gates_skips=False``; the workflow's ``input_channel`` injection), ``forward`` ignores it.

Assumptions beyond both / deviations:

* Any input divisible by 32 works: a block whose (possibly shifted) grid is not a multiple of
  its window zero-pads the token grid at the bottom/right after the first LayerNorm (as the
  Swin detection backbone does) and, unlike that backbone, masks the padded tokens out of
  the attention; at 224 with window 7 nothing is padded, so the paper configuration computes
  exactly the official function. The window of each stage is clamped to the stage grid of
  ``img_size`` at build time (official rule).
* ``small``/``demo`` variants (embed 48/32, window 4, depths [2, 2, 2, 2] or [1, 1, 1, 1])
  are ours, for 64 px inputs on CPU.
* Optional weights: ``weights=<path>`` with official (``{"model": ...}``) or timm
  ``swin_tiny_patch4_window7_224`` state-dict names; encoder tensors load by name, the
  decoder up layers receive the mirrored encoder layers (as Swin-Unet's ``load_from``);
  tensors whose shape differs (e.g. a patch embedding for another channel count) are skipped.
  ``model.load_report`` lists loaded / skipped / unused keys (``strict=False`` semantics).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import LoadReport, adapt_first_conv, read_state_file

__all__ = [
    "SwinUNet",
    "build_swinunet",
    "load_swin_weights",
    "shifted_window_mask",
]

log = logging.getLogger(__name__)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Identity in eval mode or at p = 0; else zero a sample's branch and rescale."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep


def window_partition(x: Tensor, w: int) -> Tensor:
    """(B, H, W, C) → (B·nW, w·w, C) non-overlapping windows."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: Tensor, w: int, h: int, wd: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B·nW, w·w, C) → (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // w) * (wd // w))
    x = windows.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def shifted_window_mask(h: int, w: int, hp: int, wp: int, window: int, shift: int) -> Tensor | None:
    """Additive attention mask (nW, w², w²) for a padded ``hp×wp`` grid of ``h×w`` tokens.

    Tokens attend only within the same region: the three shift bands per axis (as in the
    official Swin) and, separately, the padded tokens. ``None`` when nothing needs masking.
    """
    if shift == 0 and hp == h and wp == w:
        return None
    rows = torch.arange(hp)
    cols = torch.arange(wp)

    def bands(n: int, idx: Tensor) -> Tensor:
        if shift == 0:
            return torch.zeros_like(idx)
        return (idx >= n - window).long() + (idx >= n - shift).long()

    # labels in the rolled frame; rolled index r holds original index (r + shift) mod n
    row_pad = (rows + shift) % hp >= h
    col_pad = (cols + shift) % wp >= w
    label = bands(hp, rows)[:, None] * 3 + bands(wp, cols)[None, :]
    label = torch.where(row_pad[:, None] | col_pad[None, :], torch.full_like(label, -1), label)
    lw = window_partition(label[None, :, :, None].float(), window).squeeze(-1)
    diff = lw[:, :, None] != lw[:, None, :]
    return torch.zeros(diff.shape).masked_fill(diff, -100.0)


class WindowAttention(nn.Module):
    """Window multi-head self-attention with a learned relative position bias."""

    def __init__(self, dim: int, window: int, heads: int, qkv_bias: bool, attn_drop: float):
        super().__init__()
        self.window = window
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        ar = torch.arange(window)
        coords = torch.stack(torch.meshgrid(ar, ar, indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer("relative_position_index", index, persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x`` (B·nW, N, C); ``mask`` (nW, N, N) additive or ``None``."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """Linear → GELU → Linear (dropout after each)."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Two-layer MLP."""
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class SwinBlock(nn.Module):
    """(Shifted-)window attention block on a ``(B, H·W, C)`` token sequence."""

    def __init__(
        self,
        dim: int,
        grid: int,
        heads: int,
        window: int,
        shift: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        if grid <= window:
            window, shift = grid, 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads, qkv_bias, attn_drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop = nn.Dropout(drop)
        self._masks: dict[tuple[int, int, str], Tensor | None] = {}

    def _mask(self, h: int, w: int, hp: int, wp: int, device: torch.device) -> Tensor | None:
        key = (h, w, str(device))
        if key not in self._masks:
            m = shifted_window_mask(h, w, hp, wp, self.window, self.shift)
            self._masks[key] = None if m is None else m.to(device)
        return self._masks[key]

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """Attention in (shifted) windows, padded to a window multiple, then the MLP."""
        b, _, c = x.shape
        ws, s = self.window, self.shift
        y = self.norm1(x).view(b, h, w, c)
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        if hp != h or wp != w:
            y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(window_partition(y, ws), self._mask(h, w, hp, wp, y.device))
        y = window_reverse(y, ws, hp, wp)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        y = y[:, :h, :w].reshape(b, h * w, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2×2 neighbourhood concat (4C) → LayerNorm → Linear 4C → 2C, grid halved."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """``(B, H·W, C)`` → ``(B, H·W/4, 2C)``; official order x[0::2,0::2], [1::2,0::2], …"""
        b, _, c = x.shape
        x = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, -1, 4 * c)
        return self.reduction(self.norm(x))


class PatchExpand(nn.Module):
    """Linear C → s²·C/s … rearranged to an s× larger grid, then LayerNorm.

    ``scale=2``: Linear(C, 2C) → grid ×2 with C/2 channels (decoder steps);
    ``scale=4``: Linear(C, 16C) → grid ×4 with C channels (the final expand).
    """

    def __init__(self, dim: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.out_dim = dim // 2 if scale == 2 else dim
        self.expand = nn.Linear(dim, self.out_dim * scale * scale, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """``(B, H·W, C)`` → ``(B, sH·sW, C')``; channel order (p1, p2, c) as the official."""
        b = x.shape[0]
        s, c = self.scale, self.out_dim
        x = self.expand(x).view(b, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * s * w * s, c))


class Stage(nn.Module):
    """Swin blocks at one resolution, then an optional patch merging or patch expanding."""

    def __init__(
        self,
        dim: int,
        grid: int,
        depth: int,
        heads: int,
        window: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        resample: str | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                grid,
                heads,
                window,
                0 if i % 2 == 0 else window // 2,
                mlp_ratio,
                qkv_bias,
                drop,
                attn_drop,
                drop_path[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if resample == "down" else None
        self.upsample = PatchExpand(dim, 2) if resample == "up" else None

    def forward(self, x: Tensor, h: int, w: int) -> tuple[Tensor, int, int]:
        """Run the blocks, resample, return the new grid size."""
        for blk in self.blocks:
            x = blk(x, h, w)
        if self.downsample is not None:
            return self.downsample(x, h, w), h // 2, w // 2
        if self.upsample is not None:
            return self.upsample(x, h, w), h * 2, w * 2
        return x, h, w


class PatchEmbed(nn.Module):
    """Non-overlapping p×p conv patch embedding + LayerNorm."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        """Image → ``(B, h·w, C)`` tokens and the grid size."""
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class SwinUNet(nn.Module):
    """Swin encoder (patch merging) + symmetric Swin decoder (patch expanding) + skips."""

    def __init__(
        self,
        in_channels: int,
        img_size: int,
        patch_size: int = 4,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        decoder_depths: Sequence[int] | None = None,
        num_classes: int = 1,
    ) -> None:
        super().__init__()
        n = len(depths)
        if len(num_heads) != n:
            raise ValueError("depths and num_heads need the same length")
        if img_size % (patch_size * 2 ** (n - 1)):
            raise ValueError(f"img_size {img_size} not divisible by {patch_size * 2 ** (n - 1)}")
        dec = list(depths[::-1][1:]) if decoder_depths is None else list(decoder_depths)
        if len(dec) != n - 1:
            raise ValueError(f"decoder_depths needs {n - 1} entries (the up layers)")
        self.patch_size = patch_size
        self.num_layers = n
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        common = {"mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias, "drop": drop_rate}
        common["attn_drop"] = attn_drop_rate
        self.layers = nn.ModuleList(
            Stage(
                embed_dim * 2**i,
                grid // 2**i,
                depths[i],
                num_heads[i],
                window_size,
                drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                resample="down" if i < n - 1 else None,
                **common,
            )
            for i in range(n)
        )
        self.norm = nn.LayerNorm(embed_dim * 2 ** (n - 1))
        self.first_up = PatchExpand(embed_dim * 2 ** (n - 1), 2)
        self.concat_back_dim = nn.ModuleList()
        self.layers_up = nn.ModuleList()
        for j in range(1, n):
            i = n - 1 - j
            dim = embed_dim * 2**i
            mirror = dpr[sum(depths[:i]) : sum(depths[: i + 1])]
            rates = [mirror[k] if k < len(mirror) else mirror[-1] for k in range(dec[j - 1])]
            self.concat_back_dim.append(nn.Linear(2 * dim, dim))
            self.layers_up.append(
                Stage(
                    dim,
                    grid // 2**i,
                    dec[j - 1],
                    num_heads[i],
                    window_size,
                    drop_path=rates,
                    resample="up" if j < n - 1 else None,
                    **common,
                )
            )
        self.norm_up = nn.LayerNorm(embed_dim)
        self.up = PatchExpand(embed_dim, patch_size)
        self.output = nn.Conv2d(embed_dim, num_classes, 1, bias=False)
        self.apply(self._init_weights)
        self.load_report: dict[str, list[str]] = {}

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Truncated-normal linears (std 0.02, zero bias), unit LayerNorms (official init)."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Logits ``(B, 1, H, W)``; ``margin`` is ignored (IMAN feeds it as an input channel)."""
        del margin
        b = x.shape[0]
        step = self.patch_size * 2 ** (self.num_layers - 1)
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"input size must be divisible by {step}, got {tuple(x.shape[-2:])}")
        t, h, w = self.patch_embed(x)
        t = self.pos_drop(t)
        skips = []
        for layer in self.layers:
            skips.append(t)
            t, h, w = layer(t, h, w)
        t = self.first_up(self.norm(t), h, w)
        h, w = h * 2, w * 2
        for j, layer in enumerate(self.layers_up, start=1):
            t = self.concat_back_dim[j - 1](torch.cat([t, skips[self.num_layers - 1 - j]], -1))
            t, h, w = layer(t, h, w)
        t = self.up(self.norm_up(t), h, w)
        s = self.patch_size
        t = t.view(b, h * s, w * s, -1).permute(0, 3, 1, 2)
        return self.output(t)


_TIMM_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")


def _official_names(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a timm Swin state dict to the official naming (merging at the end of a stage)."""
    timm_style = any(k.startswith("layers.3.downsample.") for k in sd) or any(
        k.startswith("head.fc.") for k in sd
    )
    if not timm_style:
        return dict(sd)
    out = {}
    for k, v in sd.items():
        m = _TIMM_DOWNSAMPLE.match(k)
        if m:
            k = f"layers.{int(m.group(1)) - 1}.downsample." + k[m.end() :]
        out[k] = v
    return out


def _target_name(key: str, num_layers: int) -> list[str]:
    """Model parameter names that a (official-named) Swin-T tensor initialises."""
    m = re.match(r"^layers\.(\d+)\.blocks\.(.*)$", key)
    if m:
        i = int(m.group(1))
        names = [key]
        j = num_layers - 1 - i
        if j >= 1:
            names.append(f"layers_up.{j - 1}.blocks.{m.group(2)}")
        return names
    return [key]


def load_swin_weights(
    model: SwinUNet, weights: str | Path | Mapping[str, Tensor]
) -> LoadReport:
    """Load Swin-T tensors by name (encoder, and mirrored into the decoder); return a report.

    Accepts a path to a ``torch.save`` file (a state dict, or one under ``"model"`` or
    ``"state_dict"``) or a state dict. ``missing``: encoder tensors (patch embedding, stages,
    final norm) the file does not fill; ``mismatched``: shape mismatches; ``unexpected``:
    file keys with no target (the classifier head). The RGB patch embedding is adapted to
    the input channels (:func:`~iman.models.blocks.adapt_first_conv`).
    """
    if isinstance(weights, Mapping):
        sd: Mapping[str, Tensor] = weights
        source = "<state dict>"
    else:
        sd, source = read_state_file(weights), str(weights)
    sd = _official_names(sd)
    own = model.state_dict()
    report = LoadReport(source, "Swin-T (Swin-Unet encoder and mirrored decoder)")
    update: dict[str, Tensor] = {}
    bad: set[str] = set()
    for key, value in sd.items():
        targets = [t for t in _target_name(key, model.num_layers) if t in own]
        if not targets:
            report.unexpected.append(key)
        for t in targets:
            if t == "patch_embed.proj.weight":
                value = adapt_first_conv(value, own[t].shape[1])
            if own[t].shape != value.shape:
                bad.add(t)
                report.mismatched.append(
                    f"{key} -> {t} {tuple(value.shape)} != {tuple(own[t].shape)}")
            else:
                update[t] = value
                report.loaded.append(t)
    report.missing = [k for k in own
                      if k.startswith(_ENCODER) and k not in update and k not in bad]
    model.load_state_dict(update, strict=False)
    model.load_report = report
    log.info("%s", report.text())
    return report


_ENCODER = ("patch_embed.", "layers.", "norm.")
"""Model tensors a Swin-T classification checkpoint fills (the rest is decoder)."""


def build_swinunet(
    in_channels: dict[str, int], img_size: int, weights: str | None = None, **kwargs: Any
) -> SwinUNet:
    """Registry constructor: channels of all consumed modalities, optional Swin-T weights."""
    model = SwinUNet(sum(in_channels.values()), img_size, **kwargs)
    if weights:
        load_swin_weights(model, weights).check()
    return model
