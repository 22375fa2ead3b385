"""What a run's test set can detect: the smallest attainable p and the minimal detectable
difference at 80 % power, simulated from the run's own per-case spread (docs/statistics.md).

The simulation takes the observed per-case paired differences of one comparison, centres
them (the null), adds a true shift δ, draws ``n`` cases with replacement, and runs the
workflow's own test (:func:`iman.evaluation.stats.sign_flip`). Power is the share of draws whose p,
multiplied by the Holm family size ``m`` (the worst case: the family's smallest p is
multiplied by m), stays below α. The minimal detectable difference is the smallest δ on a
grid with power ≥ 0.8.

    python -m iman.evaluation.power --results results --table table2 --metric std_dsc
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from iman.evaluation.stats import EXACT_MAX_N, N_FLIPS, sign_flip
from iman.names import MODALITIES

__all__ = ["family_sizes", "minimal_detectable", "power_at", "smallest_p"]


def family_sizes(stats: pd.DataFrame, table: str, metric: str) -> dict[str, int]:
    """Holm family size per modality of one table and metric: the comparisons that
    ``stats.csv`` (or the table's ``<table>_stats.csv``) really holds for it (Table I tests
    every method on the modalities it handles: 11 US and 8 CEUS comparisons in the paper's
    set, not one count for both)."""
    sub = stats[(stats["table"] == table) & (stats["metric"] == metric)]
    return {str(m): int(n) for m, n in sub.groupby("modality").size().items()}


def smallest_p(n: int, n_flips: int = N_FLIPS) -> float:
    """The smallest p the two-sided sign-flip test can return for ``n`` cases: the two
    all-same-sign patterns of 2ⁿ (exact), or 1/(B + 1) for the Monte-Carlo test."""
    return 2.0 / 2**n if n <= EXACT_MAX_N else 1.0 / (n_flips + 1)


def power_at(diffs: np.ndarray, delta: float, n: int, m: int = 1, alpha: float = 0.05,
             sims: int = 200, n_flips: int = 2000, seed: int = 0) -> float:
    """Share of ``sims`` simulated test sets of ``n`` cases (centred ``diffs`` + ``delta``)
    whose Holm-worst-case p (p · m) is below ``alpha``."""
    rng = np.random.default_rng(seed)
    centred = np.asarray(diffs, float) - float(np.mean(diffs))
    hits = 0
    for i in range(sims):
        sample = rng.choice(centred, size=n, replace=True) + delta
        p, _, _ = sign_flip(sample, n_flips=n_flips, seed=i)
        hits += p * m < alpha
    return hits / sims


def minimal_detectable(diffs: np.ndarray, n: int, m: int = 1, target: float = 0.8,
                       alpha: float = 0.05, sims: int = 200, step: float = 0.005,
                       seed: int = 0) -> float:
    """Smallest shift δ (a multiple of ``step``) detected with power ≥ ``target``."""
    sd = float(np.std(diffs, ddof=1))
    delta = step
    while delta < 10 * sd + step:
        if power_at(diffs, delta, n, m, alpha, sims, seed=seed) >= target:
            return delta
        delta += step
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: smallest p and minimal detectable difference per comparison of a run's table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--table", default="table2")
    ap.add_argument("--metric", default="std_dsc")
    ap.add_argument("--sims", type=int, default=200)
    args = ap.parse_args(argv)
    from iman.config import resolve_config
    from iman.evaluation.stats import case_means
    from iman.experiments import table_comparisons
    from iman.paths import Paths

    cfg = resolve_config([args.results / "config.resolved.yaml"], {})
    comps = table_comparisons(cfg, args.table)
    P = Paths(str(args.results))
    # Holm family: the table's comparisons of one modality and metric, as tested
    sizes = family_sizes(pd.read_csv(P.table_stats(args.table)), args.table, args.metric)
    rows = []
    for modality in MODALITIES:
        m = sizes.get(modality, 0)
        for row, ref, a, b in comps:
            frames = [pd.read_csv(P.per_case(e), dtype={"case_id": str}) for e in (*a, *b)]
            frames = [f[f["modality"] == modality] for f in frames]
            x, y = case_means(frames[:len(a)], args.metric), case_means(frames[len(a):],
                                                                          args.metric)
            common = x.index.intersection(y.index)
            if len(common) == 0:
                continue
            d = (x[common] - y[common]).to_numpy(float)
            rows.append({"modality": modality, "row": row, "reference": ref, "m": m,
                         "n": len(d),
                         "sd_diff": float(np.std(d, ddof=1)),
                         "smallest_p": smallest_p(len(d)),
                         "smallest_p_holm": min(1.0, m * smallest_p(len(d))),
                         "mdd_80": minimal_detectable(d, len(d), m, sims=args.sims)})
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{args.table}, {args.metric}: Holm family size m = "
              + ", ".join(f"{k.upper()} {v}" for k, v in sizes.items()))
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
