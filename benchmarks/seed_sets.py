"""Table II's verdicts on disjoint seed sets, from the runs' own per-case files.

For each results folder (one seed set) and each Table II comparison whose experiments exist
(on the seeds that have both; ``seeds`` says how many of the set):
the pooled difference (per-case metrics averaged over the set's seeds, then paired, as
``stats.csv``), its sign-flip p and interval, each seed's own mean difference, and the
calibration (the UNet baseline's test soft DSC, seed mean and worst seed). A folder may hold
part of the table (e.g. a run targeted at some rows): an experiment without its
``per_case.csv`` is read from its finished nodes' ``metrics.csv`` (a branch whose nodes all
exist), missing rows and branches are skipped, and
``p_bonf`` = min(1, p × the family size of Table II, 10) is an upper bound on its Holm p.

    .venv/bin/python benchmarks/seed_sets.py --results /work/runs/setA/results 0,1,2 \
        --results /work/runs/setB/results 3,4,5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from iman.config import DEMO_CONFIG, resolve_config
from iman.evaluation.stats import case_means, compare
from iman.experiments import (
    Spec,
    branch_modalities,
    experiment_name,
    experiment_nodes,
    parse_name,
    row_label,
    table_comparisons,
    table_specs,
)

FAMILY = 10
"""Table II comparisons per (modality, metric) in the default run (docs/statistics.md)."""


def _node_branch(results: Path, spec: Spec, modality: str) -> pd.DataFrame | None:
    """One branch of an experiment from its nodes' metrics (the summarize rule's choice: the
    loop with the best mean validation DSC), or None while a node is missing."""
    frames = []
    for node in experiment_nodes(spec):
        if node.modality != modality:
            continue
        path = results / "runs" / node.run / modality / f"loop{node.loop}" / "metrics.csv"
        if not path.exists():
            return None
        frames.append(pd.read_csv(path, dtype={"case_id": str}).assign(modality=modality))
    if not frames:
        return None
    return max(frames, key=lambda f: f.loc[f["split"] == "val", "std_dsc"].mean())


def _per_case(results: Path, experiment: str) -> pd.DataFrame | None:
    """An experiment's per-case metrics: its ``per_case.csv``, else what its finished nodes
    give (the branches whose nodes all exist)."""
    path = results / "experiments" / experiment / "per_case.csv"
    if path.exists():
        return pd.read_csv(path, dtype={"case_id": str})
    spec = parse_name(experiment)
    branches = [b for m in branch_modalities(spec)
                if (b := _node_branch(results, spec, m)) is not None]
    return pd.concat(branches) if branches else None


def _branch(frame: pd.DataFrame, modality: str) -> pd.DataFrame:
    return frame[frame["modality"] == modality]


def comparisons(results: Path, seeds: list[int], metric: str = "std_dsc") -> pd.DataFrame:
    """One row per (comparison, modality) with every experiment present."""
    cfg = resolve_config([DEMO_CONFIG], {"seeds": seeds})
    out = []
    for row, ref, row_exps, ref_exps in table_comparisons(cfg, "table2"):
        frames = [(parse_name(a).seed, _per_case(results, a), _per_case(results, b))
                  for a, b in zip(row_exps, ref_exps)]
        for mod in ("us", "ceus"):
            found = [(s, _branch(a, mod), _branch(b, mod)) for s, a, b in frames
                     if a is not None and b is not None]
            found = [(s, a, b) for s, a, b in found if not (a.empty or b.empty)]
            if not found:
                continue
            pairs = [(a, b) for _, a, b in found]
            pooled = compare(case_means([a for a, _ in pairs], metric),
                             case_means([b for _, b in pairs], metric))
            per_seed = [compare(case_means([a], metric), case_means([b], metric)).mean_diff
                        for a, b in pairs]
            agree = sum((d > 0) == (pooled.mean_diff > 0) for d in per_seed)
            out.append({"row": row, "reference": ref, "modality": mod,
                        "mean_diff": pooled.mean_diff, "ci_low": pooled.ci_low,
                        "ci_high": pooled.ci_high, "p": pooled.p,
                        "p_bonf": min(1.0, pooled.p * FAMILY), "n_cases": pooled.n_cases,
                        "per_seed": " / ".join(f"{s}: {d:+.3f}"
                                               for (s, _, _), d in zip(found, per_seed)),
                        "seeds": f"{len(per_seed)}/{len(row_exps)}",
                        "seeds_agree": f"{agree}/{len(per_seed)}"})
    return pd.DataFrame(out)


def calibration(results: Path, seeds: list[int]) -> pd.DataFrame:
    """Test soft DSC of every Table I baseline present: seed mean and worst seed."""
    cfg = resolve_config([DEMO_CONFIG], {"seeds": seeds})
    out = []
    for labels, specs in table_specs(cfg, "table1"):
        found = {s.seed: _per_case(results, experiment_name(s)) for s in specs}
        frames = {k: v for k, v in found.items() if v is not None}
        for mod in ("us", "ceus"):
            vals = {}
            for seed, f in frames.items():
                test = _branch(f, mod)
                test = test[test["split"] == "test"]
                if len(test):
                    vals[seed] = (test["paper_soft_dsc"].mean(), test["std_dsc"].mean())
            if vals:
                soft = [v[0] for v in vals.values()]
                std = [v[1] for v in vals.values()]
                out.append({"row": row_label(labels), "modality": mod, "seeds": len(vals),
                            "soft_dsc_mean": sum(soft) / len(soft),
                            "std_dsc_mean": sum(std) / len(std), "std_dsc_worst": min(std),
                            "per_seed_std_dsc": " / ".join(f"{s}:{v[1]:.3f}"
                                                           for s, v in sorted(vals.items()))})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    """Print both tables for every (results folder, seeds) pair."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", nargs=2, action="append", metavar=("DIR", "SEEDS"),
                    required=True, help="a results folder and its seeds, comma-separated")
    args = ap.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    for folder, seeds_text in args.results:
        seeds = [int(s) for s in seeds_text.split(",")]
        print(f"\n== {folder} (seeds {seeds})")
        print(comparisons(Path(folder), seeds).round(4).to_string(index=False))
        print(calibration(Path(folder), seeds).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
