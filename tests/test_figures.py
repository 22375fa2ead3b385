"""Figures are drawn from small real files: PNG + PDF of the expected size, contours drawn."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from iman.reporting import figures as F

S = 64
CASES = ["c01", "c02", "c03"]


def _disc(cx: float, cy: float, r: float, size: int = S) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def _write_cache(path: Path, shift: int) -> Path:
    mask = _disc(32 + shift, 30, 14)
    rng = np.random.default_rng(shift)
    us = (60 + 120 * mask + rng.integers(0, 30, (S, S))).astype(np.uint8)
    ceus = np.stack([(40 + 20 * f * mask + rng.integers(0, 30, (S, S))).astype(np.uint8)
                     for f in range(5)])
    np.savez_compressed(path, us=us, ceus=ceus, us_mask=mask, ceus_mask=mask)
    return path


def _write_pred(path: Path, offset: float) -> Path:
    preds = {}
    for i, cid in enumerate(CASES):
        prob = _disc(32 + i + offset, 30 + offset, 12).astype(np.float16) * np.float16(0.9)
        preds[cid] = prob
    np.savez_compressed(path, **preds)
    return path


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, object]:
    caches = {cid: _write_cache(tmp_path / f"{cid}.npz", i) for i, cid in enumerate(CASES)}
    preds = {name: _write_pred(tmp_path / f"{name}.npz", off)
             for name, off in (("unet_us", 6), ("unet_ceus", -6), ("iman_us", 2),
                               ("iman_ceus", 3))}
    return {"caches": caches, "preds": preds, "dir": tmp_path}


def _out(stem: Path) -> tuple[Path, Path]:
    """The PNG and PDF a figure function is given (the rule's two outputs)."""
    return stem.with_name(f"{stem.name}.png"), stem.with_name(f"{stem.name}.pdf")


def _png(path: Path) -> np.ndarray:
    assert path.suffix == ".png" and path.stat().st_size > 0
    return mpimg.imread(path)


def _assert_outputs(paths: tuple[Path, Path], size_in: tuple[float, float]) -> np.ndarray:
    png, pdf = paths
    assert pdf.suffix == ".pdf" and pdf.stat().st_size > 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    img = _png(png)
    assert img.shape[:2] == (round(size_in[1] * F.DPI), round(size_in[0] * F.DPI))
    return img


def _n_colour(img: np.ndarray, hex_colour: str, tol: float = 0.12) -> int:
    """Pixels of ``img`` within ``tol`` of a colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    return int(np.all(np.abs(img[..., :3] - rgb) < tol, axis=-1).sum())


def _has_colour(img: np.ndarray, hex_colour: str, tol: float = 0.12, min_px: int = 20) -> bool:
    return _n_colour(img, hex_colour, tol) >= min_px


def test_qualitative_grid(inputs: dict, tmp_path: Path) -> None:
    p = inputs["preds"]
    methods = {"UNet": {"us": p["unet_us"], "ceus": p["unet_ceus"]},
               "AAU-net": {"us": p["iman_us"]},
               "IMAN": {"us": p["iman_us"], "ceus": p["iman_ceus"]}}
    out = F.qualitative_grid(inputs["caches"], methods, *_out(tmp_path / "fig" / "fig3"))
    assert out == _out(tmp_path / "fig" / "fig3")  # written where the rule says
    img = _assert_outputs(out, (F.PANEL_IN * 4, F.PANEL_IN * 2 * 3 + F.LEGEND_IN))
    assert _has_colour(img, F.GT_COLOUR)
    assert _has_colour(img, F.PRED_COLOUR)
    again = F.qualitative_grid(inputs["caches"], methods, *_out(tmp_path / "again"))
    assert again[0].read_bytes() == out[0].read_bytes()
    assert again[1].read_bytes() == out[1].read_bytes()


def test_qualitative_grid_without_predictions_has_no_prediction_colour(
        inputs: dict, tmp_path: Path) -> None:
    out = F.qualitative_grid(list(inputs["caches"].values())[:1], {"none": {}},
                             *_out(tmp_path / "g"))
    img = _assert_outputs(out, (F.PANEL_IN * 2, F.PANEL_IN * 2 + F.LEGEND_IN))
    legend_free = img[: round(F.PANEL_IN * 2 * F.DPI)]
    assert _has_colour(legend_free, F.GT_COLOUR)
    assert not _has_colour(legend_free, F.PRED_COLOUR, min_px=1)


def test_pick_cases_is_deterministic_and_spread() -> None:
    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"case_id": [f"p{i:03d}" for i in range(n)] * 2,
                       "modality": ["us"] * n + ["ceus"] * n,
                       "split": "test",
                       "std_dsc": np.r_[rng.uniform(0.3, 0.95, n), rng.uniform(0.3, 0.95, n)]})
    df = pd.concat([df, pd.DataFrame({"case_id": ["train1"], "modality": ["us"],
                                      "split": ["train"], "std_dsc": [0.0]})])
    picked = F.pick_cases(df, n=4)
    assert picked == F.pick_cases(df.sample(frac=1.0, random_state=1), n=4)
    assert len(set(picked)) == 4 and "train1" not in picked
    mean = df[df.split == "test"].groupby("case_id").std_dsc.mean()
    ranks = mean.rank(method="first").astype(int)
    got = sorted(ranks[c] for c in picked)
    assert got[0] <= n // 4 < got[1] <= n // 2 < got[2] <= 3 * n // 4 < got[3]
    values = [mean[c] for c in picked]
    assert values == sorted(values, reverse=True)
    assert F.pick_cases(df[df.case_id.isin(["p001", "p002"])], n=4) == sorted(
        ["p001", "p002"], key=lambda c: -mean[c])


def test_margin_pathway(inputs: dict, tmp_path: Path) -> None:
    p = inputs["preds"]
    cache = inputs["caches"]["c02"]
    margin = np.clip(_disc(34, 30, 18).astype(np.float32) * 0.8 + 0.2, 0, 1)
    loops = [{"us_pred": p["unet_us"], "ceus_pred": p["unet_ceus"]},
             {"us_margin": margin, "ceus_margin": {"c02": margin}, "us_pred": p["iman_us"],
              "ceus_pred": p["iman_ceus"]},
             {"us_margin": margin, "ceus_margin": None, "us_pred": None,
              "ceus_pred": p["iman_ceus"]}]
    out = F.margin_pathway("c02", cache, loops, *_out(tmp_path / "pathway"))
    img = _assert_outputs(out, (F.PANEL_IN * 3 + 0.6, F.PANEL_IN * 4 + F.LEGEND_IN))
    assert _has_colour(img, F.GT_COLOUR)
    assert _has_colour(img, F.PRED_COLOUR)


def _history(path: Path, epochs: int, start: float) -> Path:
    e = np.arange(epochs)
    pd.DataFrame({"epoch": e, "train_loss": start / (e + 1), "val_loss": start / (e + 1) + 0.1,
                  "val_dice": 1 - 0.5 / (e + 1), "lr": 1e-3, "seconds": 1.0}).to_csv(
        path, index=False)
    return path


def test_training_curves(tmp_path: Path) -> None:
    hist = {"iman/us": [_history(tmp_path / f"us{lp}.csv", 5, 1.0 - 0.2 * lp) for lp in range(3)],
            "iman/ceus": [_history(tmp_path / f"ceus{lp}.csv", 4, 1.2) for lp in range(2)],
            "empty": [tmp_path / "missing.csv"]}
    out = F.training_curves(hist, *_out(tmp_path / "curves"), figsize=(9.0, 3.0))
    img = _assert_outputs(out, (9.0, 3.0))
    assert _has_colour(img, "#2ca02c")
    default = F.training_curves({"a": hist["iman/us"]}, *_out(tmp_path / "curves1"))
    _assert_outputs(default, (4.2, 2.6 + F.LEGEND_IN))


def _table4(path: Path, with_std: bool) -> Path:
    paper = pd.read_csv(Path(__file__).resolve().parents[1]
                        / "src/iman/resources/paper_tables/table4.csv", dtype=str,
                        keep_default_na=False)
    df = paper[["kernel", "filter"]].copy()
    rng = np.random.default_rng(0)
    for mod in ("us", "ceus"):
        for m in ("dsc", "hd"):
            vals = pd.to_numeric(paper[f"{mod}_{m}"], errors="coerce")
            ours = {"dsc": "soft_dsc", "hd": "row_hd"}[m]  # the family the paper printed
            df[f"{mod}_{ours}"] = vals + rng.normal(0, 0.01, len(df))
            if with_std:
                df[f"{mod}_{ours}_std"] = np.where(vals.notna(), 0.01, np.nan)
            df[f"paper_{mod}_{m}"] = vals
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("with_std", [True, False])
def test_table4_heatmap(tmp_path: Path, with_std: bool) -> None:
    out = F.table4_heatmap(_table4(tmp_path / "t4.csv", with_std), *_out(tmp_path / "t4"))
    _assert_outputs(out, (10.0, 4.8))


def test_ablation_bars_table2_and_table5(tmp_path: Path) -> None:
    t2 = pd.DataFrame({"row": ["a", "b", "c", "d"], "mmg": [0, 1, 1, 1], "itp": [0, 0, 1, 1],
                       "modal_fusion": [0, 0, 0, 1],
                       "us_soft_dsc": [0.80, 0.82, 0.83, 0.84],
                       "us_soft_dsc_std": [0.01, 0.02, 0.01, 0.0],
                       "us_row_hd": [6.0, 5.8, 6.1, 6.1],
                       "ceus_soft_dsc": [0.77, np.nan, 0.80, 0.81],
                       "paper_us_dsc": [0.8033, 0.8268, 0.8313, 0.8396],
                       "paper_ceus_dsc": [0.7689, 0.7890, 0.8033, 0.8116]})
    t2.to_csv(tmp_path / "t2.csv", index=False)
    out = F.ablation_bars(tmp_path / "t2.csv", *_out(tmp_path / "t2"), figsize=(8.0, 5.0))
    _assert_outputs(out, (8.0, 5.0))
    t5 = pd.concat([t2.drop(columns=["us_soft_dsc_std"]).assign(backbone=b)
                    for b in ("FPN", "UNet")])
    t5.to_csv(tmp_path / "t5.csv", index=False)
    out5 = F.ablation_bars(tmp_path / "t5.csv", *_out(tmp_path / "t5"))
    _assert_outputs(out5, (2 * max(3.4, 0.9 + 0.22 * 8), 2.4 * 2 + F.LEGEND_IN))


def test_paper_values_pair_only_with_the_family_they_were_measured_in() -> None:
    df = pd.DataFrame({"us_dsc": [0.5], "us_soft_dsc": [0.6], "paper_us_dsc": [0.78],
                       "paper_us_hd": [6.1]})
    assert F.paper_column(df, "us", "soft_dsc").tolist() == [0.78]
    assert F.paper_column(df, "us", "row_hd").tolist() == [6.1]
    assert F.paper_column(df, "us", "dsc").isna().all()  # thresholded DSC: no paper value
    assert F.paper_column(df, "us", "hd").isna().all()  # HD in mm: no paper value


def test_dsc_distribution(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)

    def frame(mods: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame({"case_id": [f"c{i}" for i in range(12)] * len(mods),
                             "modality": np.repeat(mods, 12), "split": "test",
                             "std_dsc": rng.uniform(0.5, 0.95, 12 * len(mods))})

    per_case = {"UNet": frame(("us", "ceus")), "AAU-net": frame(("us",)),
                "IMAN": frame(("us", "ceus"))}
    out = F.dsc_distribution(per_case, *_out(tmp_path / "dist"), figsize=(7.0, 3.0))
    img = _assert_outputs(out, (7.0, 3.0))
    assert _has_colour(img, "#cfe2f3")  # the violins
    again = F.dsc_distribution(per_case, *_out(tmp_path / "again"), figsize=(7.0, 3.0))
    assert again[0].read_bytes() == out[0].read_bytes()  # fixed-seed jitter, no global RNG
    with pytest.raises(KeyError):
        F.dsc_distribution({"x": pd.DataFrame({"case_id": ["a"]})}, *_out(tmp_path / "bad"))


def test_ablation_labels_name_the_control_row() -> None:
    df = pd.DataFrame({"mmg": [0, 0, 1, 1, 1], "itp": [0, 1, 0, 1, 1],
                       "modal_fusion": [0, 0, 0, 0, 1]})
    assert F._setting_labels(df) == ["baseline", "control: loops, no margins", "+MMG",
                                     "+MMG +ITP", "+MMG +ITP +fusion"]


def test_forest_plot(tmp_path: Path) -> None:
    stats = pd.DataFrame({
        "table": ["table1", "table1", "table2", "table1"],
        "row": ["method=unet", "method=fpn", "mmg=1", "method=unet"],
        "reference": ["method=iman", "method=iman", "mmg=0", "method=iman"],
        "modality": ["us", "us", "ceus", "us"], "metric": ["std_dsc"] * 3 + ["std_hd_mm"],
        "n_runs": 1, "n_cases": [7, 7, 7, 7], "mean_diff": [-0.1, 0.02, 0.05, 1.0],
        "ci_low": [-0.2, -0.05, 0.01, 0.5], "ci_high": [-0.02, 0.08, 0.09, 1.5],
        "p": [0.01, 0.6, 0.03, 0.02], "p_holm": [0.02, 0.6, 0.03, 0.02],
        "effect_size": [-0.8, 0.1, 0.7, 0.9],
        "better": ["positive"] * 3 + ["negative"],
        "comparison": ["UNet vs IMAN", "FPN vs IMAN", "MMG vs baseline", "UNet vs IMAN"]})
    stats.to_csv(tmp_path / "stats.csv", index=False)
    png, pdf = F.forest_plot(tmp_path / "stats.csv", *_out(tmp_path / "forest"))
    assert png.stat().st_size > 1000 and pdf.stat().st_size > 1000
    # UNet is significantly worse than IMAN on US DSC (red ▼), MMG better on CEUS (green ▲)
    assert _has_colour(_png(png), "#d62728") and _has_colour(_png(png), "#1a7f37")
    only_better = stats[stats["mean_diff"] > 0].assign(metric="std_dsc", better="positive")
    only_better.to_csv(tmp_path / "better.csv", index=False)
    png2, _ = F.forest_plot(tmp_path / "better.csv", *_out(tmp_path / "forest2"))
    # the legend shows both marks; the panels of png2 add green ones only
    assert _n_colour(_png(png2), "#d62728") < _n_colour(_png(png), "#d62728")
    assert _n_colour(_png(png2), "#1a7f37") >= _n_colour(_png(png), "#1a7f37")
