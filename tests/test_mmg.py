"""Geometry checks of the Margin Mask Generator on synthetic shapes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from iman.data.geometry import kernel_axes, nearest_odd
from iman.margins.mmg import (
    PAPER_KERNELS,
    ellipse_footprint,
    filter_size,
    make_margins,
    margin_mask,
    margin_mask_torch,
)
from iman.names import FILTERS


def _ellipse(s: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:s, :s]
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0).astype(np.float32)


def _blob(s: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), s / 10)
    return (noise > np.quantile(noise, 0.7)).astype(np.float32)


def test_sizes_scale_from_original_pixels() -> None:
    assert [nearest_odd(x) for x in (0.2, 2.0, 4.9, 6.2, 75.0)] == [1, 3, 5, 7, 75]
    assert kernel_axes(100, (560, 460), 320) == (57, 69)  # 57.1 and 69.6 working px
    assert kernel_axes(75, (320, 320), 320) == (75, 75)
    assert kernel_axes(50, (5000, 5000), 32) == (1, 1)  # clamped to 1 px
    assert [filter_size(s) for s in (320, 224, 64, 16, 8)] == [75, 53, 15, 5, 3]


def test_footprint_is_a_centred_ellipse() -> None:
    fp = ellipse_footprint(5, 5)
    expected = np.array(
        [
            [0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 0],
        ]
    )
    np.testing.assert_array_equal(fp, expected)
    assert ellipse_footprint(1, 7).tolist() == [[1] * 7]
    fp = ellipse_footprint(9, 21)
    np.testing.assert_array_equal(fp, fp[::-1, ::-1])
    with pytest.raises(ValueError):
        ellipse_footprint(4, 5)


def test_disc_band_area_matches_annulus() -> None:
    # orig 300×300, working 150: a radius-60 disc is radius 30; k = 42 orig → 21 working px
    prob = _ellipse(150, 75, 75, 30, 30)
    band = margin_mask(prob, 42, "none", (300, 300), threshold=0.5)
    expected = math.pi * ((30 + 10.5) ** 2 - (30 - 10.5) ** 2)  # 2π·r·k = 3958
    assert band.sum() == pytest.approx(expected, rel=0.03)
    assert set(np.unique(band)) == {0.0, 1.0}


def test_non_square_original_gives_elliptical_band() -> None:
    # orig H=400, W=200, working 200: a radius-50 circle becomes semi-axes 25 (y) × 50 (x);
    # k = 30 orig → element 15 (y) × 31 (x) working px
    prob = _ellipse(200, 100, 100, 25, 50)
    band = margin_mask(prob, 30, "none", (400, 200), threshold=0.5)
    area_orig = math.pi * ((50 + 15) ** 2 - (50 - 15) ** 2)
    assert band.sum() == pytest.approx(area_orig * (200 / 400) * (200 / 200), rel=0.04)
    left_run = band[100, :100].sum()  # band width along x ≈ 31
    top_run = band[:100, 100].sum()  # band width along y ≈ 15
    assert abs(left_run - 31) <= 1 and abs(top_run - 15) <= 1


@pytest.mark.parametrize("filter", FILTERS)
def test_symmetry_and_range(filter: str) -> None:
    prob = _ellipse(101, 50, 50, 20, 20)
    m = margin_mask(prob, 50, filter, (202, 202), threshold=0.5)
    np.testing.assert_allclose(m, m[::-1], atol=1e-6)
    np.testing.assert_allclose(m, m[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    assert m.dtype == np.float32 and m.min() >= 0.0 and m.max() <= 1.0


def test_mean_and_gaussian_filters_by_hand() -> None:
    prob = _ellipse(64, 32, 32, 15, 15)
    hard = margin_mask(prob, 10, "none", (64, 64), threshold=0.5)
    mean = margin_mask(prob, 10, "mean", (64, 64), threshold=0.5)
    gauss = margin_mask(prob, 10, "gaussian", (64, 64), threshold=0.5)
    f = filter_size(64)  # 15
    sigma = 0.3 * ((f - 1) / 2 - 1) + 0.8  # OpenCV's default: 2.6
    g1 = np.exp(-((np.arange(f) - f // 2) ** 2) / (2 * sigma**2))
    g2 = np.outer(g1, g1) / np.outer(g1, g1).sum()
    for y, x in ((32, 32), (20, 25), (17, 32), (40, 45)):
        win = hard[y - 7 : y + 8, x - 7 : x + 8]
        assert mean[y, x] == pytest.approx(win.mean(), abs=1e-5)
        assert gauss[y, x] == pytest.approx((win * g2).sum(), abs=1e-5)
    # blur keeps raw values: the band's mass is preserved, the peak is not re-stretched to 1
    assert mean.sum() == pytest.approx(hard.sum(), rel=1e-4)
    assert mean.max() < 1.0


def test_empty_prediction_gives_all_ones() -> None:
    prob = np.full((32, 32), 0.3, dtype=np.float32)
    for filter in FILTERS:
        np.testing.assert_array_equal(margin_mask(prob, 75, filter, (460, 560), threshold=0.5),
                                      1.0)
        t = margin_mask_torch(torch.from_numpy(prob)[None], 75, filter, [(460, 560)],
                              threshold=0.5)
        assert torch.all(t == 1.0)


def test_full_image_prediction_has_no_boundary_and_gives_all_ones() -> None:
    # at threshold 0.2 the map is a full-image lesion: it erodes to itself (outside counts
    # as foreground), so the band is empty; a zero margin would shut every gated skip
    prob = np.full((32, 32), 0.3, dtype=np.float32)
    for filter in FILTERS:
        np.testing.assert_array_equal(
            margin_mask(prob, 75, filter, (460, 560), threshold=0.2), 1.0)
        t = margin_mask_torch(torch.from_numpy(prob)[None], 75, filter, [(460, 560)],
                              threshold=0.2)
        assert torch.all(t == 1.0)


def test_thin_lesion_margin_is_the_dilated_blob() -> None:
    prob = np.zeros((64, 64), dtype=np.float32)
    prob[30:33, 10:51] = 1.0  # a 3-px bar; element 9×9 (offsets up to 4) erases it
    band = margin_mask(prob, 9, "none", (64, 64), threshold=0.5)
    rows = np.flatnonzero(band.any(axis=1))
    cols = np.flatnonzero(band.any(axis=0))
    assert (rows.min(), rows.max()) == (26, 36)
    assert (cols.min(), cols.max()) == (6, 54)
    assert np.all(band[prob > 0] == 1.0)  # nothing was eroded away from the blob


def test_lesion_touching_border_no_wrap() -> None:
    prob = _ellipse(64, 32, 0, 20, 20)  # half disc on the left edge
    band = margin_mask(prob, 9, "none", (64, 64), threshold=0.5)
    assert band[:, 30:].sum() == 0  # nothing on the right side (no wrap-around)
    assert band[32, 0] == 0  # the image edge inside the lesion is not a boundary
    assert band[32, 16:25].all()  # the real boundary at x = 20 is
    t = margin_mask_torch(torch.from_numpy(prob)[None], 9, "none", [(64, 64)], threshold=0.5)[0]
    np.testing.assert_array_equal(t.numpy(), band)


def test_torch_matches_opencv_on_a_mixed_batch() -> None:
    s = 40
    shapes = [
        _ellipse(s, 20, 20, 10, 14),
        _ellipse(s, 5, 30, 12, 8),  # touching the top border
        _blob(s, 1),
        _blob(s, 2),
        np.pad(np.ones((3, 20), np.float32), ((18, 19), (5, 15))),  # thin bar
        np.zeros((s, s), np.float32),
    ]
    sizes = [(460, 560), (560, 460), (224, 224), (578, 469), (100, 300), (460, 560)]
    batch = torch.from_numpy(np.stack(shapes))
    for k in PAPER_KERNELS:
        for filter in FILTERS:
            out = margin_mask_torch(batch, k, filter, sizes, threshold=0.5).numpy()
            ref = np.stack([margin_mask(p, k, filter, o, threshold=0.5)
                            for p, o in zip(shapes, sizes)])
            if filter == "none":
                np.testing.assert_array_equal(out, ref)
            else:
                np.testing.assert_allclose(out, ref, atol=1e-5)
    out4 = margin_mask_torch(batch[:, None], 50, "none", sizes, threshold=0.5)
    assert out4.shape == (6, 1, s, s)


def test_make_margins_format() -> None:
    preds = {"a": _ellipse(32, 16, 16, 8, 8).astype(np.float16), "b": np.zeros((32, 32))}
    sizes = {"a": (460, 560), "b": (224, 224)}
    out = make_margins(preds, sizes, 50, "gaussian", threshold=0.5)
    assert set(out) == {"a", "b"}
    assert all(v.dtype == np.float16 and v.shape == (32, 32) for v in out.values())
    np.testing.assert_allclose(
        out["a"], margin_mask(preds["a"], 50, "gaussian", (460, 560), threshold=0.5), atol=1e-3
    )
    assert np.all(out["b"] == 1.0)
    with pytest.raises(KeyError):
        make_margins(preds, {"a": (460, 560)}, 50, "none", threshold=0.5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        margin_mask(np.zeros((4, 4)), 50, "median", (4, 4), threshold=0.5)
    with pytest.raises(ValueError):
        margin_mask(np.zeros((4, 6)), 50, "none", (4, 6), threshold=0.5)
    with pytest.raises(ValueError):
        margin_mask_torch(torch.zeros(2, 4, 4), 50, "none", [(4, 4)], threshold=0.5)


def test_original_sizes_read_per_modality_from_the_manifest() -> None:
    import pandas as pd

    from iman.margins.mmg import original_sizes

    manifest = pd.DataFrame({"case_id": ["007", "12"], "us_h": [460, 300], "us_w": [560, 400],
                             "ceus_h": [440, 310], "ceus_w": [500, 410]})
    assert original_sizes(manifest, "us") == {"007": (460, 560), "12": (300, 400)}
    assert original_sizes(manifest, "ceus")["12"] == (310, 410)
