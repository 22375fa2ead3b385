"""Paired comparisons of two table rows on the same test cases (docs/statistics.md).

A case's value is its mean over runs (seeds); the two rows are paired by case id. Per
comparison, one procedure gives both the p-value and the interval, so the two cannot
disagree:

* **test** (:data:`TEST`): the two-sided paired sign-flip permutation test of the mean
  difference (row − reference). Under the null hypothesis the two rows are exchangeable
  within each case, so every sign pattern of the per-case differences is equally likely;
  p = the share of sign patterns whose |mean| reaches the observed |mean|. All 2ⁿ patterns
  when n ≤ :data:`EXACT_MAX_N` (exact), else the identity plus :data:`N_FLIPS` seeded random
  patterns, p = (count + 1) / (B + 1).
* **interval** (:data:`CI_METHOD`): the 95 % interval of the mean difference obtained by
  inverting that test: every shift δ at which the test on (difference − δ) gives p ≥ 0.05,
  computed in closed form from the same sign patterns. So p < 0.05 exactly when 0 lies outside
  the interval (up to rounding). With n ≤ 5 no sign-flip test can reach p < 0.05 and the
  interval is unbounded (±inf).
* **effect size**: the matched-pairs rank-biserial correlation.

Holm's step-down correction (:func:`holm`) runs over the comparisons of one table, one
modality and one metric. No scipy hypothesis test is called, so p does not depend on the
scipy version.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["CI_METHOD", "EXACT_MAX_N", "N_FLIPS", "TEST", "Comparison", "case_means",
           "compare", "count_empty", "holm", "rank_biserial", "sign_flip", "table_reference_flags",
           "tested_rows"]

TEST = "sign-flip permutation (mean)"
"""Name of the test in stats.csv's ``test`` column."""
CI_METHOD = "inverted sign-flip test"
"""Name of the interval in stats.csv's ``ci_method`` column."""
N_FLIPS = 20_000
"""Random sign patterns of the Monte-Carlo test (n > :data:`EXACT_MAX_N`)."""
EXACT_MAX_N = 16
"""Largest number of cases whose 2ⁿ sign patterns are all enumerated (65,536)."""
_CHUNK = 8192


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


def tested_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The test-split rows of a per-case frame (all of it when it has no ``split``
    column)."""
    return frame[frame["split"] == "test"] if "split" in frame else frame


def case_means(frames: Sequence[pd.DataFrame], metric: str) -> pd.Series:
    """Per-case mean of ``metric`` over runs (seeds); index = case id, test rows only."""
    rows = pd.concat([tested_rows(f)[["case_id", metric]] for f in frames])
    return rows.groupby(rows["case_id"].astype(str))[metric].mean().dropna()


def count_empty(frames: Sequence[pd.DataFrame]) -> float:
    """Empty predictions among the test rows of a row's runs (cases × runs; the HD penalty of
    :data:`iman.evaluation.metrics.EMPTY_PRED`); NaN for per-case files without the flag."""
    from iman.evaluation.metrics import EMPTY_PRED

    rows = [tested_rows(f) for f in frames]
    if not rows or any(EMPTY_PRED not in f for f in rows):
        return float("nan")
    return float(sum(int(f[EMPTY_PRED].sum()) for f in rows))


def _sign_chunks(n: int, n_flips: int, seed: int) -> Iterator[np.ndarray]:
    """Sign patterns (±1 rows): all 2ⁿ when n ≤ EXACT_MAX_N, else the identity then
    ``n_flips`` seeded random rows; yielded in chunks so memory stays bounded."""
    if n <= EXACT_MAX_N:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        yield (((codes >> np.arange(n)) & 1) * -2 + 1).astype(np.int8)
        return
    yield np.ones((1, n), dtype=np.int8)
    rng = np.random.default_rng(seed)
    for start in range(0, n_flips, _CHUNK):
        rows = min(_CHUNK, n_flips - start)
        yield (rng.integers(0, 2, (rows, n), dtype=np.int8) * 2 - 1).astype(np.int8)


def sign_flip(diff: np.ndarray, level: float = 0.95, n_flips: int = N_FLIPS, seed: int = 0
              ) -> tuple[float, float, float]:
    """Two-sided sign-flip p of the mean of ``diff`` and the interval that inverts it.

    For a sign pattern s with a = mean(s·d) and b = mean(s), the pattern counts at shift δ
    when |a − δb| ≥ |m − δ| (m = mean(d)): a closed interval of δ around m, namely
    [m − |e|/(1 − β), m + |e|/(1 + β)] with e = a − m·b and β = b·sign(e) (unbounded for
    s = ±1). δ is accepted when at least ``(1 − level)`` of the patterns count, so the bounds
    are order statistics of those interval ends. Ties use one rule for both: a pattern counts
    when |a| ≥ |m| − tol, and its interval is widened by the same ``tol`` (|e| + tol), so
    ``p < 1 − level`` exactly when 0 lies outside [low, high], also for tied or zero-heavy
    differences. Returns (p, low, high); NaN for no data; equal differences d give the point
    interval (d, d) once n ≥ 6.
    """
    d = np.asarray(diff, dtype=float)
    n = d.size
    if n == 0:
        nan = float("nan")
        return nan, nan, nan
    m = float(d.mean())
    tol = 1e-10 * float(np.abs(d).mean())  # exact ties (zeros, equal |d|) survive rounding
    count, lows, highs = 0, [], []
    for signs in _sign_chunks(n, n_flips, seed):
        a = signs.astype(float) @ d / n
        total = signs.sum(axis=1, dtype=np.int64)
        b = total / n
        count += int((np.abs(a) >= abs(m) - tol).sum())
        e = a - m * b
        beta = b * np.sign(e)
        full = np.abs(total) == n
        reach = np.abs(e) + tol  # the tie tolerance of the count, so p and CI agree at ties
        with np.errstate(divide="ignore", invalid="ignore"):
            low = np.where(full, -np.inf, m - reach / (1 - beta))
            high = np.where(full, np.inf, m + reach / (1 + beta))
        lows.append(low)
        highs.append(high)
    low_all, high_all = np.concatenate(lows), np.concatenate(highs)
    n_patterns = low_all.size
    k = max(1, math.ceil((1 - level) * n_patterns - 1e-9))  # patterns needed to accept δ
    ci_low = float(np.partition(low_all, k - 1)[k - 1])
    ci_high = float(-np.partition(-high_all, k - 1)[k - 1])
    if np.all(d == d[0]) and math.isfinite(ci_low):
        ci_low = ci_high = m  # equal differences: every finite interval end is m (rounding)
    return count / n_patterns, ci_low, ci_high


def rank_biserial(diff: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (W+ − W−) / (W+ + W−), zeros dropped."""
    d = np.asarray(diff, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def compare(row: pd.Series, reference: pd.Series, seed: int = 0, n_flips: int = N_FLIPS,
            level: float = 0.95) -> Comparison:
    """Paired comparison of two per-case series (index = case id) on their common cases."""
    common = row.index.intersection(reference.index)
    diff = (row.loc[common] - reference.loc[common]).to_numpy(dtype=float)
    if diff.size == 0:
        nan = float("nan")
        return Comparison(0, nan, nan, nan, nan, nan)
    p, low, high = sign_flip(diff, level=level, n_flips=n_flips, seed=seed)
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


def table_reference_flags(rows: Sequence[str], references: Sequence[str]) -> list[bool]:
    """Which comparisons of one table are against the table's reference row.

    A table's reference rows are the references that are never themselves a compared row
    (Table I: IMAN; Table III: T = 1; Tables II, IV, V: each backbone's baseline); a
    comparison against another row (Table II: MMG+ITP vs the control, IMAN vs MMG+ITP) is a
    secondary one. Raises if a row would have two table references.
    """
    compared = set(rows)
    flags = [ref not in compared for ref in references]
    seen: set[str] = set()
    for row, flag in zip(rows, flags):
        if flag and row in seen:
            raise ValueError(f"row {row!r} is compared with two table reference rows")
        seen.update([row] if flag else [])
    return flags
