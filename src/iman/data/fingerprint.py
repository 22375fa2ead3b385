"""The dataset fingerprint: what the ingested data look like, in one JSON file.

nnU-Net's habit: the data are measured once, after ingest, and everything that must fit them
(the protocol check :mod:`iman.data.protocol`, ``iman plan``, the report) reads the numbers
from this file. Read from ``manifest.csv`` and the per-case cache:

* cases and patients; per modality the original image size (H, W, aspect W/H) and spacing;
* intensities at the working size S (the cached uint8 grey arrays; CEUS: every frame):
  mean, std and the 0.5/50/99.5 percentiles of all pixels and of the lesion's pixels;
* CEUS frame counts;
* lesions per modality: area in px at S (the cached mask at S), equivalent diameter
  ``2·sqrt(area/π)`` in px at S, in original px and in mm (original mask × spacing²), the
  fraction of the S×S image the lesion covers; the fraction of the US lesion inside the CEUS
  lesion (both at S, the two images are taken as co-registered, as the MMG does);
Cases per split subset are not in this file: the data are measured whatever the split
config says (and a split that cannot be made must not hide them). :func:`fingerprint_splits`
counts them from ``splits.json`` into ``split_counts.json`` (:func:`write_split_counts`, the
workflow's checkpoint ``split_counts``); the report's fingerprint table shows them.

Each quantity is kept per case (``cases``, so a check can name them) and summarised as
min/median/max.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.names import MODALITIES
from iman.paths import case_file

__all__ = [
    "INTENSITY_PERCENTILES",
    "case_numbers",
    "dataset_fingerprint",
    "equivalent_diameter",
    "fingerprint_splits",
    "hist_stats",
    "read_fingerprint",
    "split_counts",
    "summary",
    "write_fingerprint",
    "write_split_counts",
]

INTENSITY_PERCENTILES = (0.5, 50.0, 99.5)
"""Percentiles of the grey levels (nnU-Net's clipping range and the median)."""


def equivalent_diameter(area: float) -> float:
    """Diameter of the disc of the same area: ``2·sqrt(area/π)``."""
    return 2.0 * math.sqrt(max(area, 0.0) / math.pi)


def summary(values: Iterable[float | None]) -> dict[str, float | None]:
    """min / median / max of the defined values (None when there is none)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return {"min": None, "median": None, "max": None}
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def hist_stats(hist: np.ndarray) -> dict[str, float | None]:
    """Mean, std (ddof 0) and percentiles of uint8 grey levels given as a 256-bin count."""
    n = float(hist.sum())
    if n == 0:
        return {"n_pixels": 0, "mean": None, "std": None,
                **{f"p{q:g}": None for q in INTENSITY_PERCENTILES}}
    levels = np.arange(256, dtype=float)
    mean = float((hist * levels).sum() / n)
    std = float(math.sqrt(max((hist * (levels - mean) ** 2).sum() / n, 0.0)))
    cdf = np.cumsum(hist) / n
    pct = {f"p{q:g}": float(np.searchsorted(cdf, q / 100.0 - 1e-12)) for q in
           INTENSITY_PERCENTILES}
    return {"n_pixels": int(n), "mean": mean, "std": std, **pct}


def _grey_hist(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """256-bin count of a uint8 image (any leading axes; ``mask`` (S, S) selects pixels)."""
    a = np.asarray(img, np.uint8)
    if mask is not None:
        a = a[..., mask.astype(bool)]
    return np.bincount(a.ravel(), minlength=256).astype(np.int64)


def _lesion(mask_s: np.ndarray, mask_orig: np.ndarray, spacing: float) -> dict[str, float]:
    """Area, equivalent diameters and coverage of one lesion mask."""
    area = float(mask_s.sum())
    area_orig = float(mask_orig.sum())
    return {"lesion_area_px": area,
            "lesion_diameter_px": equivalent_diameter(area),
            "lesion_diameter_orig_px": equivalent_diameter(area_orig),
            "lesion_diameter_mm": equivalent_diameter(area_orig) * spacing,
            "coverage": area / float(mask_s.size)}


def case_numbers(case: Mapping[str, Any], npz: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One case's fingerprint row and its grey-level histograms (``{modality}_all|lesion``).

    ``case``: its manifest row (``case_id``, ``patient_id``, ``n_frames``); ``npz``: its
    cached arrays (docs/contracts.md). US stored with 3 channels counts every channel.
    """
    row: dict[str, Any] = {"case_id": str(case["case_id"]),
                           "patient_id": str(case["patient_id"]),
                           "n_frames": int(npz["ceus"].shape[0])}
    hists = {}
    for m in MODALITIES:
        h, w = (int(v) for v in npz[f"{m}_size"])
        spacing = float(npz[f"{m}_spacing_mm"])
        row.update({f"{m}_h": h, f"{m}_w": w, f"{m}_aspect": w / h, f"{m}_spacing_mm": spacing})
        mask = npz[f"{m}_mask"].astype(np.uint8)
        for k, v in _lesion(mask, npz[f"{m}_mask_orig"], spacing).items():
            row[f"{m}_{k}"] = v
        hists[f"{m}_all"] = _grey_hist(npz[m])
        hists[f"{m}_lesion"] = _grey_hist(npz[m], mask)
    us, ceus = npz["us_mask"].astype(bool), npz["ceus_mask"].astype(bool)
    row["us_inside_ceus"] = float((us & ceus).sum() / us.sum()) if us.any() else None
    return row, hists


def split_counts(splits: Mapping[str, Any], patients: Mapping[str, str]) -> list[dict]:
    """Per fold and subset: cases, patients and the largest patient's number of cases."""
    out = []
    for fold in splits["folds"]:
        entry = {}
        for subset in ("train", "val", "test"):
            per_patient = pd.Series([patients[c] for c in fold[subset]]).value_counts()
            entry[subset] = {"cases": len(fold[subset]), "patients": int(per_patient.size),
                             "max_cases_per_patient": int(per_patient.max()) if len(
                                 per_patient) else 0}
        out.append(entry)
    return out


def _modality_summary(rows: pd.DataFrame, m: str, hists: Mapping[str, np.ndarray]) -> dict:
    keys = ["h", "w", "aspect", "spacing_mm", "lesion_area_px", "lesion_diameter_px",
            "lesion_diameter_orig_px", "lesion_diameter_mm", "coverage"]
    out: dict[str, Any] = {k: summary(rows[f"{m}_{k}"]) for k in keys}
    out["intensity"] = {"all": hist_stats(hists[f"{m}_all"]),
                        "lesion": hist_stats(hists[f"{m}_lesion"])}
    return out


def dataset_fingerprint(manifest: pd.DataFrame, cache_dir: Path) -> dict[str, Any]:
    """The fingerprint of an ingested dataset (see the module docstring)."""
    rows, total = [], {f"{m}_{p}": np.zeros(256, np.int64) for m in MODALITIES
                       for p in ("all", "lesion")}
    size = None
    for case in manifest.to_dict("records"):
        with np.load(case_file(cache_dir, str(case["case_id"]))) as npz:
            row, hists = case_numbers(case, npz)
            size = int(npz["us_mask"].shape[-1])
        rows.append(row)
        for k, v in hists.items():
            total[k] += v
    df = pd.DataFrame(rows)
    return {
        "working_size": size,
        "intensity_at": "working size: the cached uint8 grey arrays (CEUS: every frame)",
        "n_cases": len(df), "n_patients": int(df["patient_id"].nunique()),
        "modalities": {m: _modality_summary(df, m, total) for m in MODALITIES},
        "ceus_frames": summary(df["n_frames"]),
        "us_inside_ceus": summary(df["us_inside_ceus"]),
        "cases": rows,
    }


def fingerprint_splits(fp: Mapping[str, Any], splits: Mapping[str, Any]) -> dict[str, Any]:
    """Cases per split subset of every fold (:func:`split_counts`) for a fingerprint's cases."""
    patients = {c["case_id"]: c["patient_id"] for c in fp["cases"]}
    return {"n_folds": len(splits["folds"]),
            "use_source_split": bool(splits.get("use_source_split")),
            "folds": split_counts(splits, patients)}


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_fingerprint(manifest_file: Path, cache_dir: Path, out: Path) -> dict[str, Any]:
    """Fingerprint of the ingested dataset → ``fingerprint.json`` (rule ``fingerprint``)."""
    manifest = pd.read_csv(manifest_file, dtype={"case_id": str, "patient_id": str})
    fp = _clean(dataset_fingerprint(manifest, Path(cache_dir)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fp, indent=1))
    return fp


def write_split_counts(fingerprint_file: Path, splits_file: Path, out: Path) -> dict[str, Any]:
    """Cases per split subset (:func:`fingerprint_splits`) → ``split_counts.json``."""
    counts = fingerprint_splits(read_fingerprint(fingerprint_file),
                                json.loads(Path(splits_file).read_text()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(counts, indent=1))
    return counts


def read_fingerprint(path: Path) -> dict[str, Any]:
    """A written fingerprint."""
    return json.loads(Path(path).read_text())
