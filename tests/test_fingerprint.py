"""The dataset fingerprint, the protocol check and `iman plan`'s suggestions (fast tier).

Hand-built caches with square lesions give numbers computed by hand; the phantom and the
authors' folder layout go through the real ingest; datasets built to misfit (tiny lesions,
short videos, extreme aspect, tiny or empty folds) must each be reported with the config key
and the case named.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from iman.config import ConfigError, resolve_config
from iman.data.fingerprint import (
    dataset_fingerprint,
    fingerprint_splits,
    hist_stats,
    write_fingerprint,
    write_split_counts,
)
from iman.data.ingest import ingest
from iman.data.protocol import (
    MIN_TEST_CASES,
    check_once,
    check_protocol,
    protocol_settings,
    write_protocol_check,
)
from iman.plan import plan_text, suggest_settings
from iman.reporting.fingerprint import fingerprint_table, write_fingerprint_report

S = 16
CONFIG = Path(__file__).resolve().parents[1] / "config"


def _square(size: tuple[int, int], y0: int, x0: int, side: int) -> np.ndarray:
    m = np.zeros(size, np.uint8)
    m[y0:y0 + side, x0:x0 + side] = 1
    return m


def _case(out: Path, case: str, *, us_side: int, ceus_side: int, us_offset: int = 4,
          grey: int, frames: int, orig: tuple[int, int] = (32, 32), spacing: float = 0.5,
          orig_side: int = 8) -> None:
    """One cache file (docs/contracts.md keys): square lesions, uniform grey images."""
    np.savez_compressed(
        out / f"{case}.npz",
        us=np.full((S, S), grey, np.uint8),
        ceus=np.full((frames, S, S), grey + 100, np.uint8),
        us_mask=_square((S, S), us_offset, us_offset, us_side),
        ceus_mask=_square((S, S), 4, 4, ceus_side),
        us_mask_orig=_square(orig, 0, 0, orig_side),
        ceus_mask_orig=_square(orig, 0, 0, orig_side),
        us_size=np.asarray(orig, np.int64), ceus_size=np.asarray(orig, np.int64),
        us_spacing_mm=np.asarray(spacing), ceus_spacing_mm=np.asarray(spacing))


@pytest.fixture()
def hand_built(tmp_path: Path) -> tuple[Path, Path]:
    """Three cases, two patients: A (4x4 US lesion inside a 6x6 CEUS one, grey 10, 3 frames),
    B (2x2 US lesion at 7..8, one of its 4 pixels inside a 4x4 CEUS one at 4..7, grey 20,
    7 frames),
    C as A but grey 20, 5 frames."""
    cache = tmp_path / "cache"
    cache.mkdir()
    _case(cache, "A", us_side=4, ceus_side=6, grey=10, frames=3)
    _case(cache, "B", us_side=2, ceus_side=4, us_offset=7, grey=20, frames=7)
    _case(cache, "C", us_side=4, ceus_side=6, grey=20, frames=5)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"case_id": ["A", "B", "C"], "patient_id": ["p1", "p2", "p1"]}).to_csv(
        manifest, index=False)
    return manifest, cache


def _diameter(area: float) -> float:
    return 2 * math.sqrt(area / math.pi)


def test_fingerprint_numbers_by_hand(hand_built: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, cache = hand_built
    fp = write_fingerprint(manifest, cache, tmp_path / "fingerprint.json")
    assert fp == json.loads((tmp_path / "fingerprint.json").read_text())
    assert (fp["n_cases"], fp["n_patients"], fp["working_size"]) == (3, 2, S)
    us = fp["modalities"]["us"]
    assert us["lesion_area_px"] == {"min": 4.0, "median": 16.0, "max": 16.0}
    assert us["lesion_diameter_px"]["min"] == pytest.approx(_diameter(4))
    assert us["lesion_diameter_px"]["max"] == pytest.approx(_diameter(16))  # 4.514
    assert us["coverage"]["max"] == pytest.approx(16 / 256)
    # original: an 8x8 square at 0.5 mm
    assert us["lesion_diameter_orig_px"]["median"] == pytest.approx(_diameter(64))
    assert us["lesion_diameter_mm"]["median"] == pytest.approx(_diameter(64) * 0.5)
    assert us["h"] == {"min": 32.0, "median": 32.0, "max": 32.0} and us["aspect"]["max"] == 1
    assert fp["modalities"]["ceus"]["lesion_area_px"] == {"min": 16.0, "median": 36.0,
                                                         "max": 36.0}
    assert fp["ceus_frames"] == {"min": 3.0, "median": 5.0, "max": 7.0}
    assert fp["us_inside_ceus"] == {"min": 0.25, "median": 1.0, "max": 1.0}
    # grey levels: US 10 (one case) and 20 (two cases) over 256 pixels each
    it = us["intensity"]["all"]
    assert it["n_pixels"] == 3 * 256 and it["mean"] == pytest.approx(50 / 3)
    assert it["std"] == pytest.approx(math.sqrt((2 * (20 - 50 / 3) ** 2 + (10 - 50 / 3) ** 2)
                                                / 3))
    assert (it["p0.5"], it["p50"], it["p99.5"]) == (10, 20, 20)
    lesion = us["intensity"]["lesion"]  # 16 px of grey 10, 4 + 16 px of grey 20
    assert lesion["n_pixels"] == 36 and lesion["mean"] == pytest.approx((160 + 400) / 36)
    ceus = fp["modalities"]["ceus"]["intensity"]["all"]  # every frame: 3 x 110, 12 x 120
    assert ceus["n_pixels"] == 15 * 256 and ceus["mean"] == pytest.approx((3 * 110 + 12 * 120)
                                                                          / 15)
    rows = {c["case_id"]: c for c in fp["cases"]}
    assert rows["B"]["us_inside_ceus"] == 0.25 and rows["B"]["n_frames"] == 7


def test_hist_stats_percentiles() -> None:
    hist = np.zeros(256, np.int64)
    hist[[0, 100, 200]] = [1, 98, 1]
    st = hist_stats(hist)
    assert st["mean"] == pytest.approx(100.0) and st["p50"] == 100
    assert (st["p0.5"], st["p99.5"]) == (0, 200)  # 1 % at each end, > 0.5 %
    assert hist_stats(np.zeros(256, np.int64))["mean"] is None


def test_split_counts(hand_built: tuple[Path, Path]) -> None:
    manifest, cache = hand_built
    fp = dataset_fingerprint(pd.read_csv(manifest, dtype=str), cache)
    counts = fingerprint_splits(fp, {"folds": [{"train": ["A", "C"], "val": ["B"], "test": []}]})
    fold = counts["folds"][0]
    assert fold["train"] == {"cases": 2, "patients": 1, "max_cases_per_patient": 2}
    assert fold["test"] == {"cases": 0, "patients": 0, "max_cases_per_patient": 0}


# ---- the protocol check ----------------------------------------------------------------------


def _settings(**changes: object) -> dict:
    cfg = resolve_config([CONFIG / "smoke.yaml"], {})
    s = protocol_settings(cfg)
    s.update(changes)
    return s


def _fp(hand_built: tuple[Path, Path]) -> dict:
    manifest, cache = hand_built
    return dataset_fingerprint(pd.read_csv(manifest, dtype=str), cache)


def _by_key(findings: list, key: str) -> list:
    return [f for f in findings if f.key.startswith(key)]


def test_kernels_wider_than_tiny_lesions_are_named(hand_built: tuple[Path, Path]) -> None:
    fp = _fp(hand_built)
    # kernel 8 original px at 16/32: a 5x5 element (eq. diameter 5) vs US lesions of
    # diameters 2.26 (B) and 4.51 (A, C): all three reached; kernel 4: 3x3 only B
    found = check_protocol(_settings(mmg={"us": 8, "ceus": 4}, table4_kernels=[]), fp)
    us8 = [f for f in _by_key(found, "mmg.us.kernel") if "the US lesion" in f.message]
    assert len(us8) == 1 and us8[0].cases == ["A", "B", "C"] and "kernel 8" in us8[0].message
    ceus4 = [f for f in _by_key(found, "mmg.ceus.kernel") if "the US lesion" in f.message]
    assert [f.cases for f in ceus4] == [["B"]]
    assert "mmg.ceus.kernel" in ceus4[0].line() and "B" in ceus4[0].line()
    # a kernel of 2 original px is 1x1 at half the size: no band at all
    flat = check_protocol(_settings(mmg={"us": 2, "ceus": 2}, table4_kernels=[]), fp)
    assert any("1 px along an axis" in f.message for f in flat)


def test_short_videos_are_named_with_the_frame_settings(hand_built: tuple[Path, Path]) -> None:
    fp = _fp(hand_built)
    s = _settings(frames={"T": 3, "step": 2, "strategy": "middle"}, table3_frames=[1, 3])
    found = _by_key(check_protocol(s, fp), "frames.T")
    # (3 - 1) x 2 + 1 = 5: only A (3 frames) is shorter
    assert len(found) == 1 and found[0].cases == ["A"] and "needs 5 frames" in found[0].message
    found = _by_key(check_protocol(_settings(table3_frames=[1, 3, 7]), fp), "tables.table3")
    # T = 7 at step 2 needs 13: every case, shortest first
    assert found[0].cases == ["A", "C", "B"] and found[0].level == "warning"


def test_extreme_aspect_and_upsampling_are_named(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    _case(cache, "wide", us_side=4, ceus_side=4, grey=10, frames=9, orig=(10, 40),
          orig_side=4)
    _case(cache, "ok", us_side=4, ceus_side=4, grey=10, frames=9, orig=(40, 50))
    fp = dataset_fingerprint(pd.DataFrame({"case_id": ["wide", "ok"],
                                           "patient_id": ["p", "q"]}), cache)
    found = _by_key(check_protocol(_settings(size=48), fp), "data.size")
    aspect = [f for f in found if "aspect" in f.message]
    assert [f.cases for f in aspect] == [["wide"], ["wide"]]  # US and CEUS
    up = [f for f in found if "upsampled" in f.message]
    assert up and all(f.cases == ["wide"] for f in up)  # 48 > 40 but not > 50


def test_tiny_and_empty_folds(hand_built: tuple[Path, Path], tmp_path: Path) -> None:
    fp = _fp(hand_built)
    tiny = {"folds": [{"train": ["A", "C"], "val": ["B"], "test": []}]}
    found = check_protocol(_settings(mismatched=False), fp, fingerprint_splits(fp, tiny))
    assert [f.level for f in found if f.key == "split"] == ["warning"]
    assert f"fewer than {MIN_TEST_CASES}" in found[-1].message
    empty = {"folds": [{"train": ["A", "B", "C"], "val": [], "test": []}]}
    errors = [f for f in check_protocol(_settings(mismatched=False), fp,
                                        fingerprint_splits(fp, empty)) if f.level == "error"]
    assert [f.message for f in errors] == ["the hold-out split has no val case"]


def test_an_error_is_recorded_by_the_rule_and_stops_only_training(
        hand_built: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest, cache = hand_built
    fp_file = tmp_path / "fp.json"
    write_fingerprint(manifest, cache, fp_file)
    splits, counts = tmp_path / "splits.json", tmp_path / "split_counts.json"
    # the mismatched control cannot give A and C (one patient) another patient's margins
    splits.write_text(json.dumps({"folds": [{"train": ["A", "C"], "val": ["B"],
                                             "test": ["B"]}]}))
    write_split_counts(fp_file, splits, counts)
    out = tmp_path / "protocol_check.json"
    # the rule records the error and succeeds: preparing the data never needs a trainable
    # config (snakemake data); the DAG-time check_once stops training with it
    findings = write_protocol_check(fp_file, counts, _settings(mismatched=True), out)
    record = json.loads(out.read_text())
    errors = [f for f in record["findings"] if f["level"] == "error"]
    assert record["n_errors"] == len(errors) == sum(f.level == "error" for f in findings) > 0
    assert any("tables.table2.mismatched" in json.dumps(e) and "train subset" in json.dumps(e)
               for e in errors)
    # check_once: printed once (when announced), an error every time
    ok = _settings(mismatched=False)
    assert "protocol check:" in check_once(ok, fp_file, counts, announce=False)
    assert capsys.readouterr().err == ""
    for _ in range(2):
        check_once(ok, fp_file, counts)
    assert capsys.readouterr().err.count("protocol check:") == 1
    for _ in range(2):
        with pytest.raises(ConfigError, match="tables.table2.mismatched"):
            check_once(_settings(mismatched=True), fp_file, counts)
    findings = write_protocol_check(fp_file, counts, _settings(mismatched=False), out)
    record = json.loads(out.read_text())
    assert record["splits"]["folds"][0]["val"]["cases"] == 1
    assert len(record["findings"]) == len(findings) > 0


# ---- real ingest: phantom and the authors' layout --------------------------------------------


def _orig_diameter(mask_file: Path) -> float:
    mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    return _diameter(float((mask >= 128).sum()))


def test_phantom_fingerprint(tmp_path: Path) -> None:
    from iman.data.phantom import generate

    sheet = generate(tmp_path / "phantom", n_patients=5, seed=2, second_case_fraction=0.0,
                     n_frames=9, height=96, width=72, video_format="frames")
    manifest = ingest("sheet", sheet, tmp_path / "data", 32)
    fp = write_fingerprint(tmp_path / "data" / "manifest.csv", tmp_path / "data" / "cache",
                           tmp_path / "data" / "fingerprint.json")
    assert (fp["n_cases"], fp["n_patients"]) == (len(manifest), 5)
    us = fp["modalities"]["us"]
    assert us["h"]["min"] == us["h"]["max"] == 96 and us["w"]["max"] == 72
    assert us["spacing_mm"]["max"] == 0.1 and fp["ceus_frames"]["max"] == 9
    rows = pd.read_csv(sheet, dtype=str)
    for row, case in zip(rows.itertuples(), fp["cases"], strict=True):
        d = _orig_diameter(sheet.parent / row.ceus_mask)  # from the PNG, not the cache
        assert case["ceus_lesion_diameter_orig_px"] == pytest.approx(d)
        assert case["ceus_lesion_diameter_mm"] == pytest.approx(0.1 * d)
    assert fp["us_inside_ceus"]["min"] > 0.9  # the CEUS lesion is the core plus a zone


def _authors_tree(root: Path) -> Path:
    """Two cases in the authors' layout: US 40x40 with a 10x10 lesion (case 0) / 20x20
    (case 135) at (4, 4), so that they stay squares at S = 20; CEUS frame folders (12 / 5
    frames, 60x50) with 30x20 lesions."""
    for split, case, side, frames in (("train", 0, 10, 12), ("test", 135, 20, 5)):
        us, ceus = root / "us_small" / split, root / "ceus_frames" / split
        for sub in (us / "img", us / "labelcol", ceus / "labelcol", ceus / "img" / str(case)):
            sub.mkdir(parents=True)
        cv2.imwrite(str(us / "img" / f"{case:05d}.jpg"), np.full((40, 40, 3), 90, np.uint8))
        cv2.imwrite(str(us / "labelcol" / f"{case:05d}.png"),
                    255 * _square((40, 40), 4, 4, side))
        for k in range(frames):
            cv2.imwrite(str(ceus / "img" / str(case) / f"{k}.png"),
                        np.full((60, 50), 30 + k, np.uint8))
        lesion = np.zeros((60, 50), np.uint8)
        lesion[10:40, 10:30] = 255
        cv2.imwrite(str(ceus / "labelcol" / f"{case:05d}.png"), lesion)
    return root


def test_authors_layout_fingerprint(tmp_path: Path) -> None:
    root = _authors_tree(tmp_path / "datasets")
    ingest("iman_public", root, tmp_path / "data", 20)
    fp = write_fingerprint(tmp_path / "data" / "manifest.csv", tmp_path / "data" / "cache",
                           tmp_path / "data" / "fingerprint.json")
    assert (fp["n_cases"], fp["n_patients"]) == (2, 2)  # no patient info: one per case
    us, ceus = fp["modalities"]["us"], fp["modalities"]["ceus"]
    assert us["lesion_diameter_orig_px"]["min"] == pytest.approx(_diameter(100))
    assert us["lesion_diameter_orig_px"]["max"] == pytest.approx(_diameter(400))
    assert us["lesion_diameter_mm"] == us["lesion_diameter_orig_px"]  # 1.0 mm assumed
    # at S = 20 the 10x10 square of 40 px becomes 5x5, the 20x20 one 10x10
    assert us["lesion_area_px"] == {"min": 25.0, "median": 62.5, "max": 100.0}
    assert ceus["h"]["max"] == 60 and ceus["aspect"]["max"] == pytest.approx(50 / 60)
    assert ceus["lesion_diameter_orig_px"]["max"] == pytest.approx(_diameter(600))
    assert fp["ceus_frames"] == {"min": 5.0, "median": 8.5, "max": 12.0}
    assert ceus["intensity"]["all"]["p0.5"] == 30 and ceus["intensity"]["all"]["p99.5"] == 41


# ---- plan and report -------------------------------------------------------------------------


def test_suggestions_follow_the_data(hand_built: tuple[Path, Path]) -> None:
    fp = _fp(hand_built)
    cfg = resolve_config([CONFIG / "paper.yaml"], {})  # 320 px, T 5 step 3, 75/100
    s = suggest_settings(fp, cfg)
    # 32-px originals: 320 would upsample, the bound is 32
    assert s["size"] == 32
    # 10th percentile of the 9.03-px original lesion diameters (all equal), x 0.9
    top = 0.9 * _diameter(64)
    assert s["kernels"] == [round(f * top) for f in (0.4, 0.6, 0.8, 1.0)]
    assert (s["mmg_us"], s["mmg_ceus"]) == (round(0.6 * top), round(0.8 * top))
    # the shortest video has 3 frames: T 5 does not fit at any step, T 3 at step 1
    assert (s["frames_T"], s["frames_step"], s["frames_table3"]) == (3, 1, [1, 3])
    text = plan_text(fp, cfg, None)
    snippet = yaml.safe_load(text[text.index("\ndata:"):])
    assert snippet["data"]["size"] == 32 and snippet["tables"]["table4"]["kernels"] == s[
        "kernels"]
    assert snippet["mmg"]["us"] == {"kernel": s["mmg_us"], "filter": "gaussian"}
    assert "warning: mmg.us.kernel" in text and "n_cases: 3" in text


def test_report_table_and_figure(hand_built: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, cache = hand_built
    write_fingerprint(manifest, cache, tmp_path / "fp.json")
    splits, counts = tmp_path / "splits.json", tmp_path / "counts.json"
    splits.write_text(json.dumps({"folds": [{"train": ["A", "C"], "val": ["B"], "test": []}]}))
    write_split_counts(tmp_path / "fp.json", splits, counts)
    check = tmp_path / "check.json"
    write_protocol_check(tmp_path / "fp.json", counts, _settings(mismatched=False), check)
    write_fingerprint_report(tmp_path / "fp.json", counts, check, tmp_path / "t.html",
                             tmp_path / "f.png")
    html = (tmp_path / "t.html").read_text()
    assert "lesion eq. diameter (mm)" in html and "fold 0 val" in html
    assert "mmg.us.kernel" in html and "Protocol check" in html
    assert cv2.imread(str(tmp_path / "f.png")).shape[1] > 500
    table = fingerprint_table(json.loads((tmp_path / "fp.json").read_text()))
    row = table[(table["quantity"] == "CEUS frames")].iloc[0]
    assert (row["min"], row["median"], row["max"]) == (3, 5, 7)
