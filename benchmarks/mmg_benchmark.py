"""Speed and agreement of iman.margins.mmg against a plain re-implementation of the authors' MMG.

The authors' procedure (peers.md §1.4), written plainly as they did: threshold the prediction
at > 0.1 at the original resolution, opening with a 5×5 rectangle (CEUS model) and
re-binarise at > 10, elliptical erode / dilate with a k×k OpenCV ellipse, then each of
inner/outer is smoothed by a pure-Python 15×15 Gaussian (σ = 15, zero padding, per-pixel
integer truncation), min–max normalised and set to 255 where > 0; margin = outer AND NOT inner.
Constant images (0/0 in the normalisation) follow peers.md's described outcome: empty
prediction → the whole image is margin, empty erosion → the whole grown outer region.

The pure-Python smoothing takes tens of seconds per image at 460×560, so it runs on the
first ``--plain-masks`` masks only (default 1); for those the script checks that an
equivalent ``cv2.filter2D`` (zero border) + floor gives the same band, and uses that
equivalent for the other masks and for the agreement figures.

Ours: the working-size prediction (the original mask area-resized to S) goes through
``margin_mask``. Agreement = IoU of the hard bands (ours with filter ``none``, resized to
the original size with nearest neighbour) against the authors' band; the authors' band
without the ~7-px grow of the smoothing step is reported too.

Run: ``.venv/bin/python benchmarks/mmg_benchmark.py`` (two to three minutes on 2 cores,
almost all of it the pure-Python smoothing of one mask).
"""

from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np
import torch

from iman.margins.mmg import margin_mask, margin_mask_torch
from iman.names import FILTERS

THRESHOLD = 0.5
"""Binarisation threshold of the benchmarked predictions (the maps here are 0/1 discs)."""

ORIG_H, ORIG_W = 560, 460
PLAIN_K, PLAIN_SIGMA = 15, 15.0


def synthetic_masks(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` 0/1 lesion masks at 560×460: unions of one to three rotated ellipses."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = np.zeros((ORIG_H, ORIG_W), np.uint8)
        cy, cx = rng.uniform(0.3, 0.7) * ORIG_H, rng.uniform(0.3, 0.7) * ORIG_W
        for _ in range(int(rng.integers(1, 4))):
            centre = (int(cx + rng.normal(0, 25)), int(cy + rng.normal(0, 25)))
            axes = (int(rng.uniform(30, 110)), int(rng.uniform(25, 90)))
            cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        out.append(m)
    return out


def plain_gaussian_kernel() -> list[list[float]]:
    """15×15 normalised Gaussian with σ = 15, built in plain Python."""
    c = PLAIN_K // 2
    k = [
        [math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * PLAIN_SIGMA**2)) for j in range(PLAIN_K)]
        for i in range(PLAIN_K)
    ]
    total = sum(sum(row) for row in k)
    return [[v / total for v in row] for row in k]


def plain_smooth(img: np.ndarray) -> np.ndarray:
    """The authors' smoothing: Python-loop convolution, zero padding, int() per pixel,
    min–max normalisation (NaN where the image is constant)."""
    kern = plain_gaussian_kernel()
    h, w = img.shape
    p = PLAIN_K // 2
    padded = [[0] * (w + 2 * p) for _ in range(h + 2 * p)]
    src = img.tolist()
    for y in range(h):
        for x in range(w):
            padded[y + p][x + p] = src[y][x]
    conv = [[0] * w for _ in range(h)]
    for y in range(h):
        for x in range(w):
            acc = 0.0
            for i in range(PLAIN_K):
                row = padded[y + i]
                krow = kern[i]
                for j in range(PLAIN_K):
                    acc += row[x + j] * krow[j]
            conv[y][x] = int(acc)
    return _min_max(np.array(conv, dtype=np.float64))


def fast_smooth(img: np.ndarray) -> np.ndarray:
    """:func:`plain_smooth` with ``cv2.filter2D`` (zero border) and truncation.

    filter2D switches to a DFT for large kernels, whose ~1e-13 round-off would flip the
    truncation at exact integers (and make ``-1e-13`` truncate to a new minimum), so the
    sums are rounded to 1e-6 first.
    """
    kern = np.array(plain_gaussian_kernel(), dtype=np.float64)
    conv = cv2.filter2D(img.astype(np.float64), -1, kern, borderType=cv2.BORDER_CONSTANT)
    return _min_max(np.trunc(np.round(conv, 6)))


def _min_max(arr: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (arr - arr.min()) / (arr.max() - arr.min())


def authors_band(mask: np.ndarray, k: int, smooth=fast_smooth, grow: bool = True) -> np.ndarray:
    """The authors' CEUS-model margin of an original-size 0/1 prediction, as a 0/1 band."""
    binary = np.where(mask > 0.1, 255, 0).astype(np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    binary = np.where(binary > 10, 255, 0).astype(np.uint8)
    ell = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    inner = cv2.erode(binary, ell)
    outer = cv2.dilate(binary, ell)
    if not grow:
        return ((outer > 0) & ~(inner > 0)).astype(np.uint8)
    # A constant region normalises to NaN: per peers.md §1.4 an empty outer region makes the
    # whole image margin and an empty inner region leaves the whole grown outer region.
    n_in, n_out = smooth(inner), smooth(outer)
    grown_out = np.isnan(n_out) | (n_out > 0)
    grown_in = ~np.isnan(n_in) & (n_in > 0)
    return (grown_out & ~grown_in).astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two binary maps (1 when both are empty)."""
    a, b = a > 0, b > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def timed(fn, *args, repeat: int = 1, **kwargs):
    """Result of ``fn`` and its best wall time in ms over ``repeat`` runs."""
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return out, best


def main() -> None:
    """Run the comparison and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of synthetic masks")
    ap.add_argument("--plain-masks", type=int, default=1, help="masks run in pure Python")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 320], help="working sizes")
    ap.add_argument("--kernels", type=int, nargs="+", default=[75, 100])
    args = ap.parse_args()
    torch.set_num_threads(2)
    masks = synthetic_masks(args.n)
    orig = (ORIG_H, ORIG_W)
    print(f"{args.n} synthetic masks at {ORIG_H}x{ORIG_W} (HxW); CPU threads: 2")

    plain_ms = []
    for m in masks[: args.plain_masks]:
        k = args.kernels[-1]
        slow, ms = timed(authors_band, m, k, smooth=plain_smooth)
        plain_ms.append(ms)
        same = np.array_equal(slow, authors_band(m, k))
        print(f"authors plain-Python, k={k}: {ms:.0f} ms/mask; cv2 equivalent identical: {same}")
        if not same:
            raise SystemExit("the cv2 equivalent of the authors' smoothing differs")
    plain = float(np.mean(plain_ms)) if plain_ms else math.nan

    for k in args.kernels:
        ref = [timed(authors_band, m, k)[0] for m in masks]
        fast_ms = np.mean([timed(authors_band, m, k, repeat=3)[1] for m in masks])
        core = [authors_band(m, k, grow=False) for m in masks]
        print(f"\nk={k}: authors with cv2 smoothing {fast_ms:.1f} ms/mask")
        for s in args.sizes:
            work = [cv2.resize(m.astype(np.float32), (s, s), interpolation=cv2.INTER_AREA)
                    for m in masks]
            for filt in FILTERS:
                ms = np.mean([timed(margin_mask, p, k, filt, orig, THRESHOLD, repeat=3)[1]
                              for p in work])
                print(f"  S={s:3d} ours {filt:8s} {ms:7.2f} ms/mask  "
                      f"vs plain-Python {plain / ms:9.0f}x  vs cv2-authors {fast_ms / ms:6.1f}x")
            batch = torch.from_numpy(np.stack(work))
            _, tms = timed(margin_mask_torch, batch, k, "gaussian", [orig] * len(work), THRESHOLD)
            print(f"  S={s:3d} ours torch CPU batch of {len(work)} (gaussian): "
                  f"{tms / len(work):.2f} ms/mask")
            bands = [cv2.resize(margin_mask(p, k, "none", orig, THRESHOLD), (ORIG_W, ORIG_H),
                                interpolation=cv2.INTER_NEAREST) for p in work]
            agree = [iou(b, r) for b, r in zip(bands, ref)]
            agree_core = [iou(b, c) for b, c in zip(bands, core)]
            print(f"  S={s:3d} band IoU vs authors {np.mean(agree):.3f} "
                  f"(min {np.min(agree):.3f}); vs authors without the 7-px grow "
                  f"{np.mean(agree_core):.3f} (min {np.min(agree_core):.3f})")


if __name__ == "__main__":
    main()
