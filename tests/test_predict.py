"""`iman predict` on phantom cases with a trained experiment of the smoke run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import iman.predict
from iman.cli import main
from iman.data.ingest import DatasetError, ingest, read_case_sheet, read_original
from iman.data.io import image_size
from iman.data.phantom import generate
from iman.experiments import experiment_name, iman_spec
from iman.predict import MARGIN_BGR, MASK_BGR, PredictError, _overlay, predict_cases

WORK = 32  # config/smoke.yaml's working size


def _smoke_cfg() -> dict:
    from iman.config import load_config

    return load_config(Path(__file__).resolve().parents[1] / "config" / "smoke.yaml")


def _border(binary: np.ndarray) -> np.ndarray:
    """Pixels of a 0/1 map with a 4-neighbour outside it (outside the image counts)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    inner = cv2.erode(binary.astype(np.uint8), cross, borderType=cv2.BORDER_CONSTANT,
                      borderValue=0)
    return (binary > 0) & (inner == 0)


def _pixels(rgb: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    return (rgb == np.asarray(bgr, np.uint8)).all(axis=2)


def _check_contours(overlay: np.ndarray, mask: np.ndarray, margin: np.ndarray | None) -> None:
    """Magenta = the mask's border (within the line width); cyan = the margin band's border."""
    width = max(1, round(min(mask.shape) / 200))
    near = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    magenta, cyan = _pixels(overlay, MASK_BGR), _pixels(overlay, MARGIN_BGR)
    border = _border(mask > 0)
    assert magenta.any() == border.any()
    assert not (border & ~magenta).any()  # every border pixel is drawn ...
    assert not (magenta & ~cv2.dilate(border.astype(np.uint8), near).astype(bool)).any()
    if width == 1:
        assert (magenta == border).all()  # ... and nothing else: PNG and overlay agree
    if margin is None:
        assert not cyan.any()
        return
    band = margin >= 128
    if band.all() or not band.any():
        assert not cyan.any()
        return
    band_border = _border(band)
    assert not (band_border & ~(cyan | magenta)).any()
    assert not (cyan & ~cv2.dilate(band_border.astype(np.uint8), near).astype(bool)).any()


def test_read_original_is_the_cached_image_before_resizing(tmp_path: Path) -> None:
    """US (cropped from a capture) and every CEUS frame (folder, mp4, cropped) as cached."""
    sheet = generate(tmp_path / "raw", n_patients=2, seed=3, n_frames=5, height=48, width=40,
                     side_by_side=True, video_format="mixed")
    table = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    table.loc[0, "us_image"] = f"{table.loc[0, 'ceus']}/0.png"  # a capture: us_crop applies
    table.to_csv(sheet, index=False)
    manifest = ingest("sheet", sheet, tmp_path / "out", 16)
    sources = {s.case_id: s for s in read_case_sheet(sheet)[0]}
    assert image_size(sources[table.loc[0, "case_id"]].us_image) != (48, 40)
    for r in manifest.itertuples():
        with np.load(tmp_path / "out" / r.cache) as npz:
            us = read_original(sources[r.case_id], "us")
            assert us.shape == (r.us_h, r.us_w) == (48, 40)
            assert (cv2.resize(us, (16, 16), interpolation=cv2.INTER_AREA) == npz["us"]).all()
            assert (npz["ceus"][r.n_frames // 2] != npz["ceus"][0]).any()
            for k in range(r.n_frames):
                frame = read_original(sources[r.case_id], "ceus", k)
                assert frame.shape == (r.ceus_h, r.ceus_w)
                small = cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA)
                assert (small == npz["ceus"][k]).all(), (r.case_id, k)
            assert (read_original(sources[r.case_id], "ceus")
                    == read_original(sources[r.case_id], "ceus", r.n_frames // 2)).all()
    src = sources[table.loc[1, "case_id"]]
    src.ceus.unlink()
    with pytest.raises(DatasetError, match=f"{src.case_id}: ceus/{src.case_id}.mp4: missing"):
        read_original(src, "ceus", 2)


def test_overlay_line_width_scales_with_the_image(tmp_path: Path) -> None:
    image = np.full((450, 600), 90, np.uint8)
    mask = np.zeros_like(image)
    cv2.ellipse(mask, (300, 220), (150, 100), 0, 0, 360, 1, -1)
    margin = np.zeros(image.shape, np.float32)
    cv2.ellipse(margin, (300, 220), (200, 150), 0, 0, 360, 1.0, 40)
    _overlay(image, mask, margin, tmp_path / "o.png")
    overlay = cv2.imread(str(tmp_path / "o.png"))
    assert overlay.shape == (450, 600, 3)
    magenta = _pixels(overlay, MASK_BGR)
    assert (magenta & ~_border(mask)).any()  # wider than one pixel: 2 px at 450
    _check_contours(overlay, mask, np.round(margin * 255).astype(np.uint8))


@pytest.mark.dag
def test_predict_writes_masks_margins_overlays(smoke_run: Path, tmp_path: Path) -> None:
    results = smoke_run / "results"
    name = experiment_name(iman_spec(_smoke_cfg()))
    sheet = results / "phantom" / "cases.csv"
    cases = predict_cases(results, name, sheet, tmp_path / "pred")
    manifest = pd.read_csv(results / "data" / "manifest.csv", dtype={"case_id": str})
    assert sorted(cases) == sorted(manifest["case_id"])
    row = manifest.iloc[0]
    for m in ("us", "ceus"):
        mask = cv2.imread(str(tmp_path / "pred" / f"{row.case_id}_{m}_mask.png"), 0)
        assert mask.shape == (row[f"{m}_h"], row[f"{m}_w"])  # original size
        assert set(mask.ravel()) <= {0, 255}
    info = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert info["experiment"] == name
    sources = {s.case_id: s for s in read_case_sheet(sheet)[0]}
    for r in manifest.itertuples():
        src = sources[r.case_id]
        first = next(iter(sorted(src.ceus.iterdir()))) if src.ceus.is_dir() else None
        for m in ("us", "ceus"):
            size = (getattr(r, f"{m}_h"), getattr(r, f"{m}_w"))
            assert size != (WORK, WORK)
            if m == "us":
                assert image_size(src.us_image) == size  # no crop in the smoke phantom
            elif first is not None:
                assert image_size(first) == size
            assert info["sizes_hw"][m][r.case_id] == list(size)
            stem = tmp_path / "pred" / f"{r.case_id}_{m}"
            mask = cv2.imread(f"{stem}_mask.png", 0)
            margin = cv2.imread(f"{stem}_margin.png", 0)
            overlay = cv2.imread(f"{stem}_overlay.png", cv2.IMREAD_COLOR)
            assert mask.shape == margin.shape == overlay.shape[:2] == size
            _check_contours(overlay, mask, margin)
    # same unrolled chain as the workflow's evaluation: same masks as its pred.npz
    summary = json.loads((results / "experiments" / name / "summary.json").read_text())
    for m, branch in summary["branches"].items():
        with np.load(results / "runs" / branch["run"] / m / f"loop{branch['loop']}"
                     / "pred.npz") as npz:
            prob = npz[row.case_id].astype(np.float32)
        ref_prob = cv2.resize(prob, (int(row[f"{m}_w"]), int(row[f"{m}_h"])),
                              interpolation=cv2.INTER_LINEAR)
        ours = cv2.imread(str(tmp_path / "pred" / f"{row.case_id}_{m}_mask.png"), 0) > 0
        # pred.npz stores float16: each probability is off by at most half an ulp below 1
        # (2⁻¹²), and linear resizing keeps that bound, so a pixel may only disagree where
        # the stored probability is within 2⁻¹² of the 0.5 threshold
        differ = (ref_prob >= 0.5) != ours
        assert np.all(np.abs(ref_prob[differ] - 0.5) <= 2.0**-12), (
            m, int(differ.sum()), np.abs(ref_prob[differ] - 0.5).max(initial=0))


@pytest.mark.dag
def test_predict_wrong_inputs_get_clear_errors(smoke_run: Path, tmp_path: Path) -> None:
    results = smoke_run / "results"
    with pytest.raises(PredictError, match="not an experiment name"):
        predict_cases(results, "nonsense", tmp_path / "x.csv", tmp_path / "o")
    with pytest.raises(PredictError, match="(?s)not trained.*best.pt"):
        predict_cases(results, "unet.demo__gate__T3s2mid__cross__us9none__ceus9none__L1__seed0",
                      tmp_path / "x.csv", tmp_path / "o")
    name = experiment_name(iman_spec(_smoke_cfg()))
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,patient_id,us_image,us_mask,ceus,ceus_mask\nX,P,a.png,b.png,c,d.png\n")
    with pytest.raises(PredictError, match="a.png"):
        predict_cases(results, name, bad, tmp_path / "o")
    code = main(["predict", "--results", str(results), "--experiment", "nonsense",
                 "--sheet", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2


@pytest.mark.dag
def test_predict_original_gone_is_one_clear_error(smoke_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Originals that break between the ingest and the overlays: every case and file named."""
    phantom = smoke_run / "results" / "phantom"
    table = pd.read_csv(phantom / "cases.csv", dtype=str, keep_default_na=False)
    rows = pd.concat([table[~table["ceus"].str.endswith(".mp4")].head(1),
                      table[table["ceus"].str.endswith(".mp4")].head(1)])
    raw = tmp_path / "raw"
    for col in ("us_image", "us_mask", "ceus", "ceus_mask"):
        for rel in rows[col]:
            (raw / rel).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if (phantom / rel).is_dir() else shutil.copy
            copy(phantom / rel, raw / rel)
    sheet = raw / "cases.csv"
    rows.to_csv(sheet, index=False)
    folder_case, video_case = rows.iloc[0], rows.iloc[1]
    real_ingest = iman.predict._ingest_new

    def ingest_then_break(*args: object) -> pd.DataFrame:
        manifest = real_ingest(*args)
        (raw / folder_case["us_image"]).write_bytes(b"not a png")
        (raw / video_case["ceus"]).unlink()
        return manifest

    monkeypatch.setattr(iman.predict, "_ingest_new", ingest_then_break)
    name = experiment_name(iman_spec(_smoke_cfg()))
    with pytest.raises(PredictError) as err:
        predict_cases(smoke_run / "results", name, sheet, tmp_path / "pred")
    message = str(err.value)
    assert "2 problem(s)" in message
    assert f"{folder_case['case_id']}: {folder_case['us_image']}: " in message
    assert f"{video_case['case_id']}: {video_case['ceus']}: missing" in message
    assert not (tmp_path / "pred" / "predictions.json").exists()
    assert not (tmp_path / "pred" / "_work" / "cache").exists()
