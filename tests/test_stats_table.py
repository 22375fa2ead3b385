"""steps.stats_table and steps.table on tiny per_case.csv files: p against plain enumeration,
Holm per (table, modality, metric) by hand, `*` keyed to the table reference row, bold only
in the best row's favour, Table III without US rows, distinct test cases."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_tables import _cells

from iman.evaluation.comparisons import stats_table
from iman.evaluation.paper_tables import table_data
from iman.names import per_case_key, summary_key
from iman.reporting.tables import render_table

METRICS = ("std_dsc", "std_hd_mm", "std_hd95_mm", "paper_soft_dsc", "paper_row_hd")
K = np.arange(1, 11) / 100  # 0.01 .. 0.10: ten positive case differences
N1 = np.array([2, -1, 5, -2, 9, -3, 13, -4, 17, -5]) / 100  # mixed signs
BASE = np.linspace(0.4, 0.6, 10)
CASES = [f"C{i:02d}" for i in range(10)]


def brute_p(diff: np.ndarray) -> float:
    """Two-sided sign-flip p by plain enumeration of the 2^n sign patterns."""
    d = [float(x) for x in diff]
    observed = abs(sum(d))
    hits = sum(abs(sum(s * x for s, x in zip(signs, d))) >= observed - 1e-12
               for signs in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


def write_experiment(root: Path, exp: str, dsc: dict[str, np.ndarray], seed: int = 0,
                     cases: list[str] = CASES) -> None:
    """per_case.csv (test rows; HD = 10 − 10·DSC, lower is better) and summary.json."""
    frames, branches = [], {}
    for modality, values in dsc.items():
        hd = 10 - 10 * values
        cols = {"std_dsc": values, "std_hd_mm": hd, "std_hd95_mm": hd / 2,
                "paper_soft_dsc": values, "paper_row_hd": hd}
        frames.append(pd.DataFrame({"case_id": cases, "split": "test", **cols,
                                    "modality": modality, "loop": 0, "seed": seed,
                                    "fold": ""}))
        branches[modality] = {"loop": 0, "run": exp, "n_test": len(cases),
                              "test": {c: {"mean": float(np.mean(v)), "std": None}
                                       for c, v in cols.items()}}
    (root / exp).mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(root / exp / "per_case.csv", index=False)
    (root / exp / "summary.json").write_text(json.dumps({"experiment": exp,
                                                         "branches": branches}))


# Table II-like rows. itp − base = N1 (mixed), itp − ctl = K (all positive),
# iman − base = K (all positive), iman − itp = K − N1 (mixed), ctl − base = N1 − K (mixed)
ROWS2 = {"mmg=0 itp=0 modal_fusion=0": BASE, "mmg=0 itp=1 modal_fusion=0": BASE + N1 - K,
         "mmg=1 itp=1 modal_fusion=0": BASE + N1, "mmg=1 itp=1 modal_fusion=1": BASE + K}
BASE2, CTL, ITP, IMAN = ROWS2
# in iman.experiments.table_comparisons order: the secondary comparisons come last
COMP2 = [(CTL, BASE2), (ITP, BASE2), (IMAN, BASE2), (ITP, CTL), (IMAN, ITP)]


def exp_name(row: str, seed: int) -> str:
    return row.replace(" ", "_").replace("=", "") + f"__seed{seed}"


@pytest.fixture
def study(tmp_path: Path) -> dict:
    """Table II (two seeds per row, identical values), Table III (US: one shared node)."""
    root = tmp_path / "experiments"
    per_case = {}
    for row, dsc in ROWS2.items():
        for seed in (0, 1):
            exp = exp_name(row, seed)
            write_experiment(root, exp, {"us": dsc, "ceus": dsc + 0.1}, seed)
            per_case[per_case_key(exp)] = root / exp / "per_case.csv"
    # Table III: frames=1 and frames=3 read the same US node (identical US rows)
    for frames, ceus in ((1, BASE), (3, BASE + K)):
        write_experiment(root, f"t3_f{frames}", {"us": BASE + 0.05, "ceus": ceus})
        per_case[per_case_key(f"t3_f{frames}")] = root / f"t3_f{frames}" / "per_case.csv"
    comparisons = [["table2", r, ref, [exp_name(r, 0), exp_name(r, 1)],
                    [exp_name(ref, 0), exp_name(ref, 1)]] for r, ref in COMP2]
    comparisons.append(["table3", "frames=3", "frames=1", ["t3_f3"], ["t3_f1"]])
    return {"root": root, "per_case": per_case, "comparisons": comparisons,
            "out": tmp_path / "stats.csv"}


def _sel(df: pd.DataFrame, table: str, row: str, ref: str, modality: str,
         metric: str) -> pd.Series:
    hit = df[(df["table"] == table) & (df["row"] == row) & (df["reference"] == ref)
             & (df["modality"] == modality) & (df["metric"] == metric)]
    assert len(hit) == 1, (table, row, ref, modality, metric)
    return hit.iloc[0]


def test_p_matches_enumeration_and_holm_runs_per_table_modality_metric(study: dict) -> None:
    stats_table(study["comparisons"], study["per_case"], study["out"])
    df = pd.read_csv(study["out"])
    diffs = {(CTL, BASE2): N1 - K, (ITP, BASE2): N1, (IMAN, BASE2): K, (ITP, CTL): K,
             (IMAN, ITP): K - N1}
    # plain enumeration over 2^10 patterns: 388, 264, 2, 2 and 388 of 1024
    counts = {(CTL, BASE2): 388, (ITP, BASE2): 264, (IMAN, BASE2): 2, (ITP, CTL): 2,
              (IMAN, ITP): 388}
    # Holm over the five comparisons of one (table, modality, metric), sorted p:
    # 2, 2, 264, 388, 388 (/1024) -> 5*2 = 10, max(10, 4*2) = 10, 3*264 = 792,
    # max(792, 2*388 = 776) = 792, max(792, 388) = 792 (/1024)
    holm = {(CTL, BASE2): 792, (ITP, BASE2): 792, (IMAN, BASE2): 10, (ITP, CTL): 10,
            (IMAN, ITP): 792}
    for (row, ref), d in diffs.items():
        assert brute_p(d) == counts[(row, ref)] / 1024
        for modality in ("us", "ceus"):
            for metric, sign in (("std_dsc", 1), ("std_hd_mm", -10)):
                r = _sel(df, "table2", row, ref, modality, metric)
                assert r["p"] == pytest.approx(counts[(row, ref)] / 1024, rel=1e-5)
                assert r["p_holm"] == pytest.approx(holm[(row, ref)] / 1024, rel=1e-5)
                assert r["mean_diff"] == pytest.approx(sign * d.mean(), abs=1e-9)
                assert r["ci_low"] <= r["mean_diff"] <= r["ci_high"]
                assert (r["p"] < 0.05) == (not r["ci_low"] <= 0 <= r["ci_high"])
                assert r["n_runs"] == 2 and r["n_cases"] == 10  # distinct cases, 2 seeds
    # Table III is its own family: one comparison, p_holm = p = 2/1024
    t3 = _sel(df, "table3", "frames=3", "frames=1", "ceus", "std_dsc")
    assert t3["p"] == pytest.approx(2 / 1024, rel=1e-5) == t3["p_holm"]


def test_columns_name_the_test_direction_and_table_reference(study: dict) -> None:
    df = stats_table(study["comparisons"], study["per_case"], study["out"])
    assert list(df.columns) == ["table", "comparison", "row", "reference", "primary",
                                "modality", "metric", "better", "n_runs", "n_cases",
                                "mean_diff", "ci_low", "ci_high", "p", "p_holm",
                                "effect_size", "n_seeds", "seed_diffs", "seeds_agree",
                                "n_empty_row", "n_empty_reference", "test", "ci_method"]
    # readers see human labels; the machine keys stay in row / reference
    assert _sel(df, "table2", IMAN, BASE2, "us", "std_dsc")["comparison"] == "IMAN vs baseline"
    assert _sel(df, "table2", ITP, CTL, "us", "std_dsc")["comparison"] == (
        "MMG+ITP vs epoch-matched control")
    assert _sel(df, "table3", "frames=3", "frames=1", "ceus", "std_dsc")["comparison"] == (
        "T = 3 vs T = 1")
    assert set(df["test"]) == {"sign-flip permutation (mean)"}
    assert set(df["ci_method"]) == {"inverted sign-flip test"}
    assert set(df.loc[df["metric"] == "std_dsc", "better"]) == {"positive"}
    assert set(df.loc[df["metric"] == "std_hd_mm", "better"]) == {"negative"}
    read = pd.read_csv(study["out"])
    primary = read[read["primary"]]
    assert set(zip(primary["row"], primary["reference"])) == {
        (CTL, BASE2), (ITP, BASE2), (IMAN, BASE2), ("frames=3", "frames=1")}
    # the effect size agrees in sign with the difference; HD's better sign is negative
    iman = _sel(read, "table2", IMAN, BASE2, "us", "std_hd_mm")
    assert iman["mean_diff"] < 0 and iman["effect_size"] == -1.0


def test_table3_keeps_ceus_only_unless_told(study: dict) -> None:
    df = stats_table(study["comparisons"], study["per_case"], study["out"])
    assert set(df.loc[df["table"] == "table3", "modality"]) == {"ceus"}
    assert set(df.loc[df["table"] == "table2", "modality"]) == {"us", "ceus"}
    both = stats_table(study["comparisons"], study["per_case"], study["out"],
                       modalities={"table3": ("us", "ceus")})
    us = both[(both["table"] == "table3") & (both["modality"] == "us")]
    assert len(us) == 2 and (us["mean_diff"] == 0).all() and (us["p"] == 1).all()


def table(name: str, rows: list[tuple[dict, list[str]]], files: dict, stem: Path) -> None:
    """Rules table_data then table: the numbers and marks, then the rendering from them alone
    (``stem``.csv, ``stem``_marks.json, ``stem``.md/.tex/.html)."""
    csv, marks = stem.with_suffix(".csv"), stem.with_name(f"{stem.name}_marks.json")
    table_data(name, rows, files, csv, marks)
    render_table(name, csv, marks, *(stem.with_suffix(f".{e}") for e in ("md", "tex", "html")))


def _table_files(root: Path, rows: list[tuple[dict, list[str]]], stats: Path) -> dict:
    files: dict[str, str | Path] = {"stats": stats}
    for _, exps in rows:
        for e in exps:
            files[summary_key(e)] = root / e / "summary.json"
            files[per_case_key(e)] = root / e / "per_case.csv"
    return files


def test_marks_come_from_the_table_reference_comparison_only(study: dict,
                                                             tmp_path: Path) -> None:
    stats_table(study["comparisons"], study["per_case"], study["out"])
    rows = []
    for row in ROWS2:
        labels = dict(kv.split("=") for kv in row.split())
        rows.append(({k: int(v) for k, v in labels.items()},
                     [exp_name(row, 0), exp_name(row, 1)]))
    table("table2", rows, _table_files(study["root"], rows, study["out"]), tmp_path / "t2")
    md = (tmp_path / "t2.md").read_text(encoding="utf-8")
    csv = pd.read_csv(tmp_path / "t2.csv")
    # IMAN: vs the baseline p_holm = 10/1024 (*), vs MMG+ITP 792/1024 (listed last)
    # MMG+ITP: vs the baseline 792/1024 (no *), vs the control 10/1024 (listed last)
    for head in ("US DSC ↑", "US HD (mm) ↓", "CEUS DSC ↑", "CEUS HD (mm) ↓"):
        cells = _cells(md, head)
        # IMAN is better on both metrics (higher DSC, lower HD): ▲, never ▼
        assert [c.endswith(" ▲") for c in cells] == [False, False, False, True], (head, cells)
        assert not any(c.endswith(" ▼") for c in cells)
    # p_holm read back at full precision: exact ratios of sign patterns (no tolerance needed
    # beyond the float division itself)
    assert list(csv["us_dsc_p_holm"][1:]) == [792 / 1024] * 2 + [10 / 1024]
    assert list(csv["reference"].fillna("")) == ["", BASE2, BASE2, BASE2]
    # distinct test cases: 10 cases tested by 2 seeds each -> 10, not 20
    assert list(csv["us_n_cases"]) == [10] * 4 and list(csv["ceus_n_cases"]) == [10] * 4
    assert (csv["n_runs"] == 2).all()
    assert "than the row's table reference row" in md and "over runs" in md


def test_a_skewed_best_gets_no_bold(tmp_path: Path) -> None:
    # UNet is worse than FPN on 11 of 12 cases by 0.02 and better on one by 0.5: its mean is
    # the column's best (+0.023), a signed-rank test calls it significant (p = 0.033), the
    # mean's sign-flip test does not (p = 1): no bold
    cases = [f"S{i:02d}" for i in range(12)]
    fpn = np.linspace(0.3, 0.45, 12)
    unet = fpn + np.array([-0.02] * 11 + [0.5])
    iman = fpn - 0.2
    root = tmp_path / "experiments"
    values = {"method=unet": unet, "method=fpn": fpn, "method=iman": iman}
    for row, dsc in values.items():
        write_experiment(root, row.split("=")[1], {"us": dsc}, cases=cases)
    comparisons = [["table1", "method=unet", "method=iman", ["unet"], ["iman"]],
                   ["table1", "method=fpn", "method=iman", ["fpn"], ["iman"]]]
    out = tmp_path / "stats.csv"
    stats_table(comparisons,
                {per_case_key(e): root / e / "per_case.csv" for e in ("unet", "fpn", "iman")},
                out)
    rows = [({"method": m}, [m]) for m in ("unet", "fpn", "iman")]
    table("table1", rows, _table_files(root, rows, out), tmp_path / "t1")
    md = (tmp_path / "t1.md").read_text(encoding="utf-8")
    dsc = _cells(md, "US DSC ↑")
    mean = [float(c.strip("* ").split()[0]) for c in dsc]
    assert mean[0] > mean[1] > mean[2]  # UNet has the best mean ...
    assert not any(c.startswith("**") for c in dsc)  # ... and no bold
    assert "No bold in " in md and "us_dsc" in md.split("No bold in ", 1)[1].split(":")[0]
    # HD (10 − 10·DSC): UNet has the lowest mean, skewed the same way: no bold either
    assert not any(c.startswith("**") for c in _cells(md, "US HD (mm) ↓"))


def test_each_seed_has_its_own_difference_and_the_agreeing_seeds_are_counted(tmp_path: Path
                                                                            ) -> None:
    # seed 0: the row is better by K on every case; seed 1: worse by 0.01 on every case;
    # seed 2: better by 2K. Pooled (seed-averaged cases): better by K − 0.01/3 + ... > 0
    root = tmp_path / "experiments"
    shifts = {0: K, 1: np.full(10, -0.01), 2: 2 * K}
    files = {}
    for seed, shift in shifts.items():
        for name, dsc in ((f"row{seed}", BASE + shift), (f"ref{seed}", BASE)):
            write_experiment(root, name, {"us": dsc}, seed=seed)
            files[per_case_key(name)] = root / name / "per_case.csv"
    out = tmp_path / "stats.csv"
    df = stats_table([["table1", "method=unet", "method=iman", ["row0", "row1", "row2"],
                       ["ref0", "ref1", "ref2"]]], files, out)
    read = pd.read_csv(out)
    dsc = _sel(read, "table1", "method=unet", "method=iman", "us", "std_dsc")
    from iman.evaluation.comparisons import parse_seed_diffs

    seeds = parse_seed_diffs(dsc["seed_diffs"])
    assert list(seeds) == [0, 1, 2]
    # written at full precision: each read back equals the in-memory mean to the last bit of
    # the per-case arithmetic (row − reference of floats summed over 10 cases: ≤ 1e-15)
    assert seeds[0] == pytest.approx(K.mean(), abs=1e-15)
    assert seeds[1] == pytest.approx(-0.01, abs=1e-15)
    assert seeds[2] == pytest.approx(2 * K.mean(), abs=1e-15)
    assert dsc["mean_diff"] == pytest.approx(np.mean([K.mean(), -0.01, 2 * K.mean()]),
                                             abs=1e-15)
    assert dsc["n_seeds"] == 3 and dsc["seeds_agree"] == 2
    hd = _sel(read, "table1", "method=unet", "method=iman", "us", "std_hd_mm")
    assert hd["seeds_agree"] == 2 and parse_seed_diffs(hd["seed_diffs"])[1] > 0
    assert df["mean_diff"].tolist() == read["mean_diff"].tolist()  # the file is the frame
