"""TransUNet (R50-ViT-B/16 hybrid), the backbone of both IMAN branches.

What the paper says (Chen et al. 2021, used by IMAN for the US and the CEUS branch): a CNN
(ResNet-50 v2) extracts features down to 1/16, a ViT (12 layers, hidden 768) encodes the 1/16
grid as a token sequence, and a "cascaded upsampler" decodes it with three CNN skips.

What the public code does (Beckschen/TransUNet, xxzcs/IMAN ``networks/``; peers.md §1.3, §3):

* ResNet-V2 hybrid: root = weight-standardised 7×7/2 conv → 64, GroupNorm(32, eps 1e-6),
  ReLU (1/2, first skip); max-pool 3×3/2 *without* padding (1/4 − 1 px), then bottleneck
  stages of (3, 4, 9) units to 256, 512, 1024 channels (strides 1, 2, 2; stride on the 3×3
  conv; conv → GN → ReLU ordering; projection = std-conv 1×1 + GroupNorm(C, C)). The
  1/4 and 1/8 skips are zero-padded at the bottom/right to the exact size.
* 1×1 patch embedding of the 1024-channel 1/16 map → 768, learned position embedding (zeros
  at init), dropout 0.1; 12 pre-norm blocks (LayerNorm eps 1e-6, 12 heads, MLP 3072 with GELU,
  dropout 0.1, attention dropout 0); final LayerNorm.
* Decoder: 3×3 conv-BN-ReLU 768 → 512, then 4 blocks (bilinear ×2 with aligned corners,
  concat skip, 2 × 3×3 conv-BN-ReLU) with channels (256, 128, 64, 16) and skips (512, 256, 64,
  none); 3×3 conv head → 1 class, no activation. 105,275,921 parameters at 224², 3 channels.
* IMAN's change: the margin (bilinearly resized) multiplies the three CNN skip features; the
  transformer path is not gated. Reproduced here: ``forward(x, margin)`` gates the skips.

Assumptions beyond both: ``in_channels`` sets the root conv width directly (US grey = 1
channel, CEUS = T frames) instead of the official grey → RGB repeat; the ``small``/``tiny``
variants (fewer units, narrower ResNet, hidden 192–256, 2–4 layers) are ours, for the CPU
demo scale. If the input grid differs from the one the model was built for, the position
embedding is bilinearly resized on the fly.

Optional weights: ``weights=<path to R50+ViT-B_16.npz>`` maps the official ImageNet-21k npz
keys onto the modules (HWIO → OIHW convs, per-head attention kernels flattened, position
embedding without the class token, zoomed to the grid). The RGB root conv is adapted to the
input channels: as is for 3, summed over RGB for 1 (the same function as the official grey →
RGB repeat), tiled and divided by k for 3k (k frames, each grey repeated to RGB under
ImageNet normalisation; IMAN's authors left it at random init for their 5-frame CEUS
branch). A file that misses or mismatches a mapped tensor is an error naming the file; the
report is kept in ``model.load_report``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import (
    UNREADABLE,
    LoadReport,
    adapt_std_first_conv,
    read_state_file,
    standardise,
    unreadable,
)
from iman.models.injection import gate

__all__ = [
    "TransUNet",
    "build_transunet",
    "load_r50_vit",
    "load_r50_vit_npz",
    "resize_pos_embed",
    "timm_to_npz",
]

log = logging.getLogger(__name__)


class StdConv2d(nn.Conv2d):
    """Conv with weight standardisation (zero mean, unit variance per output filter).

    ``gain=True`` (the root conv) adds a fixed per-filter ``gain`` buffer (ones unless a
    pretrained kernel was adapted to other input channels, :func:`adapt_std_first_conv`):
    the effective kernel is ``gain * standardise(weight)``.
    """

    EPS = 1e-5

    def __init__(self, *args: Any, gain: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gain: Tensor | None
        if gain:
            self.register_buffer("gain", torch.ones(self.out_channels, 1, 1, 1))
        else:
            self.gain = None

    def forward(self, x: Tensor) -> Tensor:
        """Standardise the kernel, then convolve (BiT / ResNet-V2 convention, eps 1e-5)."""
        w = standardise(self.weight, self.EPS)
        if self.gain is not None:
            w = w * self.gain
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any
                              ) -> None:
        """Checkpoints from before the gain existed load with gain 1 (their behaviour)."""
        if self.gain is not None and prefix + "gain" not in state_dict:
            state_dict[prefix + "gain"] = torch.ones_like(self.gain)
        super()._load_from_state_dict(state_dict, prefix, *args)


class Bottleneck(nn.Module):
    """ResNet-V2 bottleneck unit as in the TransUNet hybrid (GroupNorm, stride on the 3×3)."""

    def __init__(self, cin: int, cout: int, cmid: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = StdConv2d(cin, cmid, 1, bias=False)
        self.gn1 = nn.GroupNorm(32, cmid, eps=1e-6)
        self.conv2 = StdConv2d(cmid, cmid, 3, stride=stride, padding=1, bias=False)
        self.gn2 = nn.GroupNorm(32, cmid, eps=1e-6)
        self.conv3 = StdConv2d(cmid, cout, 1, bias=False)
        self.gn3 = nn.GroupNorm(32, cout, eps=1e-6)
        self.downsample: nn.Module | None = None
        self.gn_proj: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = StdConv2d(cin, cout, 1, stride=stride, bias=False)
            self.gn_proj = nn.GroupNorm(cout, cout)

    def forward(self, x: Tensor) -> Tensor:
        """Residual (projected when shape changes) plus the three-conv branch, then ReLU."""
        residual = x
        if self.downsample is not None and self.gn_proj is not None:
            residual = self.gn_proj(self.downsample(x))
        y = F.relu(self.gn1(self.conv1(x)))
        y = F.relu(self.gn2(self.conv2(y)))
        y = self.gn3(self.conv3(y))
        return F.relu(residual + y)


class ResNetV2Hybrid(nn.Module):
    """Root + three bottleneck stages; returns the 1/16 map and the skips (1/8, 1/4, 1/2)."""

    def __init__(self, in_channels: int, units: Sequence[int], width: int) -> None:
        super().__init__()
        self.width = width
        self.root_conv = StdConv2d(in_channels, width, 7, stride=2, padding=3, bias=False,
                                   gain=True)
        self.root_gn = nn.GroupNorm(32, width, eps=1e-6)
        stages = []
        cin = width
        for i, n in enumerate(units):
            cout, cmid, stride = width * 4 * 2**i, width * 2**i, 1 if i == 0 else 2
            stage = [Bottleneck(cin, cout, cmid, stride)]
            stage += [Bottleneck(cout, cout, cmid) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Feature map at 1/16 and the skips, deepest first, padded to exact sizes."""
        size = x.shape[-1]
        x = F.relu(self.root_gn(self.root_conv(x)))
        feats = [x]
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=0)
        for i, stage in enumerate(self.stages[:-1]):
            x = stage(x)
            right = size // (4 * 2**i)
            ph, pw = right - x.shape[-2], right - x.shape[-1]
            feats.append(F.pad(x, (0, pw, 0, ph)) if ph or pw else x)
        x = self.stages[-1](x)
        return x, feats[::-1]


class Attention(nn.Module):
    """Multi-head self-attention with separate query/key/value/out projections (ViT naming)."""

    def __init__(self, dim: int, heads: int, attn_dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout

    def forward(self, x: Tensor) -> Tensor:
        """Scaled dot-product attention over all tokens."""
        b, n, d = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        p = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Two-layer GELU MLP with dropout after each layer (Xavier init, as the official code)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """fc1 → GELU → dropout → fc2 → dropout."""
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, attn_dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = Mlp(dim, mlp_dim, dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x + attn(norm(x)), then x + mlp(norm(x))."""
        x = x + self.attn(self.attn_norm(x))
        return x + self.ffn(self.ffn_norm(x))


class ConvBNReLU(nn.Sequential):
    """3×3 conv (no bias) + BatchNorm + ReLU, the decoder's building block."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """Bilinear ×2 (aligned corners), concat an optional skip, two conv-BN-ReLU."""

    def __init__(self, cin: int, cout: int, skip: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(cin + skip, cout)
        self.conv2 = ConvBNReLU(cout, cout)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        """Upsample, fuse the skip, convolve."""
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


def resize_pos_embed(posemb: Tensor, grid: tuple[int, int]) -> Tensor:
    """Resize a ``(1, h*w, D)`` square-grid position embedding to ``grid`` (bilinear).

    Corners are aligned, which is what ``scipy.ndimage.zoom(order=1)`` (the official
    loader) does.
    """
    n, d = posemb.shape[1], posemb.shape[2]
    side = round(n**0.5)
    if side * side != n:
        raise ValueError(f"position embedding of {n} tokens is not a square grid")
    if (side, side) == tuple(grid):
        return posemb
    g = posemb.reshape(1, side, side, d).permute(0, 3, 1, 2)
    g = F.interpolate(g, size=grid, mode="bilinear", align_corners=True)
    return g.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], d)


class TransUNet(nn.Module):
    """R50-ViT hybrid encoder + cascaded upsampler; the margin gates the CNN skips."""

    def __init__(
        self,
        in_channels: int,
        img_size: int,
        resnet_units: Sequence[int] = (3, 4, 9),
        width: int = 64,
        hidden: int = 768,
        layers: int = 12,
        heads: int = 12,
        mlp_dim: int = 3072,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        head_channels: int = 512,
        decoder_channels: Sequence[int] = (256, 128, 64, 16),
        n_skip: int = 3,
        num_classes: int = 1,
    ) -> None:
        super().__init__()
        if img_size % 32:
            raise ValueError(f"img_size must be divisible by 32, got {img_size}")
        if len(resnet_units) != 3 or len(decoder_channels) != 4 or not 0 <= n_skip <= 3:
            raise ValueError("need 3 ResNet stages, 4 decoder channels and 0..3 skips")
        self.in_channels = in_channels
        self.grid = (img_size // 16, img_size // 16)
        self.resnet = ResNetV2Hybrid(in_channels, resnet_units, width)
        self.patch_embed = nn.Conv2d(width * 16, hidden, kernel_size=1)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], hidden))
        self.embed_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden, heads, mlp_dim, dropout, attn_dropout) for _ in range(layers)
        )
        self.encoder_norm = nn.LayerNorm(hidden, eps=1e-6)
        self.conv_more = ConvBNReLU(hidden, head_channels)
        skips = [width * 8, width * 4, width, 0]
        skips = [s if i < n_skip else 0 for i, s in enumerate(skips)]
        ins = [head_channels, *decoder_channels[:-1]]
        self.n_skip = n_skip
        self.decoder = nn.ModuleList(
            DecoderBlock(i, o, s) for i, o, s in zip(ins, decoder_channels, skips)
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)
        self.load_report: dict[str, list[str]] = {}

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Logits ``(B, 1, H, W)``; ``margin`` (B,1,H,W) multiplies the three skips."""
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"input size must be divisible by 32, got {h}×{w}")
        feat, skips = self.resnet(x)
        tokens = self.patch_embed(feat)
        gh, gw = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = self.embed_drop(tokens + resize_pos_embed(self.pos_embed, (gh, gw)))
        for blk in self.blocks:
            tokens = blk(tokens)
        tokens = self.encoder_norm(tokens)
        y = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)
        y = self.conv_more(y)
        for i, block in enumerate(self.decoder):
            skip = gate(skips[i], margin) if i < self.n_skip else None
            y = block(y, skip)
        return self.head(y)


def _npz_mapping(model: TransUNet) -> list[tuple[str, Tensor, str, Callable[[Tensor], Tensor]]]:
    """``(npz key, target parameter, name, transform)`` for every loadable tensor."""

    def conv(t: Tensor) -> Tensor:
        return t.permute(3, 2, 0, 1)

    def dense(t: Tensor) -> Tensor:
        return t.t()

    def heads_in(t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], -1).t()

    def heads_out(t: Tensor) -> Tensor:
        return t.reshape(-1, t.shape[-1]).t()

    def vec(t: Tensor) -> Tensor:
        return t.reshape(-1)

    out: list[tuple[str, Tensor, str, Callable[[Tensor], Tensor]]] = []

    def add(key: str, mod: nn.Module, attr: str, fn: Callable[[Tensor], Tensor]) -> None:
        out.append((key, getattr(mod, attr), f"{key} -> {attr}", fn))

    r = model.resnet
    add("gn_root/scale", r.root_gn, "weight", vec)
    add("gn_root/bias", r.root_gn, "bias", vec)
    for b, stage in enumerate(r.stages, start=1):
        for u, unit in enumerate(stage, start=1):
            p = f"block{b}/unit{u}/"
            for j in (1, 2, 3):
                add(f"{p}conv{j}/kernel", getattr(unit, f"conv{j}"), "weight", conv)
                add(f"{p}gn{j}/scale", getattr(unit, f"gn{j}"), "weight", vec)
                add(f"{p}gn{j}/bias", getattr(unit, f"gn{j}"), "bias", vec)
            if unit.downsample is not None and unit.gn_proj is not None:
                add(f"{p}conv_proj/kernel", unit.downsample, "weight", conv)
                add(f"{p}gn_proj/scale", unit.gn_proj, "weight", vec)
                add(f"{p}gn_proj/bias", unit.gn_proj, "bias", vec)
    add("embedding/kernel", model.patch_embed, "weight", conv)
    add("embedding/bias", model.patch_embed, "bias", vec)
    add("Transformer/encoder_norm/scale", model.encoder_norm, "weight", vec)
    add("Transformer/encoder_norm/bias", model.encoder_norm, "bias", vec)
    att, mlp = "MultiHeadDotProductAttention_1", "MlpBlock_3"
    for i, blk in enumerate(model.blocks):
        p = f"Transformer/encoderblock_{i}/"
        for name in ("query", "key", "value"):
            add(f"{p}{att}/{name}/kernel", getattr(blk.attn, name), "weight", heads_in)
            add(f"{p}{att}/{name}/bias", getattr(blk.attn, name), "bias", vec)
        add(f"{p}{att}/out/kernel", blk.attn.out, "weight", heads_out)
        add(f"{p}{att}/out/bias", blk.attn.out, "bias", vec)
        add(f"{p}{mlp}/Dense_0/kernel", blk.ffn.fc1, "weight", dense)
        add(f"{p}{mlp}/Dense_0/bias", blk.ffn.fc1, "bias", vec)
        add(f"{p}{mlp}/Dense_1/kernel", blk.ffn.fc2, "weight", dense)
        add(f"{p}{mlp}/Dense_1/bias", blk.ffn.fc2, "bias", vec)
        add(f"{p}LayerNorm_0/scale", blk.attn_norm, "weight", vec)
        add(f"{p}LayerNorm_0/bias", blk.attn_norm, "bias", vec)
        add(f"{p}LayerNorm_2/scale", blk.ffn_norm, "weight", vec)
        add(f"{p}LayerNorm_2/bias", blk.ffn_norm, "bias", vec)
    return out


def _read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an npz file; a read failure names the file."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (*UNREADABLE, zipfile.BadZipFile) as err:
        raise unreadable(path, err, "an npz archive") from None


def timm_to_npz(state: Mapping[str, Any], heads: int | None = None) -> dict[str, np.ndarray]:
    """timm's ``vit_base_r50_s16_224`` names (``patch_embed.backbone.*``, fused ``qkv``) →
    the official npz names and layouts (HWIO kernels, per-head q/k/v), so one mapping loads
    both. Tensors without an npz counterpart (timm's classifier ``head``, ``pre_logits``)
    keep their timm name and are reported as unused. ``heads``: attention heads (default:
    64-wide heads, as ViT-B's 12 × 64)."""
    out: dict[str, np.ndarray] = {}
    bb = "patch_embed.backbone."
    for key, value in state.items():
        v = value.detach().float().cpu().numpy() if isinstance(value, Tensor) else \
            np.asarray(value)
        name = key
        if key.startswith(bb + "stem."):
            name = {"conv.weight": "conv_root/kernel", "norm.weight": "gn_root/scale",
                    "norm.bias": "gn_root/bias"}.get(key[len(bb) + 5:], key)
        elif key.startswith(bb + "stages."):
            parts = key[len(bb) + 7:].split(".")  # i, blocks, j, module..., param
            if len(parts) >= 5 and parts[1] == "blocks":
                unit = f"block{int(parts[0]) + 1}/unit{int(parts[2]) + 1}/"
                mod, param = ".".join(parts[3:-1]), parts[-1]
                local = {"downsample.conv": "conv_proj", "downsample.norm": "gn_proj"}.get(
                    mod, mod.replace("norm", "gn"))
                kind = {"weight": "kernel" if "conv" in local else "scale",
                        "bias": "bias"}[param]
                name = unit + f"{local}/{kind}"
        elif key == "patch_embed.proj.weight":
            name = "embedding/kernel"
        elif key == "patch_embed.proj.bias":
            name = "embedding/bias"
        elif key == "pos_embed":
            name = "Transformer/posembed_input/pos_embedding"
        elif key == "cls_token":
            name = "cls"
        elif key in ("norm.weight", "norm.bias"):
            name = "Transformer/encoder_norm/" + ("scale" if key.endswith("weight") else "bias")
        if name.endswith("kernel") and v.ndim == 4:
            v = v.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if name != key or not key.startswith("blocks."):
            out[name] = v
            continue
        i, rest = key.split(".")[1], ".".join(key.split(".")[2:])
        p = f"Transformer/encoderblock_{i}/"
        att, mlp = p + "MultiHeadDotProductAttention_1/", p + "MlpBlock_3/"
        simple = {"norm1.weight": p + "LayerNorm_0/scale", "norm1.bias": p + "LayerNorm_0/bias",
                  "norm2.weight": p + "LayerNorm_2/scale", "norm2.bias": p + "LayerNorm_2/bias",
                  "mlp.fc1.weight": mlp + "Dense_0/kernel", "mlp.fc1.bias": mlp + "Dense_0/bias",
                  "mlp.fc2.weight": mlp + "Dense_1/kernel", "mlp.fc2.bias": mlp + "Dense_1/bias",
                  "attn.proj.bias": att + "out/bias"}
        if rest in simple:
            out[simple[rest]] = v.T if v.ndim == 2 else v
        elif rest in ("attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight"):
            dim = v.shape[-1] if rest != "attn.qkv.bias" else v.shape[0] // 3
            heads = heads or max(1, dim // 64)
            d = dim // heads
            if rest == "attn.qkv.weight":  # (3·dim, dim) -> 3 × (dim, heads, d)
                for n, w in zip(("query", "key", "value"), np.split(v, 3, 0)):
                    out[att + f"{n}/kernel"] = w.T.reshape(dim, heads, d)
            elif rest == "attn.qkv.bias":
                for n, b in zip(("query", "key", "value"), np.split(v, 3, 0)):
                    out[att + f"{n}/bias"] = b.reshape(heads, d)
            else:  # proj (dim, dim) -> (heads, d, dim)
                out[att + "out/kernel"] = v.T.reshape(heads, d, dim)
        else:
            out[key] = v
    return out


def is_npz(path: str | Path) -> bool:
    """True when ``path`` is an npz archive (a zip of ``.npy`` members)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(".npy") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return Path(path).suffix == ".npz"


def load_r50_vit(model: TransUNet, weights: str | Path | Mapping[str, Any],
                 heads: int | None = None) -> LoadReport:
    """Load R50+ViT-B/16 weights from the official npz or from timm's layout (a
    ``.pth``/``.safetensors`` of ``vit_base_r50_s16_224``); a report (see
    :func:`load_r50_vit_npz`). ``heads``: attention heads of a timm state given as a mapping
    (default: the model's)."""
    heads = heads or model.blocks[0].attn.heads
    if isinstance(weights, Mapping):
        if any(k.startswith("patch_embed.") for k in weights):
            return load_r50_vit_npz(model, timm_to_npz(weights, heads),
                                    source="<timm state dict>")
        return load_r50_vit_npz(model, weights)
    if is_npz(weights):
        return load_r50_vit_npz(model, weights)
    state = read_state_file(weights)
    report = load_r50_vit_npz(model, timm_to_npz(state, heads),
                              source=str(weights))
    report.what = "R50+ViT-B/16 (TransUNet encoder, timm layout)"
    return report


def load_r50_vit_npz(model: TransUNet, weights: str | Path | Mapping[str, Any],
                     source: str | None = None) -> LoadReport:
    """Copy the official ``R50+ViT-B_16.npz`` tensors into ``model``; return a report.

    ``missing``: mapped npz keys absent from the file; ``mismatched``: shape mismatches;
    ``unexpected``: file keys with no target. The RGB root conv is adapted to the model's
    input channels exactly under weight standardisation
    (:func:`~iman.models.blocks.adapt_std_first_conv`: T identical frames, or grey, give the
    pretrained response); position embeddings drop the class token and are resized to the
    model's grid. The decoder is never in the file.
    """
    if isinstance(weights, Mapping):
        arrays = {k: np.asarray(v) for k, v in weights.items()}
        source = source or "<arrays>"
    else:
        arrays = _read_npz(weights)
        source = source or str(weights)
    report = LoadReport(source, "R50+ViT-B/16 (TransUNet encoder)")

    def put(key: str, param: Tensor, value: Tensor) -> None:
        if value.shape != param.shape:
            report.mismatched.append(f"{key} {tuple(value.shape)} != {tuple(param.shape)}")
            return
        param.copy_(value.to(param.dtype))
        report.loaded.append(key)

    def array(key: str) -> Tensor | None:
        if key not in arrays:
            report.missing.append(key)
            return None
        return torch.from_numpy(np.ascontiguousarray(arrays[key]))

    with torch.no_grad():
        for key, param, _, fn in _npz_mapping(model):
            value = array(key)
            if value is not None:
                put(key, param, fn(value))
        kernel = array("conv_root/kernel")
        if kernel is not None:
            root = model.resnet.root_conv
            kernel = kernel.permute(3, 2, 0, 1).float()
            if kernel.shape[0] == root.out_channels and kernel.shape[2:] == root.weight.shape[2:]:
                raw, gain = adapt_std_first_conv(kernel, model.in_channels, StdConv2d.EPS)
                put("conv_root/kernel", root.weight, raw)
                if root.gain is not None and raw.shape == root.weight.shape:
                    root.gain.copy_(gain)
            else:
                put("conv_root/kernel", root.weight, kernel)
        pe = array("Transformer/posembed_input/pos_embedding")
        if pe is not None:
            n = pe.shape[1]
            if round(n**0.5) ** 2 != n:
                pe = pe[:, 1:]
            if pe.shape[-1] != model.pos_embed.shape[-1]:
                report.mismatched.append(f"Transformer/posembed_input/pos_embedding width "
                                         f"{pe.shape[-1]} != {model.pos_embed.shape[-1]}")
            else:
                put("Transformer/posembed_input/pos_embedding", model.pos_embed,
                    resize_pos_embed(pe.float(), model.grid))
    used = {k for k, _, _, _ in _npz_mapping(model)}
    used |= {"conv_root/kernel", "Transformer/posembed_input/pos_embedding"}
    report.unexpected = sorted(k for k in arrays if k not in used)
    model.load_report = report
    log.info("%s", report.text())
    return report


def build_transunet(
    in_channels: dict[str, int], img_size: int, weights: str | None = None, **kwargs: Any
) -> TransUNet:
    """Registry constructor: channels of all consumed modalities, optional npz weights."""
    model = TransUNet(sum(in_channels.values()), img_size, **kwargs)
    if weights:
        load_r50_vit(model, weights).check()
    return model
