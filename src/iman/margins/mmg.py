"""Margin Mask Generator (MMG): a soft band around a predicted lesion boundary.

One branch's prediction becomes the other branch's margin map (paper §III-B):

1. binarise the probability map at ``prob >= threshold`` (no default here: the one default
   is the config schema's ``mmg.threshold``, the authors' 0.1);
2. erode and dilate it with an elliptical structuring element;
3. XOR: the band is ``dilated AND NOT eroded`` (the eroded set lies inside the dilated one);
4. filter the band with ``none | mean | gaussian``; the result is a map in [0, 1] at the
   working resolution.

Kernel sizes are given in *original acquisition pixels*, as in the paper's Table IV
(:data:`PAPER_KERNELS`), so one ``k`` means the same physical band width whatever the
working size S. An original H×W image is resized to a square S×S working image, so a circle
of diameter ``k`` in original space becomes an ellipse with axes ``k·S/H`` (vertical) and
``k·S/W`` (horizontal) in working pixels. Each axis is rounded to the nearest odd integer
(at least 1) so the element has a centre pixel and the band is symmetric. The element holds
the pixels whose centres lie inside that ellipse (:func:`ellipse_footprint`); OpenCV's
``MORPH_ELLIPSE`` is not used because its square elements are not transpose-symmetric.

The filter kernel is the authors' 75×75 blur at a 320-px network input scaled to S:
``max(3, odd(round(75·S/320)))``; ``mean`` is a normalised box filter, ``gaussian`` uses
OpenCV's default sigma for that size (11.6 at 75 px); both use OpenCV's default
reflect-101 border. ``none`` returns the hard 0/1 band as float. Blurred values are kept as
they are (a thin band's peak may stay below 1); they are never re-stretched to [0, 1].

Edge cases:

* empty prediction (nothing at or above the threshold): the margin is all ones, i.e. the
  gate lets everything through. The authors' code reaches the same effect by accident (a
  0/0 normalisation turns the whole image into margin).
* no boundary at all (the whole image at or above the threshold, typical of an untrained
  branch at the authors' 0.1 threshold): the band would be empty and a zero margin would
  shut every gated skip, so the margin is all ones here too (no location information).
* a lesion thinner than the element: erosion empties it and the margin is the dilated blob
  (which is what the XOR gives).
* a lesion touching the image border: the outside counts as background for dilation (no
  wrap-around, nothing grows past the edge) and as foreground for erosion, so the image edge
  itself is not treated as a lesion boundary (OpenCV's default for erosion).

:func:`margin_mask` runs OpenCV on CPU; :func:`margin_mask_torch` computes the same band for
a batch on the tensor's device (footprint counts from row-run prefix sums, compared with 0),
meant for GPU batches; on CPU OpenCV is faster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import cv2
import numpy as np

from iman.data.geometry import kernel_axes, nearest_odd
from iman.names import FILTERS

if TYPE_CHECKING:  # torch is imported where it is used: the CPU margin rule never loads it
    import pandas as pd
    import torch

__all__ = [
    "FILTER_PX_AT_320",
    "PAPER_KERNELS",
    "band_torch",
    "ellipse_footprint",
    "filter_size",
    "hard_band",
    "make_margins",
    "margin_mask",
    "margin_mask_torch",
    "original_sizes",
]

PAPER_KERNELS: Final = (50, 75, 100, 125)
FILTER_PX_AT_320: Final = 75


def filter_size(work_size: int) -> int:
    """Side of the blur kernel at working size S: the authors' 75 px at 320, scaled, odd, >= 3."""
    return max(3, nearest_odd(math.floor(FILTER_PX_AT_320 * work_size / 320 + 0.5)))


def ellipse_footprint(kh: int, kw: int) -> np.ndarray:
    """``kh×kw`` uint8 element: pixels whose centres lie in the ellipse with axes kh and kw."""
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"element sides must be odd and positive, got {(kh, kw)}")
    y = (np.arange(kh) - kh // 2) / (kh / 2.0)
    x = (np.arange(kw) - kw // 2) / (kw / 2.0)
    return ((y[:, None] ** 2 + x[None, :] ** 2) <= 1.0).astype(np.uint8)


def _check_filter(filter: str) -> None:
    if filter not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}; expected one of {FILTERS}")


def _square_size(shape: tuple[int, ...]) -> int:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"the working map must be square S×S, got {shape}")
    return int(shape[0])


def hard_band(
    binary: np.ndarray, kernel_px: float, orig_size: tuple[int, int]
) -> np.ndarray:
    """0/1 uint8 band ``dilate AND NOT erode`` of a non-empty S×S binary map (OpenCV)."""
    s = _square_size(binary.shape)
    fp = ellipse_footprint(*kernel_axes(kernel_px, orig_size, s))
    b = np.ascontiguousarray(binary, dtype=np.uint8)
    inner = cv2.erode(b, fp, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    outer = cv2.dilate(b, fp, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return outer & (1 - inner)


def margin_mask(
    prob: np.ndarray,
    kernel_px: float,
    filter: str,
    orig_size: tuple[int, int],
    threshold: float,
) -> np.ndarray:
    """Soft margin (S×S float32 in [0, 1]) of one working-size probability map.

    ``kernel_px``: element diameter in original pixels; ``orig_size``: the case's original
    (H, W); ``filter``: one of :data:`FILTERS`.
    """
    _check_filter(filter)
    p = np.asarray(prob, dtype=np.float32)
    s = _square_size(p.shape)
    binary = (p >= threshold).astype(np.uint8)
    if not binary.any():
        return np.ones((s, s), dtype=np.float32)
    band = hard_band(binary, kernel_px, orig_size).astype(np.float32)
    if not band.any():
        return np.ones((s, s), dtype=np.float32)
    if filter == "none":
        return band
    f = filter_size(s)
    if filter == "mean":
        out = cv2.blur(band, (f, f), borderType=cv2.BORDER_REFLECT_101)
    else:
        out = cv2.GaussianBlur(band, (f, f), 0, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _footprint_count(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Per-pixel sum of ``x`` (B, 1, S, S) over a centred ``kh×kw`` ellipse, zero outside.

    Every row of the (convex, symmetric) footprint is one centred run of ``2w + 1`` pixels,
    so the sum is ``kh`` run sums read from a horizontal prefix sum: O(S²·kh) cheap tensor
    ops instead of a dense O(S²·kh·kw) convolution. Exact for 0/1 input.
    """
    import torch
    import torch.nn.functional as F

    s_h, s_w = x.shape[-2:]
    half = (ellipse_footprint(kh, kw).sum(axis=1).astype(int) - 1) // 2
    ry, rx = kh // 2, kw // 2
    prefix = F.pad(x, (rx + 1, rx, ry, ry)).cumsum(dim=-1)
    out = torch.zeros_like(x)
    for dy, w in enumerate(half.tolist()):
        rows = prefix[..., dy : dy + s_h, :]
        out += rows[..., rx + 1 + w : rx + 1 + w + s_w] - rows[..., rx - w : rx - w + s_w]
    return out


def band_torch(
    binary: torch.Tensor, kernel_px: float, orig_sizes: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """Hard band of a ``(B, 1, S, S)`` 0/1 float batch, one element per case.

    Dilation: the count of foreground pixels under the element is > 0 (outside =
    background). Erosion: the count of background pixels under it is 0 (outside =
    foreground). Cases are grouped by element size; each group is one set of tensor ops.
    """
    import torch

    s = binary.shape[-1]
    axes = [kernel_axes(kernel_px, (int(o[0]), int(o[1])), s) for o in orig_sizes]
    out = torch.empty_like(binary)
    for kh, kw in sorted(set(axes)):
        idx = torch.tensor([i for i, a in enumerate(axes) if a == (kh, kw)], device=binary.device)
        fg = binary.index_select(0, idx)
        outer = _footprint_count(fg, kh, kw) > 0.5
        inner = _footprint_count(1.0 - fg, kh, kw) < 0.5
        out[idx] = (outer & ~inner).to(binary.dtype)
    return out


def _separable_blur(x: torch.Tensor, k1d: np.ndarray) -> torch.Tensor:
    """Separable 2-D filter of ``(B, 1, S, S)`` with reflect-101 borders (OpenCV's default)."""
    import torch
    import torch.nn.functional as F

    f = len(k1d)
    k = torch.as_tensor(k1d, dtype=x.dtype, device=x.device)
    x = F.pad(x, (f // 2, f // 2, f // 2, f // 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, f))
    return F.conv2d(x, k.view(1, 1, f, 1))


def margin_mask_torch(
    prob_batch: torch.Tensor,
    kernel_px: float,
    filter: str,
    orig_sizes: Sequence[tuple[int, int]],
    threshold: float,
) -> torch.Tensor:
    """Batched :func:`margin_mask` on the tensor's device.

    ``prob_batch``: ``(B, S, S)`` or ``(B, 1, S, S)``; ``orig_sizes``: one (H, W) per case.
    Returns float32 of the input's shape.
    """
    import torch

    _check_filter(filter)
    squeeze = prob_batch.ndim == 3
    x = prob_batch[:, None] if squeeze else prob_batch
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected (B, S, S) or (B, 1, S, S), got {tuple(prob_batch.shape)}")
    s = _square_size(tuple(x.shape[2:]))
    if len(orig_sizes) != x.shape[0]:
        raise ValueError(f"{len(orig_sizes)} original sizes for a batch of {x.shape[0]}")
    binary = (x >= threshold).to(torch.float32)
    out = band_torch(binary, kernel_px, orig_sizes)
    no_band = out.flatten(1).amax(dim=1) == 0
    if filter != "none":
        f = filter_size(s)
        k1d = np.full(f, 1.0 / f) if filter == "mean" else cv2.getGaussianKernel(f, 0).ravel()
        out = _separable_blur(out, k1d).clamp_(0.0, 1.0)
    empty = binary.flatten(1).amax(dim=1) == 0
    out[empty | no_band] = 1.0
    return out[:, 0] if squeeze else out


def original_sizes(manifest: pd.DataFrame, modality: str) -> dict[str, tuple[int, int]]:
    """Case id → original (H, W) of ``modality`` from a manifest table (``{m}_h``, ``{m}_w``)."""
    return {str(r.case_id): (int(getattr(r, f"{modality}_h")), int(getattr(r, f"{modality}_w")))
            for r in manifest.itertuples()}


def make_margins(
    preds: Mapping[str, np.ndarray],
    sizes: Mapping[str, tuple[int, int]],
    kernel_px: float,
    filter: str,
    threshold: float,
    device: str = "cpu",
    batch_size: int = 64,
    backend: str = "auto",
) -> dict[str, np.ndarray]:
    """Margins of every case, float16 S×S (the ``margins_k{k}_{filter}.npz`` format).

    ``preds``: case id → S×S probability (``pred.npz``); ``sizes``: case id → original (H, W).
    ``backend="auto"``: on a CUDA ``device`` the batched :func:`margin_mask_torch` runs there
    (``iman predict`` on a GPU); on CPU OpenCV's :func:`margin_mask` is faster and is used.
    ``"torch"`` or ``"opencv"`` force one (the GPU check compares them).
    """
    _check_filter(filter)
    missing = sorted(set(preds) - set(sizes))
    if missing:
        raise KeyError(f"no original size for cases {missing[:5]}")
    if backend not in ("auto", "torch", "opencv"):
        raise ValueError(f"unknown MMG backend {backend!r}")
    if backend == "opencv" or (backend == "auto" and not device.startswith("cuda")):
        return {
            cid: margin_mask(p, kernel_px, filter, tuple(sizes[cid]), threshold).astype(np.float16)
            for cid, p in preds.items()
        }
    import torch

    ids, out = list(preds), {}
    for i in range(0, len(ids), batch_size):
        chunk = ids[i:i + batch_size]
        batch = torch.stack([torch.as_tensor(np.asarray(preds[c], np.float32)) for c in chunk])
        margins = margin_mask_torch(batch.to(device), kernel_px, filter,
                                    [tuple(sizes[c]) for c in chunk], threshold)
        out.update(zip(chunk, margins.cpu().numpy().astype(np.float16)))
    return out
