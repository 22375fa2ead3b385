"""`iman predict` on phantom cases with a trained experiment of the smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from iman.cli import main
from iman.experiments import experiment_name, iman_spec
from iman.predict import PredictError, predict_cases

pytestmark = pytest.mark.slow


def _smoke_cfg() -> dict:
    from iman.config import load_config

    return load_config(Path(__file__).resolve().parents[1] / "config" / "smoke.yaml")


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
        assert (tmp_path / "pred" / f"{row.case_id}_{m}_margin.png").exists()
        assert (tmp_path / "pred" / f"{row.case_id}_{m}_overlay.png").exists()
    info = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert info["experiment"] == name
    # same unrolled chain as the workflow's evaluation: same masks as its pred.npz
    summary = json.loads((results / "experiments" / name / "summary.json").read_text())
    for m, branch in summary["branches"].items():
        with np.load(results / "runs" / branch["run"] / m / f"loop{branch['loop']}"
                     / "pred.npz") as npz:
            prob = npz[row.case_id].astype(np.float32)
        ref = cv2.resize(prob, (int(row[f"{m}_w"]), int(row[f"{m}_h"])),
                         interpolation=cv2.INTER_LINEAR) >= 0.5
        ours = cv2.imread(str(tmp_path / "pred" / f"{row.case_id}_{m}_mask.png"), 0) > 0
        assert (ref == ours).mean() > 0.995


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
