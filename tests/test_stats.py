"""Paired statistics: Wilcoxon and Holm against hand-computed cases, bootstrap coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from iman.stats import bootstrap_ci, case_means, compare, holm, rank_biserial


def test_wilcoxon_all_positive_differences_by_hand() -> None:
    # 6 positive differences: W- = 0 is the most extreme of 2^6 equally likely sign patterns,
    # two-sided exact p = 2 / 64
    row = pd.Series([0.6, 0.7, 0.8, 0.9, 1.0, 1.1], index=list("abcdef"))
    ref = pd.Series([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], index=list("abcdef"))
    c = compare(row, ref)
    assert c.n_cases == 6 and c.p == pytest.approx(2 / 64)
    assert c.mean_diff == pytest.approx(0.35) and c.effect_size == 1.0
    assert c.ci_low <= c.mean_diff <= c.ci_high


def test_compare_pairs_by_case_id_and_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    ids = [f"C{i}" for i in range(20)]
    ref = pd.Series(rng.uniform(0.5, 0.9, 20), index=ids)
    row = pd.Series(ref.to_numpy() + rng.normal(0.02, 0.05, 20), index=ids)
    shuffled = row.sample(frac=1.0, random_state=1)
    extra = pd.concat([shuffled, pd.Series([0.1], index=["only_in_row"])])
    c = compare(extra, ref)
    diff = (row - ref).to_numpy()
    assert c.n_cases == 20 and c.mean_diff == pytest.approx(diff.mean())
    assert c.p == pytest.approx(sps.wilcoxon(diff).pvalue)


def test_identical_rows_are_not_different() -> None:
    s = pd.Series([0.5, 0.6], index=["a", "b"])
    c = compare(s, s)
    assert c.p == 1.0 and c.mean_diff == 0.0 and c.effect_size == 0.0


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, np.nan, 0.9]), [1.0, np.nan, 1.0])


def test_rank_biserial_by_hand() -> None:
    # ranks of |d| = 1, 2, 3; W+ = 1 + 3 = 4, W- = 2 -> (4 - 2) / 6
    assert rank_biserial(np.array([1.0, -2.0, 3.0, 0.0])) == pytest.approx(2 / 6)


def test_bootstrap_interval_covers_a_known_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(200):
        sample = rng.normal(0.1, 0.05, 40)
        low, high = bootstrap_ci(sample, n_resamples=1000, seed=i)
        hits += low <= 0.1 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_case_means_average_over_seeds_on_test_rows() -> None:
    seed0 = pd.DataFrame({"case_id": ["a", "b", "v"], "split": ["test", "test", "val"],
                          "std_dsc": [0.4, 0.8, 0.1]})
    seed1 = pd.DataFrame({"case_id": ["a", "b"], "split": ["test", "test"],
                          "std_dsc": [0.6, 0.6]})
    means = case_means([seed0, seed1], "std_dsc")
    assert means.to_dict() == pytest.approx({"a": 0.5, "b": 0.7})
