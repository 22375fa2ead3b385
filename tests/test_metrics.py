"""Hand-computed checks of iman.evaluation.metrics (standard and paper-compatible families)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iman.evaluation.metrics import (
    EMPTY_PRED,
    METRIC_COLUMNS,
    boundary_distances,
    case_metrics,
    overlap_metrics,
    row_hausdorff,
    soft_dice,
    standard_metrics,
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


def test_shifted_3x3_square_by_hand() -> None:
    # 7×7 image, GT = 3×3 square rows 2-4, cols 1-3; prediction = the same square 2 px right
    # (cols 3-5). Each boundary is the 8-pixel ring (the centre keeps all 4 neighbours).
    #   pred ring → nearest GT ring pixel: col 3 (3 px) 0, (2,4),(4,4) 1, col 5 (3 px) 2
    #   GT ring → pred ring, by symmetry: three 0, two 1, three 2
    #   HD = 2 px; union of 16 distances sorted = six 0, four 1, six 2,
    #   HD95 = value at rank 0.95·15 = 14.25 → between sorted[14] = 2 and sorted[15] = 2 → 2 px
    #   DSC = 2·|overlap| / (9 + 9) = 2·3 / 18 = 1/3, IoU = 3 / 15 = 1/5
    gt = _rect((7, 7), 2, 5, 1, 4)
    pred = _rect((7, 7), 2, 5, 3, 6)
    d_pg, d_gp = boundary_distances(pred, gt, spacing=0.5)
    for d in (d_pg, d_gp):
        np.testing.assert_allclose(np.sort(d), 0.5 * np.array([0, 0, 0, 1, 1, 2, 2, 2]))
    m = standard_metrics(pred, gt, spacing_mm=0.5)
    assert m["std_hd_mm"] == pytest.approx(1.0)  # 2 px × 0.5 mm
    assert m["std_hd95_mm"] == pytest.approx(1.0)
    assert m["std_dsc"] == pytest.approx(1 / 3)
    assert m["std_iou"] == pytest.approx(1 / 5)
    # row vectors: each lesion row is 0111000 vs 0001110 (4 entries differ, distance 2), but an
    # all-zero row of the other map is nearer (3 ones, distance sqrt 3): row-HD = sqrt(3)
    assert row_hausdorff(gt, pred) == pytest.approx(math.sqrt(3))


def test_hd95_interpolates_the_union_of_both_directions() -> None:
    # GT = 3×3 square rows 1-3, cols 1-3 of an 8×8 image; prediction = GT + one pixel (6, 6).
    # Boundaries: the GT ring (8 px); the prediction's ring + the isolated pixel (9 px).
    #   pred → GT: 8 zeros and the pixel's distance to corner (3, 3): sqrt(3² + 3²) = 3·sqrt 2
    #   GT → pred: 8 zeros
    #   HD = 3·sqrt 2 ≈ 4.243 px
    #   union: 17 values, 16 zeros then 3·sqrt 2; rank 0.95·16 = 15.2 → 0 + 0.2·3·sqrt 2 ≈ 0.849
    #   (MONAI's max of the directed 95th percentiles would give 0.6·3·sqrt 2 ≈ 2.546 instead:
    #   rank 0.95·8 = 7.6 among the 9 pred → GT values)
    #   DSC = 2·9 / (10 + 9) = 18/19, precision = 9/10, recall = 1
    gt = _rect((8, 8), 1, 4, 1, 4)
    pred = gt.copy()
    pred[6, 6] = 1
    m = standard_metrics(pred, gt, spacing_mm=1.0)
    assert m["std_hd_mm"] == pytest.approx(3 * math.sqrt(2))
    assert m["std_hd95_mm"] == pytest.approx(0.2 * 3 * math.sqrt(2))
    assert m["std_dsc"] == pytest.approx(18 / 19)
    assert m["std_precision"] == pytest.approx(0.9) and m["std_recall"] == 1.0


def test_single_pixel_vs_distant_pixel_by_hand() -> None:
    # 6×7 image, GT pixel (1, 1), prediction pixel (4, 5): a lone pixel is its own boundary.
    #   distance = sqrt(3² + 4²) = 5 px both ways → HD = HD95 = 5 px × 0.2 mm = 1 mm
    #   no overlap → DSC = IoU = 0
    #   row vectors: a lesion row (one 1) is nearest to an all-zero row (distance 1) → row-HD 1
    gt = np.zeros((6, 7), dtype=np.uint8)
    pred = gt.copy()
    gt[1, 1] = 1
    pred[4, 5] = 1
    m = standard_metrics(pred, gt, spacing_mm=0.2)
    assert m["std_hd_mm"] == pytest.approx(1.0)
    assert m["std_hd95_mm"] == pytest.approx(1.0)
    assert m["std_dsc"] == 0.0 and m["std_iou"] == 0.0
    assert row_hausdorff(gt, pred) == pytest.approx(1.0)


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
    assert list(m) == [*METRIC_COLUMNS, EMPTY_PRED] and m[EMPTY_PRED] == 0.0
    # bilinear 4→8: columns 3 and 4 become 0.7 and 0.3, so the split stays at the middle
    assert m["std_dsc"] == pytest.approx(1.0)
    assert m["std_hd_mm"] == 0.0
    # 2·8·0.9 / (8·0.81 + 8·0.01 + 8) = 14.4 / 14.56 (float16 rounding of 0.9 and 0.1)
    assert m["paper_soft_dsc"] == pytest.approx(14.4 / 14.56, abs=1e-3)
    assert m["paper_row_hd"] == pytest.approx(0.2, abs=1e-3)  # sqrt(4 · 0.1²)


def test_an_empty_prediction_is_flagged_and_scored_with_the_diagonal() -> None:
    mask_orig = np.zeros((30, 40), dtype=np.uint8)
    mask_orig[10:20, 10:20] = 1
    prob = np.full((8, 8), 0.4, dtype=np.float32)  # nothing reaches 0.5
    m = case_metrics(prob, (prob > 0.5).astype(np.uint8), mask_orig, spacing_mm=0.5)
    assert m[EMPTY_PRED] == 1.0 and m["std_dsc"] == 0.0
    assert m["std_hd_mm"] == m["std_hd95_mm"] == pytest.approx(50 * 0.5)  # hypot(30, 40)
    none = case_metrics(prob, np.zeros((8, 8), np.uint8), np.zeros((30, 40), np.uint8), 0.5)
    assert none[EMPTY_PRED] == 0.0  # both empty: a correct prediction, no penalty


def test_case_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        case_metrics(np.zeros((4, 4)), np.zeros((4, 5)), np.zeros((8, 8)), 0.1)
    with pytest.raises(ValueError):
        case_metrics(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((8, 8)), 0.0)


def test_metric_columns_labels() -> None:
    assert all(k.startswith(("std_", "paper_")) for k in METRIC_COLUMNS)
    assert METRIC_COLUMNS["std_hd95_mm"] == ("standard", "HD95 (mm)", False)
    assert METRIC_COLUMNS["paper_soft_dsc"][2] is True


def test_metric_facts_live_in_one_table_that_tables_stats_and_figures_read() -> None:
    from iman.evaluation.comparisons import STAT_METRICS
    from iman.evaluation.metrics import METRICS
    from iman.evaluation.paper_tables import PAPER_BESIDE, REPORTED
    from iman.reporting import figures, tables

    by_column = {m.column: m for m in METRICS}
    for short, (column, higher) in REPORTED.items():
        assert by_column[column].short == short and by_column[column].higher is higher
        assert tables._HEAD[short] == figures._METRIC_LABEL[short] == by_column[column].label
    assert STAT_METRICS == {"std_dsc": ("DSC", True), "std_hd_mm": ("HD (mm)", False)}
    assert PAPER_BESIDE == {"soft_dsc": "dsc", "row_hd": "hd"}
