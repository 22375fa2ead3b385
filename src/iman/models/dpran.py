"""DpRAN (Wan et al., IEEE JBHI 2023): dynamic perfusion representation and aggregation network.

What the paper and the public code (wanpeng16/DpRAN ``model.DPRAN``; described in
``/work/shared/reference/peers.md`` section 7) do for a CEUS sequence of T frames:

* A per-frame U-net encoder shared by all frames (widths (32, 32, 64, 128)): a 1 -> 16 -> 32
  3x3 conv-BN-ReLU stem at full resolution, then 4 x (2x max-pool + "dense" block) giving
  features at 1/2, 1/4, 1/8, 1/16. A dense block is two 3x3 conv-BN-ReLU layers (the second
  sees ``concat[input, first]``) plus a 1x1 conv-BN-ReLU shortcut, added.
* Perfusion Excitation (PE) per level: spatial correlation between consecutive frames'
  features (patch 21, dilation_patch 2 -> 441 displacement channels, summed over feature
  channels; the ``spatial-correlation-sampler`` CUDA extension) -> BN -> bias-free 1x1 conv
  to the level's width; the last frame gets zeros, so PE features have T frames too.
* Decoder: at each level a cross-attention temporal aggregation (AFF) of two attention units:
  one aggregates the PE features with the query from the appearance (encoder) feature of the
  query frame, the other aggregates the appearance features with the query from the PE
  feature of that frame. Keys/queries are 1x1 projections (dim 32) of 4x4 average-pooled
  features, keys with a sinusoidal temporal encoding (after scaling the pooled feature by
  sqrt(C)); scores = <q, k>/sqrt(32), softmax over time, upsampled (nearest) to the feature
  size, weighting 1x1-projected values; the query frame's feature is added back. The summed
  AFF output is concatenated with the transposed-conv (2x2, stride 2) upsampled decoder
  feature and refined by a dense block. A final transposed conv to full resolution
  (width/2) and a 1x1 head give the logits.
* Parameters (T-independent): stage 2 1,041,289 + stage 1 443,297 = 1,484,586.

Choices made here:

* The correlation is computed in plain PyTorch (:func:`spatial_correlation`: loop over the
  displacements, multiply-and-sum over channels, zero outside the image), which is what the
  extension computes (no normalisation); no CUDA/C++ extension is needed.
* Query frame (``query="critical"``, both variants): the stage-1 frame segmenter
  (:class:`FrameSegmenter`: the same per-frame encoder, a 1x1 conv at 1/16 and bilinear
  upsampling; 443,297 parameters at paper size, as the original) predicts every frame, and
  the frame whose prediction has the lowest mean binary entropy inside its foreground is the
  query (:func:`critical_frames`). Deviations: the choice is made per sample (the original
  uses sample 0's index for the whole batch); a sample whose frames all predict no foreground
  uses the middle frame; stage 1 is trained in the same job, jointly, by its own per-frame
  Dice loss (its graph is detached from stage 2, which only reads the chosen index), instead
  of a separate 50-epoch pre-training run. ``query="middle"`` skips stage 1 and always uses
  frame ``T // 2``.
* Any input size divisible by 16: the attention maps are resized to each feature's size
  instead of the hard-coded 21x23 ... 168x184 of the 336x368 original; the temporal encoding
  is computed for any T (the original table stops at 16 frames).
* The T input channels are the frames (``in_channels = {"ceus": T}``); under
  ``input_channel`` injection the margin simply becomes one more frame.
* Margin: the aggregated skip features at 1/8, 1/4, 1/2 are multiplied by the margin
  (``gates_skips=True``); the 1/16 bottleneck aggregation is not gated.
* ``demo`` variant: widths (8, 8, 16, 32), patch 5 with dilation 2 (25 displacements), key dim 8.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.models.blocks import check_size, load_weight_file
from iman.models.injection import gate

__all__ = [
    "QUERIES",
    "DpRAN",
    "FrameSegmenter",
    "PerfusionExcitation",
    "build_dpran",
    "critical_frames",
    "spatial_correlation",
    "temporal_encoding",
]

PAPER_WIDTHS = (32, 32, 64, 128)
QUERIES = ("critical", "middle")


def spatial_correlation(f1: Tensor, f2: Tensor, patch: int, dilation: int) -> Tensor:
    """Correlation volume ``(N, patch*patch, H, W)`` between ``f1`` and displaced ``f2``.

    Channel ``iy * patch + ix`` holds ``sum_c f1[:, c, y, x] * f2[:, c, y + dy, x + dx]``
    with ``dy = (iy - patch // 2) * dilation`` (same for x); ``f2`` is zero outside the
    image. Matches ``spatial_correlation_sample(kernel_size=1, patch_size=patch,
    dilation_patch=dilation)``. Loops over displacements so memory stays at one product.
    """
    if patch % 2 == 0:
        raise ValueError("patch must be odd")
    r = (patch // 2) * dilation
    _, _, H, W = f1.shape
    padded = F.pad(f2, (r, r, r, r))
    out = []
    for iy in range(patch):
        for ix in range(patch):
            y0, x0 = iy * dilation, ix * dilation
            out.append((f1 * padded[:, :, y0 : y0 + H, x0 : x0 + W]).sum(dim=1))
    return torch.stack(out, dim=1)


def temporal_encoding(t: int, dim: int) -> Tensor:
    """Sinusoidal encoding ``(t, dim)``: sin on even channels, cos on odd ones."""
    pos = torch.arange(t, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    enc = torch.zeros(t, dim)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return enc


class _DenseBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers (dense input to the second) + 1x1 conv-BN-ReLU shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.l1 = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()
        )
        self.l2 = nn.Sequential(
            nn.Conv2d(c_in + c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        """Dense pair plus shortcut."""
        return self.shortcut(x) + self.l2(torch.cat([x, self.l1(x)], dim=1))


class _Encoder(nn.Module):
    """Per-frame encoder: stem at full resolution, features at 1/2, 1/4, 1/8, 1/16."""

    def __init__(self, c_in: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, w0 // 2, 3, padding=1),
            nn.BatchNorm2d(w0 // 2),
            nn.ReLU(),
            nn.Conv2d(w0 // 2, w0, 3, padding=1),
            nn.BatchNorm2d(w0),
            nn.ReLU(),
        )
        chans = (w0, *widths)
        self.downs = nn.ModuleList(_DenseBlock(chans[i], chans[i + 1]) for i in range(len(widths)))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Features at 1/2 .. 1/16 (the full-resolution stem output is not used, as in DpRAN)."""
        x = self.stem(x)
        feats = []
        for down in self.downs:
            x = down(F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class PerfusionExcitation(nn.Module):
    """Correlation of consecutive frames -> BN -> bias-free 1x1 conv; zeros for the last frame."""

    def __init__(self, out_channels: int, patch: int = 21, dilation: int = 2) -> None:
        super().__init__()
        self.patch, self.dilation = patch, dilation
        self.bn = nn.BatchNorm2d(patch * patch)
        self.proj = nn.Conv2d(patch * patch, out_channels, 1, bias=False)

    def forward(self, feats: Tensor) -> Tensor:
        """``feats (B, T, C, H, W)`` -> PE features ``(B, T, out, H, W)``."""
        B, T, C, H, W = feats.shape
        if T < 2:
            return feats.new_zeros(B, T, self.proj.out_channels, H, W)
        a = feats[:, :-1].reshape(B * (T - 1), C, H, W)
        b = feats[:, 1:].reshape(B * (T - 1), C, H, W)
        corr = spatial_correlation(a, b, self.patch, self.dilation)
        pe = self.proj(self.bn(corr)).reshape(B, T - 1, -1, H, W)
        return torch.cat([pe, torch.zeros_like(pe[:, :1])], dim=1)


class FrameSegmenter(nn.Module):
    """Stage 1: per-frame encoder -> 1x1 conv at 1/16 -> bilinear upsampling to the input."""

    def __init__(self, frame_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder = _Encoder(frame_channels, widths)
        self.head = nn.Conv2d(widths[-1], 1, 1)

    def forward(self, frames: Tensor) -> Tensor:
        """Logits ``(N, 1, H, W)`` for frames ``(N, C, H, W)``."""
        coarse = self.head(self.encoder(frames)[-1])
        return F.interpolate(coarse, size=frames.shape[-2:], mode="bilinear",
                             align_corners=False)


def critical_frames(probs: Tensor, eps: float = 1e-6) -> Tensor:
    """Per sample, the frame with the lowest mean binary entropy inside its foreground.

    ``probs (B, T, H, W)``; foreground = ``p >= 0.5``. Frames without foreground are never
    chosen; a sample with none anywhere gets the middle frame ``T // 2``.
    """
    p = probs.clamp(eps, 1 - eps)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    fg = (probs >= 0.5).to(probs.dtype)
    area = fg.sum(dim=(2, 3))
    mean = (entropy * fg).sum(dim=(2, 3)) / area.clamp_min(1)
    mean = mean.masked_fill(area == 0, float("inf"))
    idx = mean.argmin(dim=1)
    none = (area == 0).all(dim=1)
    return torch.where(none, torch.full_like(idx, probs.shape[1] // 2), idx)


class _TemporalAttention(nn.Module):
    """One attention unit: aggregate ``x (B,T,C,H,W)`` over T guided by a query map."""

    def __init__(self, channels: int, dim: int, grid: int = 4) -> None:
        super().__init__()
        self.dim, self.grid = dim, grid
        self.key = nn.Conv2d(channels, dim, 1, bias=False)
        self.query = nn.Conv2d(channels, dim, 1, bias=False)
        self.value = nn.Conv2d(channels, channels, 1, bias=False)
        for conv in (self.key, self.query, self.value):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor, query: Tensor) -> Tensor:
        """Return ``sum_t softmax_t(<q, k_t>) * v_t + query`` with shape ``(B, C, H, W)``."""
        B, T, C, H, W = x.shape
        flat = x.reshape(B * T, C, H, W)
        v = self.value(flat).reshape(B, T, C, H, W)
        pooled = F.adaptive_avg_pool2d(flat, self.grid).reshape(B, T, C, self.grid, self.grid)
        enc = temporal_encoding(T, C).to(x)[None, :, :, None, None]
        pooled = pooled * math.sqrt(C) + enc
        k = self.key(pooled.reshape(B * T, C, self.grid, self.grid))
        k = k.reshape(B, T, self.dim, self.grid, self.grid)
        q = self.query(F.adaptive_avg_pool2d(query, self.grid))[:, None]
        scores = torch.softmax((q * k).sum(dim=2) / math.sqrt(self.dim), dim=1)
        scores = F.interpolate(scores, size=(H, W), mode="nearest")
        return (scores[:, :, None] * v).sum(dim=1) + query


class _AggregationUp(nn.Module):
    """AFF (two cross-attention units) + optional transposed-conv input + dense block."""

    def __init__(self, channels: int, c_up: int, c_out: int, dim: int) -> None:
        super().__init__()
        self.att_dyn = _TemporalAttention(channels, dim)
        self.att_app = _TemporalAttention(channels, dim)
        self.up = nn.ConvTranspose2d(c_up, c_up, 2, stride=2) if c_up else None
        self.conv = _DenseBlock(channels + c_up, c_out)

    def aggregate(self, pe: Tensor, app: Tensor, q_idx: Tensor) -> Tensor:
        """Cross-attention temporal aggregation; ``q_idx (B,)``: each sample's query frame."""
        rows = torch.arange(app.shape[0], device=app.device)
        return self.att_dyn(pe, app[rows, q_idx]) + self.att_app(app, pe[rows, q_idx])

    def forward(self, agg: Tensor, below: Tensor | None) -> Tensor:
        """Merge the aggregated skip with the upsampled coarser decoder feature."""
        if self.up is not None and below is not None:
            agg = torch.cat([agg, self.up(below)], dim=1)
        return self.conv(agg)


class DpRAN(nn.Module):
    """DpRAN stage-2 network over the T frames given as input channels."""

    def __init__(
        self,
        frame_channels: int,
        widths: tuple[int, ...],
        patch: int,
        dilation: int,
        dim: int,
        query: str = "critical",
    ) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError("DpRAN uses exactly 4 encoder widths")
        if query not in QUERIES:
            raise ValueError(f"DpRAN query must be one of {QUERIES}, got {query!r}")
        self.frame_channels = frame_channels
        self.stage1 = FrameSegmenter(frame_channels, widths) if query == "critical" else None
        self.encoder = _Encoder(frame_channels, widths)
        self.pe = nn.ModuleList(PerfusionExcitation(w, patch, dilation) for w in widths)
        w0, w1, w2, w3 = widths
        self.ups = nn.ModuleList(
            [
                _AggregationUp(w3, 0, w2, dim),
                _AggregationUp(w2, w2, w1, dim),
                _AggregationUp(w1, w1, w0, dim),
                _AggregationUp(w0, w0, w0, dim),
            ]
        )
        self.final_up = nn.ConvTranspose2d(w0, w0 // 2, 2, stride=2)
        self.head = nn.Conv2d(w0 // 2, 1, 1)

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor | dict[str, Tensor]:
        """Logits ``(B, 1, H, W)`` for ``x (B, T*frame_channels, H, W)``.

        In training with stage 1, a dict: ``logits`` and the per-frame ``frames (B, T, H, W)``.
        """
        B, TC, H, W = x.shape
        if TC % self.frame_channels:
            raise ValueError(f"{TC} channels is not a whole number of frames")
        T = TC // self.frame_channels
        frames = x.reshape(B * T, self.frame_channels, H, W)
        frame_logits = None
        if self.stage1 is None:
            q_idx = torch.full((B,), T // 2, dtype=torch.long, device=x.device)
        else:
            frame_logits = self.stage1(frames).reshape(B, T, H, W)
            q_idx = critical_frames(torch.sigmoid(frame_logits.detach().float()))
        feats = [f.reshape(B, T, *f.shape[1:]) for f in self.encoder(frames)]
        y: Tensor | None = None
        for level, up in zip(range(3, -1, -1), self.ups):
            app = feats[level]
            agg = up.aggregate(self.pe[level](app), app, q_idx)
            if level < 3:
                agg = gate(agg, margin)
            y = up(agg, y)
        logits = self.head(self.final_up(y))
        if self.training and frame_logits is not None:
            return {"logits": logits, "frames": frame_logits}
        return logits

    def loss(self, out: Tensor | dict[str, Tensor], target: Tensor,
             base: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Stage 2's loss plus stage 1's: every frame's prediction against the mask."""
        if not isinstance(out, dict):
            return base(out, target)
        frames = out["frames"]
        B, T, H, W = frames.shape
        per_frame = base(frames.reshape(B * T, 1, H, W),
                         target.repeat_interleave(T, dim=0))
        return base(out["logits"], target) + per_frame


def build_dpran(
    in_channels: dict[str, int],
    img_size: int,
    widths: tuple[int, ...] = PAPER_WIDTHS,
    patch: int = 21,
    dilation: int = 2,
    dim: int = 32,
    query: str = "critical",
    weights: str | None = None,
) -> DpRAN:
    """Registry constructor (CEUS only): every input channel is one grey frame."""
    check_size("DpRAN", img_size, 16)
    model = DpRAN(1, tuple(widths), patch, dilation, dim, query)
    if weights:
        load_weight_file(model, weights, "DpRAN")
    return model
