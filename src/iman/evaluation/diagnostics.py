"""Where do margins help or hurt? Per-case measurements of a finished run's looped Table II
rows (IMAN and its oracle / mismatched controls) against the shared baseline.

For every test case and branch of an experiment, at the loop the experiment reports:

* ``delta_dsc``: the branch's DSC minus the baseline's (loop 0, same case);
* ``source_dsc``: the DSC of the prediction the margins were made from, against *its own*
  modality's ground truth (NaN for oracle margins, made from ground truth);
* ``lesion_gate``: the mean margin value over the receiving branch's ground-truth lesion
  (with ``gate_skips`` the skip features are multiplied by it: 1 lets the lesion through,
  0 blanks it);
* ``lesion_blocked``: the fraction of the lesion where the margin is below 0.1;
* ``boundary_gate``: the mean margin value on the lesion's one-pixel boundary, the place the
  band is meant to highlight.

``python -m iman.evaluation.diagnostics --results results --out docs/figures/margins_diagnostics``
writes ``<out>.csv`` (one row per case, branch and experiment) and ``<out>.png`` and prints the
per-experiment means and Spearman correlations (docs/iman-on-the-phantom.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from iman.experiments import (
    Spec,
    experiment_name,
    margin_source,
    node_for,
    parse_name,
)
from iman.paths import Paths, case_file

__all__ = ["case_gates", "diagnose", "main"]


def case_gates(margin: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean margin over the lesion, fraction of the lesion below 0.1, mean on its boundary."""
    lesion = mask.astype(bool)
    if not lesion.any():
        nan = float("nan")
        return {"lesion_gate": nan, "lesion_blocked": nan, "boundary_gate": nan}
    m = margin.astype(np.float32)
    inner = cv2.erode(lesion.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    boundary = lesion & ~inner
    return {"lesion_gate": float(m[lesion].mean()),
            "lesion_blocked": float((m[lesion] < 0.1).mean()),
            "boundary_gate": float(m[boundary].mean())}


def _dsc(prob: np.ndarray, mask: np.ndarray) -> float:
    pred, gt = prob >= 0.5, mask.astype(bool)
    denom = pred.sum() + gt.sum()
    return 1.0 if denom == 0 else float(2 * (pred & gt).sum() / denom)


def _per_case(P: Paths, experiment: str) -> pd.DataFrame:
    df = pd.read_csv(P.per_case(experiment), dtype={"case_id": str})
    return df[df["split"] == "test"]


def diagnose(results: Path, experiments: Sequence[tuple[str, str]], baseline: str
             ) -> pd.DataFrame:
    """One row per test case, branch and (label, experiment name) in ``experiments``."""
    P = Paths(str(results))
    base = _per_case(P, baseline).set_index(["modality", "case_id"])["std_dsc"]
    rows = []
    for label, exp in experiments:
        spec: Spec = parse_name(exp)
        summary = json.loads(Path(P.summary(exp)).read_text())
        per_case = _per_case(P, exp).set_index(["modality", "case_id"])["std_dsc"]
        for modality, branch in summary["branches"].items():
            node = node_for(spec, modality, int(branch["loop"]))
            source = margin_source(node)
            if source is None:
                continue
            with np.load(P.margins_of(source)) as npz:
                margins = {k: npz[k] for k in npz.files}
            preds = None
            if source.node is not None:
                with np.load(P.node(source.node).pred) as npz:
                    preds = {k: npz[k] for k in npz.files}
            donors = {}
            if source.kind == "mismatch":
                k, f = source.setting
                donors = json.loads(Path(P.mismatch_donors(source.node, k, f)).read_text())
            for case in per_case.loc[modality].index:
                with np.load(case_file(P.cache_dir, case)) as c:
                    mask = c[f"{modality}_mask"]
                    src_mask = c[f"{source.modality}_mask"]
                src_case = donors.get(case, case)
                if src_case != case:
                    with np.load(case_file(P.cache_dir, src_case)) as c:
                        src_mask = c[f"{source.modality}_mask"]
                rows.append({
                    "row": label, "experiment": exp, "modality": modality,
                    "loop": int(branch["loop"]), "case_id": case,
                    "delta_dsc": float(per_case[(modality, case)] - base[(modality, case)]),
                    "baseline_dsc": float(base[(modality, case)]),
                    "source_dsc": (float("nan") if preds is None else
                                   _dsc(preds[src_case].astype(np.float32), src_mask)),
                    **case_gates(margins[case], mask)})
    return pd.DataFrame(rows)


def _spearman(x: pd.Series, y: pd.Series) -> float:
    ok = x.notna() & y.notna()
    if ok.sum() < 3:
        return float("nan")
    return float(x[ok].rank().corr(y[ok].rank()))


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per row and branch: means and the Spearman correlation of Δ DSC with each measure."""
    out = []
    for (row, modality), g in df.groupby(["row", "modality"], sort=False):
        out.append({"row": row, "modality": modality, "n": len(g),
                    "delta_dsc": g["delta_dsc"].mean(),
                    "worse_cases": int((g["delta_dsc"] < -0.05).sum()),
                    "better_cases": int((g["delta_dsc"] > 0.05).sum()),
                    "source_dsc": g["source_dsc"].mean(),
                    "lesion_gate": g["lesion_gate"].mean(),
                    "lesion_blocked": g["lesion_blocked"].mean(),
                    "rho_delta_source": _spearman(g["delta_dsc"], g["source_dsc"]),
                    "rho_delta_lesion_gate": _spearman(g["delta_dsc"], g["lesion_gate"])})
    return pd.DataFrame(out)


def plot(df: pd.DataFrame, out_png: Path) -> None:
    """Δ DSC against the mean margin over the lesion, one panel per branch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = list(dict.fromkeys(df["modality"]))
    fig, axes = plt.subplots(1, len(mods), figsize=(5.2 * len(mods), 4.2), squeeze=False,
                             layout="constrained")
    for ax, modality in zip(axes[0], mods):
        for row, g in df[df["modality"] == modality].groupby("row", sort=False):
            ax.scatter(g["lesion_gate"], g["delta_dsc"], s=18, alpha=0.75, label=row)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("mean margin over the lesion (gate on its skips)")
        ax.set_ylabel("Δ DSC vs baseline (test case)")
        ax.set_title(f"{modality.upper()} branch")
        ax.legend(fontsize=8)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: diagnose the Table II looped rows of a finished run."""
    from iman.config import resolve_config
    from iman.experiments import table_specs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--configfile", type=Path, nargs="*", default=None,
                    help="the run's config file(s); default: <results>/config.resolved.yaml")
    ap.add_argument("--out", type=Path, default=Path("results/diagnostics/margins"))
    args = ap.parse_args(argv)
    cfg = resolve_config(args.configfile or [args.results / "config.resolved.yaml"], {})
    rows = table_specs(cfg, "table2")
    baseline = experiment_name(rows[0][1][0])
    labels = {1: "IMAN", "oracle": "oracle margins", "mismatched": "mismatched pairs"}
    wanted = [(labels[lab["modal_fusion"]], experiment_name(specs[0])) for lab, specs in rows
              if lab.get("modal_fusion") in labels]
    df = diagnose(args.results, wanted, baseline)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out.with_suffix(".csv"), index=False)  # full precision
    plot(df, args.out.with_suffix(".png"))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summarise(df).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
