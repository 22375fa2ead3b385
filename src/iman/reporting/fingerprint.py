"""The dataset fingerprint in the report: one table and one figure, from fingerprint.json.

The table (``fingerprint_table``) lists every summarised quantity per modality (min, median,
max); the figure has three histograms over the cases: lesion equivalent diameter at the
working size per modality, the same in mm, and CEUS frame counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd
from matplotlib.figure import Figure

from iman.names import MODALITIES

__all__ = ["fingerprint_figure", "fingerprint_table", "write_fingerprint_report"]

_QUANTITIES: Final = (
    ("h", "original height (px)"), ("w", "original width (px)"), ("aspect", "aspect W/H"),
    ("spacing_mm", "spacing (mm)"), ("lesion_area_px", "lesion area (px at S)"),
    ("lesion_diameter_px", "lesion eq. diameter (px at S)"),
    ("lesion_diameter_orig_px", "lesion eq. diameter (original px)"),
    ("lesion_diameter_mm", "lesion eq. diameter (mm)"), ("coverage", "lesion coverage of S×S"),
)
_COLOURS: Final = {"us": "#4c72b0", "ceus": "#dd8452"}


def fingerprint_table(fp: Mapping[str, Any],
                      split_counts: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per quantity and modality: min, median, max (intensities: percentiles, mean,
    std); then cases and patients per split subset (``split_counts``:
    :func:`iman.data.fingerprint.fingerprint_splits`)."""
    rows = [{"quantity": "cases / patients", "modality": "", "min": fp["n_cases"],
             "median": None, "max": fp["n_patients"]}]
    for m in MODALITIES:
        mod = fp["modalities"][m]
        rows += [{"quantity": label, "modality": m.upper(), **mod[key]}
                 for key, label in _QUANTITIES]
        for part in ("all", "lesion"):
            it = mod["intensity"][part]
            rows.append({"quantity": f"grey level at S, {part} pixels (p0.5 / p50 / p99.5)",
                         "modality": m.upper(), "min": it["p0.5"], "median": it["p50"],
                         "max": it["p99.5"], "mean": it["mean"], "std": it["std"]})
    rows.append({"quantity": "CEUS frames", "modality": "CEUS", **fp["ceus_frames"]})
    rows.append({"quantity": "US lesion inside CEUS lesion (fraction)", "modality": "",
                 **fp["us_inside_ceus"]})
    for i, fold in enumerate((split_counts or {}).get("folds", [])):
        for subset, c in fold.items():
            rows.append({"quantity": f"fold {i} {subset}: cases (min) / patients (max)",
                         "modality": "", "min": c["cases"], "median": None,
                         "max": c["patients"]})
    return pd.DataFrame(rows, columns=["quantity", "modality", "min", "median", "max",
                                       "mean", "std"])


def _hist(ax: Any, fp: Mapping[str, Any], key: str, label: str) -> None:
    for m in MODALITIES:
        vals = [c[f"{m}_{key}"] for c in fp["cases"] if c[f"{m}_{key}"] is not None]
        ax.hist(vals, bins=20, alpha=0.6, color=_COLOURS[m], label=m.upper())
    ax.set_xlabel(label)
    ax.set_ylabel("cases")
    ax.legend()


def fingerprint_figure(fp: Mapping[str, Any], png: Path) -> Path:
    """Histograms of lesion diameters (px at S, mm) per modality and of CEUS frame counts."""
    fig = Figure(figsize=(9, 2.8), dpi=120, layout="constrained")
    ax = fig.subplots(1, 3)
    _hist(ax[0], fp, "lesion_diameter_px", f"lesion eq. diameter (px at S = "
          f"{fp['working_size']})")
    _hist(ax[1], fp, "lesion_diameter_mm", "lesion eq. diameter (mm)")
    ax[2].hist([c["n_frames"] for c in fp["cases"]], bins=20, color=_COLOURS["ceus"])
    ax[2].set_xlabel("CEUS frames")
    ax[2].set_ylabel("cases")
    fig.suptitle(f"{fp['n_cases']} cases, {fp['n_patients']} patients")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, metadata={"Software": None})
    return png


def write_fingerprint_report(fingerprint_file: Path, counts_file: Path, check_file: Path,
                             table_html: Path, png: Path) -> None:
    """The report's fingerprint table with the protocol check's findings below (HTML) and
    figure (PNG) (rule ``fingerprint_report``); ``counts_file``: ``split_counts.json``,
    ``check_file``: ``protocol_check.json``."""
    fp = json.loads(Path(fingerprint_file).read_text())
    table = fingerprint_table(fp, json.loads(Path(counts_file).read_text()))
    findings = pd.DataFrame(json.loads(Path(check_file).read_text())["findings"],
                            columns=["level", "key", "message", "cases"])
    findings["cases"] = findings["cases"].map(", ".join)
    table_html.parent.mkdir(parents=True, exist_ok=True)
    table_html.write_text(
        table.to_html(index=False, na_rep="", float_format="{:.3g}".format)
        + f"\n<h3>Protocol check: {len(findings)} finding(s)</h3>\n"
        + findings.to_html(index=False))
    fingerprint_figure(fp, png)
