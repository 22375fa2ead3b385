"""Paired comparisons of two table rows on the same test cases (docs/statistics.md).

A case's value is its mean over seeds; the two rows are paired by case id. Per comparison:
the mean paired difference (row − reference), a seeded percentile bootstrap 95 % CI of that
mean over cases, the two-sided Wilcoxon signed-rank p (scipy, zero differences dropped,
exact distribution where scipy uses it), and the matched-pairs rank-biserial correlation as
the effect size. Holm's step-down correction runs over the comparisons of one table and one
modality (:func:`holm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["Comparison", "bootstrap_ci", "case_means", "compare", "holm", "rank_biserial"]

N_BOOTSTRAP = 4000
"""Bootstrap resamples of the mean paired difference."""


@dataclass(frozen=True)
class Comparison:
    """One paired comparison (row − reference) on one metric."""

    n_cases: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p: float
    effect_size: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict (a stats.csv row's numbers)."""
        return asdict(self)


def case_means(frames: Sequence[pd.DataFrame], metric: str) -> pd.Series:
    """Per-case mean of ``metric`` over runs (seeds); index = case id, test rows only."""
    rows = pd.concat([f.loc[f["split"] == "test", ["case_id", metric]] if "split" in f
                      else f[["case_id", metric]] for f in frames])
    return rows.groupby(rows["case_id"].astype(str))[metric].mean().dropna()


def bootstrap_ci(diff: np.ndarray, n_resamples: int = N_BOOTSTRAP, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diff`` (resampling cases, fixed seed)."""
    diff = np.asarray(diff, dtype=float)
    if diff.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (n_resamples, diff.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def rank_biserial(diff: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (W+ − W−) / (W+ + W−), zeros dropped."""
    d = np.asarray(diff, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def compare(row: pd.Series, reference: pd.Series, seed: int = 0) -> Comparison:
    """Paired comparison of two per-case series (index = case id) on their common cases."""
    common = row.index.intersection(reference.index)
    diff = (row.loc[common] - reference.loc[common]).to_numpy(dtype=float)
    if diff.size == 0:
        nan = float("nan")
        return Comparison(0, nan, nan, nan, nan, nan)
    if np.all(diff == 0):
        p = 1.0
    else:
        p = float(sps.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)
    low, high = bootstrap_ci(diff, seed=seed)
    return Comparison(int(diff.size), float(diff.mean()), low, high, p, rank_biserial(diff))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out
