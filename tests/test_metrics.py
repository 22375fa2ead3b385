"""Hand-computed checks of iman.metrics (standard and paper-compatible families)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from iman.metrics import (
    METRIC_COLUMNS,
    boundary_distances,
    case_metrics,
    overlap_metrics,
    row_hausdorff,
    soft_dice,
    standard_metrics,
    summarize,
)


def _rect(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_overlap_2x2_case() -> None:
    pred = np.array([[1, 1], [1, 0]])
    gt = np.array([[1, 1], [0, 0]])
    m = overlap_metrics(pred, gt)
    assert m["dsc"] == pytest.approx(0.8)  # 2·2 / (3 + 2)
    assert m["iou"] == pytest.approx(2 / 3)  # 2 / 3
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(1.0)


def test_hd_of_known_shift_in_mm() -> None:
    gt = _rect((20, 20), 5, 15, 3, 11)
    pred = _rect((20, 20), 5, 15, 6, 14)  # shifted 3 px right
    m = standard_metrics(pred, gt, spacing_mm=0.5)
    assert m["std_hd_mm"] == pytest.approx(1.5)  # 3 px × 0.5 mm
    assert m["std_dsc"] == pytest.approx(2 * 50 / 160)  # overlap 10×5 of two 10×8


def test_hd95_differs_from_hd_with_a_stray_pixel() -> None:
    gt = _rect((30, 30), 2, 12, 2, 12)
    pred = gt.copy()
    pred[25, 25] = 1  # isolated pixel; nearest GT boundary pixel is (11, 11)
    m = standard_metrics(pred, gt, spacing_mm=1.0)
    assert m["std_hd_mm"] == pytest.approx(math.hypot(14, 14))
    # 36 + 37 boundary distances, one of them non-zero: the 95th percentile is 0.
    assert m["std_hd95_mm"] == pytest.approx(0.0)


def test_hd95_is_percentile_of_union_of_directed_sets() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = (rng.random((24, 24)) > 0.6).astype(np.uint8)
        pred = (rng.random((24, 24)) > 0.6).astype(np.uint8)
        d_pg, d_gp = boundary_distances(pred, gt, spacing=0.7)
        def pts(m: np.ndarray) -> np.ndarray:
            b = m.astype(bool) & ~ndimage.binary_erosion(m.astype(bool), border_value=0)
            return np.argwhere(b) * 0.7

        d = cdist(pts(pred), pts(gt))
        np.testing.assert_allclose(np.sort(d_pg), np.sort(d.min(axis=1)))
        np.testing.assert_allclose(np.sort(d_gp), np.sort(d.min(axis=0)))
        m = standard_metrics(pred, gt, spacing_mm=0.7)
        union = np.concatenate([d.min(axis=1), d.min(axis=0)])
        assert m["std_hd_mm"] == pytest.approx(union.max())
        assert m["std_hd95_mm"] == pytest.approx(np.percentile(union, 95))


def test_empty_mask_policy() -> None:
    empty = np.zeros((3, 4), dtype=np.uint8)
    one = empty.copy()
    one[1, 1] = 1
    both = standard_metrics(empty, empty, spacing_mm=0.5)
    assert [both[f"std_{k}"] for k in ("dsc", "iou", "precision", "recall")] == [1, 1, 1, 1]
    assert both["std_hd_mm"] == 0.0 and both["std_hd95_mm"] == 0.0
    for pred, gt in ((one, empty), (empty, one)):
        m = standard_metrics(pred, gt, spacing_mm=0.5)
        assert [m[f"std_{k}"] for k in ("dsc", "iou", "precision", "recall")] == [0, 0, 0, 0]
        assert m["std_hd_mm"] == pytest.approx(2.5)  # diagonal sqrt(3² + 4²) × 0.5 mm
        assert m["std_hd95_mm"] == pytest.approx(2.5)
        assert all(np.isfinite(v) for v in m.values())


def test_soft_dice_on_known_map() -> None:
    prob = np.array([[0.5, 1.0], [0.0, 0.5]])
    gt = np.array([[1, 1], [0, 0]])
    # 2·(0.5 + 1) / ((0.25 + 1 + 0.25) + 2) = 3 / 3.5
    assert soft_dice(prob, gt) == pytest.approx(3 / 3.5)
    assert soft_dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_row_hd_tiny_matrix_by_hand() -> None:
    gt = _rect((4, 8), 1, 3, 1, 6)  # rows 1-2 hold 5 ones
    shifted = _rect((4, 8), 1, 3, 3, 8)  # 2 px right: rows differ in 4 entries
    # nearest row of a lesion row: the shifted row (sqrt 4 = 2) beats an empty row (sqrt 5)
    assert row_hausdorff(gt, shifted) == pytest.approx(2.0)
    # empty prediction: every lesion row's nearest row is a zero row, sqrt(5)
    assert row_hausdorff(gt, np.zeros_like(gt)) == pytest.approx(math.sqrt(5))
    assert row_hausdorff(gt, gt) == 0.0


def test_row_hd_scale_check_shift_grows_like_sqrt_2d() -> None:
    gt = _rect((64, 64), 10, 40, 10, 40)
    for d in (5, 10):
        shifted = np.roll(gt, d, axis=1)
        assert row_hausdorff(gt, shifted) == pytest.approx(math.sqrt(2 * d))  # 3.16, 4.47
    # identical rows just change places under a vertical shift: row-HD cannot see it
    assert row_hausdorff(gt, np.roll(gt, 3, axis=0)) == 0.0


def test_case_metrics_resizes_to_original_and_keeps_paper_at_working_size() -> None:
    prob = np.tile(np.array([0.9, 0.9, 0.1, 0.1], dtype=np.float32), (4, 1))
    mask_work = (prob > 0.5).astype(np.uint8)
    mask_orig = np.zeros((8, 8), dtype=np.uint8)
    mask_orig[:, :4] = 1
    m = case_metrics(prob.astype(np.float16), mask_work, mask_orig, spacing_mm=0.2)
    assert list(m) == list(METRIC_COLUMNS)
    # bilinear 4→8: columns 3 and 4 become 0.7 and 0.3, so the split stays at the middle
    assert m["std_dsc"] == pytest.approx(1.0)
    assert m["std_hd_mm"] == 0.0
    # 2·8·0.9 / (8·0.81 + 8·0.01 + 8) = 14.4 / 14.56 (float16 rounding of 0.9 and 0.1)
    assert m["paper_soft_dsc"] == pytest.approx(14.4 / 14.56, abs=1e-3)
    assert m["paper_row_hd"] == pytest.approx(0.2, abs=1e-3)  # sqrt(4 · 0.1²)


def test_case_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        case_metrics(np.zeros((4, 4)), np.zeros((4, 5)), np.zeros((8, 8)), 0.1)
    with pytest.raises(ValueError):
        case_metrics(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((8, 8)), 0.0)


def test_summarize_mean_std_n() -> None:
    df = pd.DataFrame(
        {"case_id": ["a", "b", "c"], "std_dsc": [0.5, 0.7, 0.9], "paper_row_hd": [1.0, 1.0, 4.0]}
    )
    s = summarize(df)
    assert s["n"] == 3
    assert s["mean"] == {"std_dsc": pytest.approx(0.7), "paper_row_hd": pytest.approx(2.0)}
    assert s["std"]["std_dsc"] == pytest.approx(0.2)  # sample std of 0.5, 0.7, 0.9
    assert s["std"]["paper_row_hd"] == pytest.approx(math.sqrt(3.0))
    single = summarize(df.iloc[:1])
    assert single["std"]["std_dsc"] == 0.0
    with pytest.raises(ValueError):
        summarize(df.assign(std_dsc=[0.5, np.nan, 0.9]))
    with pytest.raises(ValueError):
        summarize(df.iloc[:0])


def test_metric_columns_labels() -> None:
    assert all(k.startswith(("std_", "paper_")) for k in METRIC_COLUMNS)
    assert METRIC_COLUMNS["std_hd95_mm"] == ("standard", "HD95 (mm)", False)
    assert METRIC_COLUMNS["paper_soft_dsc"][2] is True
