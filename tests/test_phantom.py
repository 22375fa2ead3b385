"""Behaviour of the synthetic US-CEUS phantom (small sizes, a few patients)."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from iman.data import phantom
from iman.data.phantom import SHEET_COLUMNS, gamma_variate, generate, render_case, sample_specs

H, W, F = 96, 80, 12


def _rows(sheet: Path) -> list[dict[str, str]]:
    with sheet.open() as fh:
        return list(csv.DictReader(fh))


def _gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    return generate(out, n_patients=6, seed=3, second_case_fraction=0.34, n_frames=F,
                    height=H, width=W, spacing_mm=0.2)


def test_sheet_columns_and_files(small: Path) -> None:
    with small.open() as fh:
        assert tuple(next(csv.reader(fh))) == SHEET_COLUMNS
    rows = _rows(small)
    root = small.parent
    assert [r["case_id"] for r in rows] == [f"C{i:04d}" for i in range(len(rows))]
    for r in rows:
        assert r["spacing_mm"] == "0.2"
        assert r["ceus_crop"] == "" and r["us_crop"] == ""
        assert _gray(root / r["us_image"]).shape == (H, W)
        for key in ("us_mask", "ceus_mask"):
            m = _gray(root / r[key])
            assert m.shape == (H, W) and set(np.unique(m)) <= {0, 255}
        assert (root / r["ceus"]).exists()


def test_mixed_video_formats_and_frame_count(small: Path) -> None:
    rows = _rows(small)
    kinds = {r["ceus"].endswith(".mp4") for r in rows}
    assert kinds == {True, False}
    for r in rows:
        video = small.parent / r["ceus"]
        if video.is_dir():
            names = sorted(p.name for p in video.iterdir())
            assert names == sorted(f"{k}.png" for k in range(F))
            assert _gray(video / "0.png").shape == (H, W)


def test_mp4_readable_with_right_count_and_size(small: Path) -> None:
    row = next(r for r in _rows(small) if r["ceus"].endswith(".mp4"))
    with av.open(str(small.parent / row["ceus"])) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(frames) == F
    assert frames[0].shape == (H, W)
    spec = next(s for s in sample_specs(6, 3, 0.34) if s.case_id == row["case_id"])
    ref, _ = render_case(spec, 3, F, H, W)
    err = np.abs(frames[F // 2].astype(float) - ref.ceus[F // 2]).mean()
    assert err < 4.0  # high-quality encode of the very same frame


def test_deterministic_from_seed(small: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "b", n_patients=6, seed=3, second_case_fraction=0.34,
                     n_frames=F, height=H, width=W, spacing_mm=0.2)
    other = generate(tmp_path / "c", n_patients=6, seed=4, second_case_fraction=0.34,
                     n_frames=F, height=H, width=W, spacing_mm=0.2)
    assert small.read_bytes() == again.read_bytes()
    pngs = sorted(p.relative_to(small.parent) for p in small.parent.rglob("*.png"))
    assert len(pngs) > 10
    for rel in pngs:
        assert (small.parent / rel).read_bytes() == (again.parent / rel).read_bytes(), rel
    assert (small.parent / "us/C0000.png").read_bytes() != (other.parent /
                                                             "us/C0000.png").read_bytes()


def test_masks_aligned_ceus_strictly_larger(small: Path) -> None:
    for r in _rows(small):
        us = _gray(small.parent / r["us_mask"]) > 0
        ce = _gray(small.parent / r["ceus_mask"]) > 0
        assert us.sum() > 20
        assert not (us & ~ce).any()
        assert ce.sum() > 1.2 * us.sum()


def test_some_patient_has_two_cases(small: Path) -> None:
    patients = [r["patient_id"] for r in _rows(small)]
    assert len(set(patients)) == 6
    assert len(patients) == 6 + round(0.34 * 6)
    assert max(patients.count(p) for p in set(patients)) == 2
    assert all(p.startswith("P") and len(p) == 4 for p in patients)


def test_default_scale_case_count() -> None:
    specs = sample_specs(62, 0, 0.12)  # config/config.yaml: 62 patients
    assert len(specs) == 69
    assert len({s.patient_id for s in specs}) == 62


def test_side_by_side_crops_point_at_halves(tmp_path: Path) -> None:
    sheet = generate(tmp_path, n_patients=2, seed=5, second_case_fraction=0.0, n_frames=F,
                     height=H, width=W, side_by_side=True, video_format="frames")
    row = _rows(sheet)[0]
    spec = sample_specs(2, 5, 0.0)[0]
    ref, _ = render_case(spec, 5, F, H, W)
    frame = _gray(sheet.parent / row["ceus"] / f"{F // 2}.png")
    boxes = {}
    for key in ("ceus_crop", "us_crop"):
        x0, y0, x1, y1 = (int(v) for v in row[key].split(","))
        assert (x1 - x0, y1 - y0) == (W, H)
        assert x0 >= 0 and y0 >= 0 and x1 <= frame.shape[1] and y1 <= frame.shape[0]
        boxes[key] = frame[y0:y1, x0:x1].astype(float)
    assert frame.shape[1] > 2 * W and frame.shape[0] > H
    assert boxes["ceus_crop"].tolist() == ref.ceus[F // 2].astype(float).tolist()

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    us = ref.us.astype(float)
    assert corr(boxes["us_crop"], us) > 0.9
    assert corr(boxes["ceus_crop"], us) < 0.5
    assert _gray(sheet.parent / row["us_image"]).tolist() == ref.us.tolist()
    with pytest.raises(ValueError):
        generate(tmp_path / "odd", n_patients=1, height=H + 1, width=W)


def test_gamma_variate_shape() -> None:
    t = np.linspace(0, 1, 101)
    g = gamma_variate(t, 0.2, 0.25, 2.0)
    assert (g[t <= 0.2] == 0).all()
    assert abs(t[int(np.argmax(g))] - 0.45) < 0.011
    assert g.max() == pytest.approx(1.0, abs=1e-3)


def test_lesion_time_intensity_rises_then_falls() -> None:
    spec = sample_specs(4, 0)[1]
    case, _ = render_case(spec, 0, 30, 160, 128)
    core = cv2.erode(case.us_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    tic = case.ceus[:, core].astype(float).mean(axis=1)
    peak = int(np.argmax(tic))
    assert 0 < peak < 29
    assert tic[peak] > tic[0] + 40 and tic[peak] > tic[-1] + 20
    # rises: frame to frame up to the fresh microbubble speckle (shape >= 0.9), and the
    # 3-frame running mean nearly monotonically
    assert np.all(np.diff(tic[:peak]) > -12)
    assert np.all(np.diff(np.convolve(tic[:peak + 1], np.ones(3) / 3, "valid")) > -4)
    ring = (cv2.dilate(case.ceus_mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0) & ~(
        case.ceus_mask)
    assert tic[peak] > case.ceus[peak][ring].mean() + 30  # the lesion hyper-enhances


def test_frames_change_over_time_and_infiltration_enhances() -> None:
    spec = sample_specs(4, 0)[2]
    case, motion = render_case(spec, 0, 30, 160, 128)
    assert np.abs(motion).max() <= 2.0
    mid = case.ceus[15].astype(float)
    assert np.abs(mid - case.ceus[16]).mean() > 3.0  # fresh microbubble speckle
    zone = case.ceus_mask & ~case.us_mask
    outside = ~(cv2.dilate(case.ceus_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    assert mid[zone].mean() > mid[outside].mean() + 10


def test_isoechoic_cases_exist_at_default_seed() -> None:
    specs = sample_specs(62, 0, 0.12)
    iso = [s for s in specs if s.contrast >= phantom.ISOECHOIC_CONTRAST]
    hypo = [s for s in specs if s.contrast < 0.6]
    assert len(iso) >= 2 and len(hypo) >= 40

    def ratio(spec: phantom.CaseSpec) -> float:
        case, _ = render_case(spec, 0, 4, 160, 128)
        m = case.us_mask
        ring = (cv2.dilate(m.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0) & ~m
        return float(case.us[m].mean() / case.us[ring].mean())

    darkest = min(hypo, key=lambda s: s.contrast)
    assert ratio(iso[0]) > 0.88
    assert ratio(darkest) < 0.75


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate(Path("/nonexistent"), video_format="avi")
    with pytest.raises(ValueError):
        sample_specs(0)
