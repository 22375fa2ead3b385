"""In-memory training data from the cache, and paired augmentation.

Training never reads raw files or videos: it reads the per-case ``.npz`` cache, the frame
indices and (loop ≥ 1) a margins file. Augmentation draws one random transform per sample
and applies it to the image channels, the margin and the mask together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from iman.paths import case_file

__all__ = ["NORMS", "Augment", "CaseArrays", "augment_batch", "load_cases", "load_margins",
           "normalise"]

MEAN, STD = 0.5, 0.25  # the demo's own grey-level normalisation of every channel
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # inputs in [-1, 1]: ViT / BiT (R50+ViT-B/16, timm's cfg)
INCEPTION_STD = (0.5, 0.5, 0.5)
NORMS: dict[str, dict[str, Any]] = {
    "grey": {"mean": (MEAN,), "std": (STD,), "rgb": False},
    "imagenet": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "rgb": True},
    "inception": {"mean": INCEPTION_MEAN, "std": INCEPTION_STD, "rgb": True},
}
"""Input normalisations, grey levels first scaled to [0, 1]: ``grey`` = (v − 0.5) / 0.25 per
channel (random init); ``imagenet`` = every grey channel repeated to RGB and normalised with
ImageNet statistics (torchvision / timm ImageNet-1k files); ``inception`` = repeated to RGB,
(v − 0.5) / 0.5, i.e. [-1, 1] (the R50+ViT-B/16 ImageNet-21k file). A pretrained run's label
(or its explicit ``{"mean", "std"}``) is recorded in every checkpoint; prediction reuses it."""


@dataclass(frozen=True)
class Augment:
    """Paper augmentations: random crop (resized back), horizontal flip, rotation."""

    crop_scale: float = 0.85
    flip_p: float = 0.5
    rotate_deg: float = 15.0


@dataclass
class CaseArrays:
    """Stacked tensors for a list of cases (float32, N×C×S×S; masks N×1×S×S)."""

    case_ids: list[str]
    x: Tensor
    y: Tensor
    margin: Tensor | None
    black: Tensor | float = -MEAN / STD
    """The normalised value of a black pixel per channel (augmentation pads with it)."""


def normalise(x: np.ndarray, norm: str | Mapping[str, Any]) -> tuple[Tensor, Tensor | float]:
    """``(N, C, S, S)`` grey levels in [0, 1] → normalised tensor and its black value.

    ``norm``: a :data:`NORMS` label or ``{"mean": 3 values, "std": 3 values}``; every RGB
    normalisation repeats each grey channel to RGB (``C`` → ``3C``, frame by frame).
    """
    t = torch.from_numpy(x)
    if norm == "grey":
        return (t - MEAN) / STD, -MEAN / STD
    if isinstance(norm, str):
        if norm not in NORMS:
            raise ValueError(f"unknown normalisation {norm!r}; one of {sorted(NORMS)}")
        stats = NORMS[norm]
    elif isinstance(norm, Mapping) and "mean" in norm and "std" in norm:
        stats = norm
    else:
        raise ValueError(f"unknown normalisation {norm!r}; one of {sorted(NORMS)} or mean/std")
    mean = torch.tensor(stats["mean"], dtype=torch.float32).repeat(x.shape[1])[None, :, None,
                                                                                None]
    std = torch.tensor(stats["std"], dtype=torch.float32).repeat(x.shape[1])[None, :, None, None]
    rgb = t.repeat_interleave(3, dim=1)
    return (rgb - mean) / std, (-mean / std)[0, :, 0, 0]


def _channels(npz: np.lib.npyio.NpzFile, modality: str, frames: list[int] | None) -> np.ndarray:
    if modality == "us":
        img = npz["us"]
        return img[None] if img.ndim == 2 else img  # (S,S) grey or (C,S,S) channel-first
    if frames is None:
        raise ValueError("CEUS input needs frame indices")
    return npz["ceus"][frames]


def load_cases(cache_dir: Path, case_ids: list[str], inputs: tuple[str, ...], target: str,
               frames_file: Path | None, margins: dict[str, np.ndarray] | None,
               norm: str | Mapping[str, Any] = "grey") -> CaseArrays:
    """Read the cached cases into normalised tensors (inputs concatenated in order)."""
    frames = json.loads(frames_file.read_text()) if frames_file else {}
    xs, ys, ms = [], [], []
    for case in case_ids:
        with np.load(case_file(cache_dir, case)) as npz:
            chans = [_channels(npz, m, frames.get(case)) for m in inputs]
            xs.append(np.concatenate(chans, 0).astype(np.float32) / 255.0)
            ys.append(npz[f"{target}_mask"][None].astype(np.float32))
        if margins is not None:
            ms.append(np.asarray(margins[case], np.float32)[None])
    x, black = normalise(np.stack(xs), norm)
    margin = torch.from_numpy(np.stack(ms)) if margins is not None else None
    return CaseArrays(list(case_ids), x, torch.from_numpy(np.stack(ys)), margin, black)


def load_margins(path: Path | None) -> dict[str, np.ndarray] | None:
    """Margins npz → ``{case_id: array}`` (None when the loop has no margins)."""
    if path is None:
        return None
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _affine(n: int, aug: Augment, gen: torch.Generator) -> Tensor:
    """One random crop/flip/rotation matrix per sample (normalised coordinates)."""
    u = torch.rand(n, 5, generator=gen)
    scale = aug.crop_scale + (1 - aug.crop_scale) * u[:, 0]
    max_shift = 1 - scale
    tx, ty = (2 * u[:, 1] - 1) * max_shift, (2 * u[:, 2] - 1) * max_shift
    theta = (2 * u[:, 3] - 1) * math.radians(aug.rotate_deg)
    flip = torch.where(u[:, 4] < aug.flip_p, -1.0, 1.0)
    cos, sin = torch.cos(theta) * scale, torch.sin(theta) * scale
    row0 = torch.stack([cos * flip, -sin, tx], 1)
    row1 = torch.stack([sin * flip, cos, ty], 1)
    return torch.stack([row0, row1], 1)


def augment_batch(x: Tensor, y: Tensor, margin: Tensor | None, aug: Augment,
                  gen: torch.Generator, black: Tensor | float = -MEAN / STD,
                  ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Apply one draw per sample to image, mask and margin alike (image padded with black)."""
    mat = _affine(x.shape[0], aug, gen).to(x.device, x.dtype)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    if isinstance(black, Tensor):
        black = black.to(x.device, x.dtype)[None, :, None, None]
    parts = [x - black, y] + ([margin] if margin is not None else [])
    sizes = [p.shape[1] for p in parts]
    out = F.grid_sample(torch.cat(parts, 1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    chunks = list(torch.split(out, sizes, 1))
    chunks[0] = chunks[0] + black
    chunks[1] = (chunks[1] >= 0.5).to(y.dtype)
    return chunks[0], chunks[1], (chunks[2] if margin is not None else None)
