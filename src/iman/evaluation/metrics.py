"""Per-case segmentation metrics in two labelled families, and their reduction.

Two families are always reported side by side, told apart by the column prefix:

``std_`` (standard, what a reader expects)
    The probability map ``prob`` (S×S, working size) is resized to the original mask size
    (H×W, ``cv2.resize`` bilinear) and binarised at ``prob >= 0.5``; it is compared with the
    original-size 0/1 mask. Dice, IoU, precision, recall, and the boundary Hausdorff distance
    ``std_hd_mm`` and its 95th percentile ``std_hd95_mm`` in millimetres (pixels × spacing).
    Boundaries are ``mask XOR erode(mask)`` (4-connected erosion, outside = background, so a
    mask touching the image edge has its edge pixels on the boundary); surface distances come
    from ``scipy.ndimage.distance_transform_edt`` of the other boundary's complement.
    HD95 follows medpy's ``hd95``: the 95th percentile (numpy's linear interpolation) of the
    *union* of both directed surface-distance sets. MONAI's ``compute_hausdorff_distance``
    instead takes the larger of the two directed 95th percentiles; the two agree for HD and
    usually differ slightly for HD95.

``paper_`` (compatible with the IMAN authors' evaluation code)
    ``paper_soft_dsc`` = 2Σ(p·g) / (Σp² + Σg²) per image at the working size, ``g`` the
    working-size mask. The authors apply it to the raw network output (no sigmoid); we apply
    it to the sigmoid probability map, which is what the pipeline stores.
    ``paper_row_hd`` is the Hausdorff distance of the ``hausdorff`` PyPI package with the
    ``'euclidean'`` metric as the authors call it: every image *row* is one point in
    W-dimensional space, and the symmetric Hausdorff distance is taken between the row sets of
    the working-size mask and the probability map. It is not a boundary distance and has no
    unit; a horizontal shift of ``d`` pixels of a wide shape gives ``sqrt(2·d)``.

Empty-mask policy (no NaN ever leaves this module):

* both the thresholded prediction and the mask empty: DSC = IoU = precision = recall = 1,
  HD = HD95 = 0;
* exactly one of them empty: DSC = IoU = precision = recall = 0 (the one ratio that is 0/0 is
  set to 0, the worst value, like ``zero_division=0`` in scikit-learn), and HD = HD95 = the
  diagonal of the original image, ``sqrt(H² + W²) · spacing_mm``, a finite worst case larger
  than any distance inside the image;
* ``paper_soft_dsc`` with Σp² + Σg² = 0 is 1; ``paper_row_hd`` is always defined (an empty
  map is a set of zero rows).
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial.distance import cdist

__all__ = [
    "EMPTY_PRED",
    "METRICS",
    "METRIC_COLUMNS",
    "REPORTED_METRICS",
    "THRESHOLD",
    "Metric",
    "MetricInfo",
    "boundary_distances",
    "case_metrics",
    "overlap_metrics",
    "paper_metrics",
    "row_hausdorff",
    "soft_dice",
    "standard_metrics",
]

THRESHOLD: Final = 0.5

class Metric(NamedTuple):
    """The facts of one per-case metric, in one place: metrics, stats, tables and figures
    read them from :data:`METRICS`."""

    column: str
    """Column of ``metrics.csv`` / ``per_case.csv``."""
    family: str
    """``standard`` or ``paper`` (paper-compatible, docs/metrics.md)."""
    label: str
    """How tables and figures name it."""
    higher: bool
    """Higher is better."""
    short: str = ""
    """Its name in the table CSVs (``<mod>_<short>``) when the tables report it."""
    printed: str = ""
    """The printed paper value it is compared with (``paper_<mod>_<printed>``), if any."""
    tested: bool = False
    """Tested per comparison in stats.csv (paired test, Holm, the tables' ▲/▼)."""


METRICS: Final = (
    Metric("std_dsc", "standard", "DSC", True, "dsc", tested=True),
    Metric("std_iou", "standard", "IoU", True),
    Metric("std_precision", "standard", "Precision", True),
    Metric("std_recall", "standard", "Recall", True),
    Metric("std_hd_mm", "standard", "HD (mm)", False, "hd", tested=True),
    Metric("std_hd95_mm", "standard", "HD95 (mm)", False, "hd95"),
    Metric("paper_soft_dsc", "paper", "soft DSC", True, "soft_dsc", printed="dsc"),
    Metric("paper_row_hd", "paper", "row-HD", False, "row_hd", printed="hd"),
)
"""Every metric :func:`case_metrics` returns, in report order."""

MetricInfo = tuple[str, str, bool]
"""(family, label, higher is better)."""

METRIC_COLUMNS: Final[dict[str, MetricInfo]] = {
    m.column: (m.family, m.label, m.higher) for m in METRICS}
"""Every metric column :func:`case_metrics` returns, in report order."""
REPORTED_METRICS: Final = {m.short: m for m in METRICS if m.short}
"""The metrics the paper tables report, by their table name (``dsc``, ``hd`` …)."""

EMPTY_PRED: Final = "empty_pred"
"""Per-case flag (1.0/0.0) :func:`case_metrics` returns after the metrics: the thresholded
prediction is empty while the lesion is not, so DSC is 0 and HD = HD95 = the image diagonal
(the empty-mask penalty); tables and stats.csv count these cells' empty predictions."""


def overlap_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Dice, IoU, precision and recall of two binary masks, with the empty-mask policy."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape} vs mask {g.shape}")
    n_p, n_g = int(p.sum()), int(g.sum())
    if n_p == 0 and n_g == 0:
        return {"dsc": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0}
    if n_p == 0 or n_g == 0:
        return {"dsc": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0}
    tp = int(np.logical_and(p, g).sum())
    return {
        "dsc": 2.0 * tp / (n_p + n_g),
        "iou": tp / (n_p + n_g - tp),
        "precision": tp / n_p,
        "recall": tp / n_g,
    }


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image outside counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def boundary_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances pred→gt and gt→pred (both masks must be non-empty).

    Each array holds, for every boundary pixel of the first mask, the Euclidean distance to
    the nearest boundary pixel of the second, scaled by ``spacing``.
    """
    bp = _boundary(np.asarray(pred, dtype=bool))
    bg = _boundary(np.asarray(gt, dtype=bool))
    if not bp.any() or not bg.any():
        raise ValueError("boundary_distances needs two non-empty masks")
    to_gt = ndimage.distance_transform_edt(~bg, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~bp, sampling=spacing)
    return to_gt[bp], to_pred[bg]


def standard_metrics(pred: np.ndarray, gt: np.ndarray, spacing_mm: float) -> dict[str, float]:
    """``std_`` columns for a binary prediction and mask of the same (original) size."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    out = {f"std_{k}": v for k, v in overlap_metrics(p, g).items()}
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        hd = hd95 = 0.0
    elif not has_p or not has_g:
        hd = hd95 = math.hypot(*g.shape) * spacing_mm
    else:
        d_pg, d_gp = boundary_distances(p, g, spacing_mm)
        hd = float(max(d_pg.max(), d_gp.max()))
        hd95 = float(np.percentile(np.concatenate([d_pg, d_gp]), 95))
    out["std_hd_mm"] = float(hd)
    out["std_hd95_mm"] = float(hd95)
    return out


def soft_dice(prob: np.ndarray, gt: np.ndarray) -> float:
    """The authors' per-image soft Dice 2Σpg / (Σp² + Σg²); 1 when both maps are all zero."""
    p = np.asarray(prob, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape} vs mask {g.shape}")
    denom = float((p * p).sum() + (g * g).sum())
    if denom == 0.0:
        return 1.0
    return 2.0 * float((p * g).sum()) / denom


def row_hausdorff(gt: np.ndarray, score: np.ndarray) -> float:
    """Symmetric Hausdorff distance between the row vectors of two H×W maps (Euclidean).

    Reproduces ``hausdorff.hausdorff_distance(gt, score, 'euclidean')`` as the IMAN code
    calls it: each of the H rows is a point in W-dimensional space.
    """
    a = np.asarray(gt, dtype=np.float64)
    b = np.asarray(score, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two 2-D maps of one shape, got {a.shape} and {b.shape}")
    d = cdist(a, b, metric="euclidean")
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))


def paper_metrics(prob: np.ndarray, mask_work: np.ndarray) -> dict[str, float]:
    """``paper_`` columns at the working size."""
    g = np.asarray(mask_work, dtype=np.float64)
    return {
        "paper_soft_dsc": soft_dice(prob, g),
        "paper_row_hd": row_hausdorff(g, prob),
    }


def case_metrics(
    prob: np.ndarray,
    mask_work: np.ndarray,
    mask_orig: np.ndarray,
    spacing_mm: float,
) -> dict[str, float]:
    """All :data:`METRIC_COLUMNS` for one case, then the :data:`EMPTY_PRED` flag.

    ``prob``: S×S probabilities in [0, 1] at the working size; ``mask_work``: the S×S 0/1
    mask; ``mask_orig``: the H×W 0/1 mask at the original size; ``spacing_mm``: the original
    image's isotropic pixel spacing.
    """
    p = np.asarray(prob, dtype=np.float32)
    mw = np.asarray(mask_work)
    mo = np.asarray(mask_orig)
    if p.ndim != 2 or p.shape != mw.shape:
        raise ValueError(f"prob {p.shape} and mask_work {mw.shape} must be one 2-D shape")
    if mo.ndim != 2:
        raise ValueError(f"mask_orig must be 2-D, got {mo.shape}")
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    h, w = mo.shape
    p_orig = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) if p.shape != (h, w) else p
    binary = p_orig >= THRESHOLD
    out = standard_metrics(binary, mo > 0, float(spacing_mm))
    out.update(paper_metrics(p, mw > 0))
    empty = not binary.any() and bool((mo > 0).any())
    return {**{k: float(out[k]) for k in METRIC_COLUMNS}, EMPTY_PRED: float(empty)}
