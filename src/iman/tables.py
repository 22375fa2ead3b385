"""Experiment summaries and Tables I–V (csv, md, tex) made only from evaluation files.

Per-case metric rows → :func:`summarize_experiment` (choose each branch's loop by the mean
validation DSC, report that loop's *test* metrics) → :func:`build_table` (rows of a paper
table, mean ± std over seeds, the printed paper value beside each reproduced one, best
value in bold). Restyling a table never retrains anything.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.experiments import Node

__all__ = ["METHOD_LABELS", "build_table", "paper_values", "summarize_experiment",
           "write_table"]

METHOD_LABELS = {
    "unet": "UNet", "fpn": "FPN", "unetpp": "UNet++", "deeplabv3": "DeepLabV3",
    "transunet": "TransUNet", "swinunet": "SwinUNet", "aaunet": "AAU-net", "nunet": "NU-net",
    "dpran": "DpRAN", "ceusegnet": "CEUSegNet", "usseg": "US-SEG (seed)",
    "ggnet": "GG-Net (seed)", "dcnet": "DC-Net (seed)", "iman": "IMAN",
}
# reported columns: name in the table -> (metric column, higher is better)
REPORTED = {
    "dsc": ("std_dsc", True), "hd": ("std_hd_mm", False), "hd95": ("std_hd95_mm", False),
    "soft_dsc": ("paper_soft_dsc", True), "row_hd": ("paper_row_hd", False),
}
SELECT_BY = "std_dsc"


def summarize_experiment(name: str, nodes: list[Node], metric_files: list[Path],
                         out_json: Path) -> dict[str, Any]:
    """Pick each branch's loop by validation DSC; write summary.json and per_case.csv."""
    branches: dict[str, Any] = {}
    per_case = []
    for modality in dict.fromkeys(n.modality for n in nodes):
        loops = {}
        for node, path in zip(nodes, metric_files):
            if node.modality != modality:
                continue
            df = pd.read_csv(path, dtype={"case_id": str})
            val, test = df[df.split == "val"], df[df.split == "test"]
            loops[node.loop] = (float(val[SELECT_BY].mean()), test, node)
        chosen = max(loops, key=lambda lp: (loops[lp][0], -lp))
        _, test, node = loops[chosen]
        metrics = [c for c in test.columns if c not in ("case_id", "split")]
        branches[modality] = {
            "loop": chosen, "run": node.run, "n_test": len(test),
            "val_dsc_by_loop": {str(lp): v[0] for lp, v in sorted(loops.items())},
            "test_dsc_by_loop": {str(lp): float(v[1][SELECT_BY].mean())
                                 for lp, v in sorted(loops.items())},
            "test": {c: {"mean": float(test[c].mean()), "std": float(test[c].std(ddof=0))}
                     for c in metrics},
        }
        per_case.append(test.assign(modality=modality, loop=chosen))
    summary = {"experiment": name, "selection": f"loop with best mean validation {SELECT_BY}",
               "branches": branches}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(summary, indent=1))
    pd.concat(per_case).to_csv(out_json.with_name("per_case.csv"), index=False)
    return summary


def paper_values(table: str) -> pd.DataFrame:
    """The printed values of a paper table (shipped with the package)."""
    ref = resources.files("iman") / "resources" / "paper_tables" / f"{table}.csv"
    with ref.open() as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _paper_row(table: str, labels: dict[str, Any]) -> dict[str, float]:
    paper = paper_values(table)
    key = dict(labels)
    if "method" in key:
        key["method"] = METHOD_LABELS.get(key["method"], key["method"])
    if "backbone" in key:
        key["backbone"] = METHOD_LABELS.get(key["backbone"], key["backbone"])
    mask = np.ones(len(paper), bool)
    for k, v in key.items():
        if k not in paper.columns:
            return {}
        mask &= paper[k].astype(str) == str(v)
    if not mask.any():
        return {}
    row = paper[mask].iloc[0]
    return {f"paper_{c}": float(row[c]) for c in paper.columns
            if c.endswith(("_dsc", "_hd")) and row[c] != ""}


def build_table(table: str, rows: list[tuple[dict[str, Any], list[dict[str, Any]]]]
                ) -> pd.DataFrame:
    """One CSV row per table row: labels, reproduced mean/std per seed set, paper values."""
    records = []
    modalities = ("ceus",) if table == "table3" else ("us", "ceus")  # Table III: CEUS only
    for labels, summaries in rows:
        rec: dict[str, Any] = dict(labels)
        if "method" in labels:
            rec["method"] = METHOD_LABELS.get(labels["method"], labels["method"])
        for modality in modalities:
            for short, (col, _) in REPORTED.items():
                vals = [s["branches"][modality]["test"][col]["mean"] for s in summaries
                        if modality in s["branches"]]
                if vals:
                    rec[f"{modality}_{short}"] = float(np.mean(vals))
                    rec[f"{modality}_{short}_std"] = (float(np.std(vals)) if len(vals) > 1
                                                      else np.nan)
            loops = [s["branches"][modality]["loop"] for s in summaries
                     if modality in s["branches"]]
            if loops:
                rec[f"{modality}_loop"] = ",".join(map(str, loops))
        rec.update(_paper_row(table, labels))
        rec["n_seeds"] = len(summaries)
        records.append(rec)
    return pd.DataFrame(records)


def _fmt(mean: Any, std: Any, bold: bool) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    s = f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None and not math.isnan(std) else "")
    return f"**{s}**" if bold else s


def _best(df: pd.DataFrame, col: str, higher: bool) -> float | None:
    if col not in df or df[col].isna().all():
        return None
    return float(df[col].max() if higher else df[col].min())


def _display(df: pd.DataFrame, family: tuple[str, str]) -> pd.DataFrame:
    """Readable cells for one metric family (DSC-like, HD-like)."""
    label_cols = [c for c in ("backbone", "method", "mmg", "itp", "modal_fusion", "frames",
                              "kernel", "filter") if c in df]
    out = df[label_cols].astype(str).copy()
    for modality in ("us", "ceus"):
        if f"{modality}_dsc" not in df:
            continue
        for short in family:
            col, higher = f"{modality}_{short}", REPORTED[short][1]
            best = _best(df, col, higher)
            paper_col = f"paper_{modality}_{short}" if short in ("dsc", "hd") else None
            cells = []
            for _, r in df.iterrows():
                mean = r.get(col, np.nan)
                cell = _fmt(mean, r.get(f"{col}_std", np.nan),
                            best is not None and not pd.isna(mean) and mean == best)
                if paper_col and not pd.isna(r.get(paper_col, np.nan)) and family[0] == "dsc":
                    cell += f" (paper {r[paper_col]:.4f})"
                cells.append(cell)
            arrow = "↑" if higher else "↓"
            out[f"{modality.upper()} {_HEAD[short]} {arrow}"] = cells
    return out


_HEAD = {"dsc": "DSC", "hd": "HD (mm)", "hd95": "HD95 (mm)", "soft_dsc": "soft DSC",
         "row_hd": "row-HD"}


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _latex(df: pd.DataFrame) -> str:
    def tex(s: str) -> str:
        s = s.replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")
        s = s.replace("—", "--").replace("_", r"\_").replace("#", r"\#")
        if s.startswith("**"):
            inner, _, rest = s[2:].partition("**")
            s = rf"\textbf{{{inner}}}{rest}"
        return s

    lines = [r"\begin{tabular}{" + "l" * len(df.columns) + "}", r"\hline",
             " & ".join(tex(c) for c in df.columns) + r" \\", r"\hline"]
    lines += [" & ".join(tex(str(v)) for v in r) + r" \\" for r in df.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


TITLES = {
    "table1": "Table I. Comparison with other segmentation methods",
    "table2": "Table II. Ablation of the modules in IMAN",
    "table3": "Table III. CEUS segmentation with different numbers of frames",
    "table4": "Table IV. MMG parameter settings (kernel size × filter)",
    "table5": "Table V. IMAN on other segmentation frameworks",
}


def _html(title: str, blocks: list[tuple[str, pd.DataFrame]]) -> str:
    """A self-contained HTML page (readable inside the Snakemake report)."""
    import html
    import re

    def cell(v: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(str(v)))

    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
             "th{background:#eee}</style></head><body>", f"<h2>{html.escape(title)}</h2>"]
    for caption, df in blocks:
        parts.append(f"<p>{html.escape(caption)}</p><table><tr>"
                     + "".join(f"<th>{html.escape(c)}</th>" for c in df.columns) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>"
                  for r in df.itertuples(index=False)]
        parts.append("</table>")
    return "\n".join([*parts, "</body></html>"])


def write_table(table: str, df: pd.DataFrame, out_stem: Path) -> list[Path]:
    """Write ``{stem}.csv``, ``.md`` and ``.html`` (both metric families) and ``.tex``."""
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md, tex, page = (out_stem.with_suffix(s) for s in (".csv", ".md", ".tex", ".html"))
    df.to_csv(csv, index=False)
    standard = _display(df, ("dsc", "hd"))
    extra = _display(df, ("hd95",))
    compat = _display(df, ("soft_dsc", "row_hd"))
    md.write_text("\n\n".join([
        f"### {TITLES[table]}",
        "Standard metrics (DSC on the 0.5-thresholded mask; boundary Hausdorff in mm at the "
        "original size), test split, reproduced (printed paper value):",
        _markdown(standard),
        "HD95 (mm):", _markdown(extra),
        "Paper-compatible metrics (soft Dice on probabilities; the authors' row-vector "
        "Hausdorff at the working size, not in mm):",
        _markdown(compat), ""]))
    tex.write_text(f"% {TITLES[table]} -- standard metrics\n{_latex(standard)}\n\n"
                   f"% paper-compatible metrics\n{_latex(compat)}\n")
    page.write_text(_html(TITLES[table], [
        ("Standard metrics, test split: reproduced (printed paper value)", standard),
        ("HD95 (mm)", extra),
        ("Paper-compatible metrics (soft Dice; row-vector Hausdorff, not mm)", compat)]))
    return [csv, md, tex, page]
