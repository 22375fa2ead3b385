"""The default run's evidence: fixed split sizes (a powered test set) and the two Table II
controls, oracle margins (positive) and mismatched pairs (negative)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iman.config import ConfigError, validate_config
from iman.data.split import cross_patient_derangement, make_split, split_targets
from iman.experiments import (
    DIAGNOSTIC,
    Spec,
    margin_source,
    node_for,
    parent_node,
    table_comparisons,
    table_specs,
)
from iman.margins.mmg import margin_mask
from iman.margins.nodes import make_mismatched_margins, make_oracle_margins
from iman.paths import Paths, case_file

DEMO = {"model": {"variants": {"default": "demo"}}, "iman": {"loops": 2}}
IMAN = Spec("transunet", "demo", routing="cross", mmg_us=(75, "gaussian"),
            mmg_ceus=(100, "mean"), loops=2)


def _manifest(n_patients: int, doubles: int) -> pd.DataFrame:
    rows = []
    for p in range(n_patients):
        for _ in range(2 if p < doubles else 1):
            rows.append({"case_id": f"C{len(rows):04d}", "patient_id": f"P{p:03d}"})
    return pd.DataFrame(rows)


# ---- a test set with power at a fixed training cost -----------------------------------------


def test_fixed_sizes_train_and_validate_on_the_same_counts_and_test_the_rest() -> None:
    df = _manifest(62, 7)  # the default phantom: 69 cases
    s = make_split(df, [0.6, 0.2, 0.2], seed=0, sizes={"train": 21, "val": 6})
    assert abs(len(s["train"]) - 21) <= 1 and abs(len(s["val"]) - 6) <= 1
    assert len(s["test"]) == 69 - len(s["train"]) - len(s["val"]) >= 40
    patients = df.set_index("case_id")["patient_id"]
    sets = [set(patients[s[k]]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    bigger = make_split(_manifest(120, 10), [0.6, 0.2, 0.2], 0, {"train": 21, "val": 6})
    assert abs(len(bigger["train"]) - 21) <= 1  # more data: only the test set grows
    assert len(bigger["test"]) >= 130 - 29


def test_sizes_that_leave_nothing_to_test_are_refused() -> None:
    assert split_targets(30, [0.6, 0.2, 0.2], {"train": 20, "val": 5}) == [20.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="leaves 0 of the 25 cases"):
        split_targets(25, [0.6, 0.2, 0.2], {"train": 20, "val": 5})


def test_sizes_with_folds_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="split.sizes"):
        validate_config({"split": {"sizes": {"train": 21, "val": 6}, "folds": 5}})


# ---- the mismatched-pairs derangement ---------------------------------------------------------


def test_derangement_is_a_seeded_bijection_that_never_keeps_a_patient() -> None:
    df = _manifest(20, 5)
    patients = dict(zip(df["case_id"], df["patient_id"]))
    cases = list(df["case_id"])
    d = cross_patient_derangement(cases, patients, seed=3)
    assert sorted(d) == sorted(cases) and sorted(d.values()) == sorted(cases)
    assert all(patients[c] != patients[donor] for c, donor in d.items())
    assert d == cross_patient_derangement(cases, patients, seed=3)
    assert d != cross_patient_derangement(cases, patients, seed=4)


def test_a_subset_without_another_patient_cannot_be_deranged() -> None:
    with pytest.raises(ValueError, match="another patient's case"):
        cross_patient_derangement(["C0", "C1"], {"C0": "P0", "C1": "P0"}, seed=0)
    with pytest.raises(ValueError, match="twice as many"):
        cross_patient_derangement(["C0", "C1", "C2"], {"C0": "P0", "C1": "P0", "C2": "P1"}, 0)


# ---- rows, routing, sharing -------------------------------------------------------------------


def test_the_controls_are_table2_rows_only_when_asked() -> None:
    paper = validate_config(DEMO)
    assert [lab.get("modal_fusion") for lab, _ in table_specs(paper, "table2")] == [0, 0, 0, 0, 1]
    cfg = validate_config({**DEMO, "tables": {"table2": {"oracle": True, "mismatched": True}}})
    rows = table_specs(cfg, "table2")
    assert [lab["modal_fusion"] for lab, _ in rows[-2:]] == ["oracle", "mismatched"]
    assert [s[0].routing for _, s in rows[-2:]] == ["oracle", "mismatch"]
    assert all(lab.get("modal_fusion") in (0, 1) for lab, _ in table_specs(cfg, "table5"))
    comps = {(row, ref) for row, ref, _, _ in table_comparisons(cfg, "table2")}
    base, iman = "mmg=0 itp=0 modal_fusion=0", "mmg=1 itp=1 modal_fusion=1"
    for kind in ("oracle", "mismatched"):
        diag = f"mmg=1 itp=1 modal_fusion={kind}"
        assert (diag, base) in comps and (iman, diag) in comps


def test_oracle_margins_come_from_the_other_modalitys_ground_truth_in_every_loop() -> None:
    oracle = replace(IMAN, routing="oracle")
    for loop in (1, 2):
        us, ceus = margin_source(node_for(oracle, "us", loop)), margin_source(
            node_for(oracle, "ceus", loop))
        assert us is not None and ceus is not None
        assert (us.kind, us.modality, us.setting, us.node) == ("oracle", "ceus", (75, "gaussian"),
                                                               None)
        assert (ceus.kind, ceus.modality, ceus.setting) == ("oracle", "us", (100, "mean"))
    P = Paths("r")
    assert P.margins_of(margin_source(node_for(oracle, "us", 2))) == (
        "r/data/oracle_margins/ceus_k75_gaussian.npz")
    # loop 0 is the shared baseline; loop 1 warm-starts from it
    assert node_for(oracle, "us", 0) == node_for(IMAN, "us", 0)
    assert parent_node(node_for(oracle, "us", 1)) == node_for(IMAN, "us", 0)
    assert node_for(oracle, "us", 1) != node_for(IMAN, "us", 1)


def test_mismatched_margins_are_the_cross_margins_of_the_mismatched_run_deranged() -> None:
    mis = replace(IMAN, routing="mismatch")
    s1 = margin_source(node_for(mis, "us", 1))
    s2 = margin_source(node_for(mis, "us", 2))
    assert s1 is not None and s2 is not None and s1.kind == s2.kind == "mismatch"
    assert s1.node == node_for(IMAN, "ceus", 0)  # the shared CEUS baseline's predictions
    assert s2.node == node_for(mis, "ceus", 1)  # then the mismatched run's own CEUS branch
    P = Paths("r")
    assert P.margins_of(s2) == P.mismatched_margins(s2.node, 75, "gaussian")
    assert set(DIAGNOSTIC) == {"oracle", "mismatch"}


# ---- the margin files -------------------------------------------------------------------------


def _tiny_cache(tmp_path: Path, n: int = 8) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """``n`` cached cases (32 px, one lesion disc each, one patient with two cases)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    rows, masks = [], {}
    yy, xx = np.mgrid[:32, :32]
    for i in range(n):
        case = f"C{i:04d}"
        mask = ((yy - 10 - i) ** 2 + (xx - 16) ** 2 <= (4 + i % 3) ** 2).astype(np.uint8)
        masks[case] = mask
        np.savez(case_file(cache, case), us_mask=mask, ceus_mask=mask)
        rows.append({"case_id": case, "patient_id": f"P{max(i - 1, 0)}", "us_h": 128,
                     "us_w": 96, "ceus_h": 128, "ceus_w": 96})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return cache, manifest, masks


def test_oracle_margins_are_the_mmg_of_each_ground_truth_mask(tmp_path: Path) -> None:
    cache, manifest, masks = _tiny_cache(tmp_path)
    out = tmp_path / "oracle" / "ceus_k50_gaussian.npz"
    make_oracle_margins(cache, manifest, "ceus", 50, "gaussian", 0.5, out)
    with np.load(out) as npz:
        assert sorted(npz.files) == sorted(masks)
        for case, mask in masks.items():
            expected = margin_mask(mask.astype(np.float32), 50, "gaussian", (128, 96), 0.5)
            # stored as float16 in [0, 1]: rounding error ≤ half an ulp below 1, 2⁻¹²
            np.testing.assert_allclose(npz[case].astype(np.float32), expected, rtol=0,
                                       atol=2.0**-12)
            assert npz[case].max() > 0.5  # a band exists around every lesion


def test_mismatched_margins_give_each_case_a_donor_of_its_subset(tmp_path: Path) -> None:
    _, manifest, _ = _tiny_cache(tmp_path)
    margins = {f"C{i:04d}": np.full((32, 32), i, np.float16) for i in range(8)}
    src = tmp_path / "margins.npz"
    np.savez(src, **margins)
    split = {"train": ["C0000", "C0001", "C0002", "C0003"], "val": ["C0004", "C0005"],
             "test": ["C0006", "C0007"]}
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"folds": [split]}))
    out, donors_file = tmp_path / "mis.npz", tmp_path / "donors.json"
    make_mismatched_margins(src, manifest, splits, 0, 0, out, donors_file)
    donors = json.loads(donors_file.read_text())
    patients = pd.read_csv(manifest).set_index("case_id")["patient_id"]
    subset = {c: k for k, cases in split.items() for c in cases}
    with np.load(out) as npz:
        assert sorted(npz.files) == sorted(margins)
        for case, donor in donors.items():
            assert subset[case] == subset[donor] and patients[case] != patients[donor]
            assert npz[case][0, 0] == margins[donor][0, 0]  # the donor's margin, unchanged


@pytest.mark.parametrize("routing", ["oracle", "mismatch"])
def test_predict_never_uses_a_control(routing: str, tmp_path: Path) -> None:
    from iman.experiments import experiment_name
    from iman.predict import PredictError, predict_cases

    name = experiment_name(replace(IMAN, routing=routing))
    with pytest.raises(PredictError, match="diagnostic control"):
        predict_cases(tmp_path, name, tmp_path / "cases.csv", tmp_path / "out")


def test_ablation_bars_name_the_controls() -> None:
    from iman.reporting import figures as F

    df = pd.DataFrame({"mmg": [0, 1, 1, 1], "itp": [0, 1, 1, 1],
                       "modal_fusion": ["0", "1", "oracle", "mismatched"]})
    assert F._setting_labels(df) == ["baseline", "+MMG +ITP +fusion",
                                     "control: oracle margins", "control: mismatched pairs"]


# ---- power and the margin diagnostics ---------------------------------------------------------


def test_smallest_p_by_hand() -> None:
    from iman.evaluation.power import smallest_p

    assert smallest_p(5) == pytest.approx(2 / 32)
    assert smallest_p(7) == pytest.approx(1 / 64)  # the old 7-case test set: nothing after Holm
    assert smallest_p(42, n_flips=20_000) == pytest.approx(1 / 20_001)


def test_holm_family_sizes_are_read_per_modality_from_the_stats() -> None:
    from iman.evaluation.power import family_sizes

    # Table I: 11 methods tested on US, 8 on CEUS (two metrics each): not one size for both
    rows = [{"table": "table1", "modality": mod, "metric": met, "row": f"method=m{i}"}
            for mod, n in (("us", 11), ("ceus", 8)) for i in range(n)
            for met in ("std_dsc", "std_hd_mm")]
    stats = pd.DataFrame([*rows, {"table": "table2", "modality": "us", "metric": "std_dsc",
                                   "row": "x"}])
    assert family_sizes(stats, "table1", "std_dsc") == {"us": 11, "ceus": 8}
    assert family_sizes(stats, "table2", "std_dsc") == {"us": 1}


def test_power_grows_with_the_shift_and_stays_near_alpha_without_one() -> None:
    from iman.evaluation.power import minimal_detectable, power_at

    diffs = np.random.default_rng(0).normal(0, 0.1, 42)
    assert power_at(diffs, 0.0, 42, sims=100, n_flips=500) <= 0.12
    assert power_at(diffs, 0.1, 42, sims=100, n_flips=500) >= 0.95
    mdd = minimal_detectable(diffs, 42, sims=60, step=0.01)
    # normal theory: (1.96 + 0.84) · sd / √n ≈ 0.043 for sd 0.1, n 42
    assert 0.03 <= mdd <= 0.06


def test_case_gates_by_hand() -> None:
    from iman.evaluation.diagnostics import case_gates

    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1  # 16 lesion pixels: 12 on the boundary, 4 inside
    margin = np.zeros((8, 8), np.float32)
    margin[2:6, 2:6] = 1.0
    margin[3:5, 3:5] = 0.0  # a band: the boundary open, the interior gated out
    g = case_gates(margin, mask)
    assert g["lesion_gate"] == pytest.approx(12 / 16)
    assert g["lesion_blocked"] == pytest.approx(4 / 16)
    assert g["boundary_gate"] == pytest.approx(1.0)


def test_the_table_says_what_its_control_rows_are() -> None:
    from iman.reporting.tables import controls_note

    df = pd.DataFrame({"mmg": [0, 0, 1, 1, 1], "itp": [0, 1, 1, 1, 1],
                       "modal_fusion": [0, 0, 1, "oracle", "mismatched"]})
    note = controls_note(df)
    assert "epoch-matched" in note and "ground-truth" in note and "different patient" in note
    assert controls_note(df.iloc[[0, 2]]) == ""
    assert controls_note(pd.DataFrame({"method": ["unet"]})) == ""


# ---- the controls in the smoke DAG --------------------------------------------------------------


@pytest.mark.dag
def test_smoke_run_has_both_controls_with_their_comparisons_and_donors(smoke_run: Path) -> None:
    from conftest import ROOT

    from iman.config import load_config
    from iman.experiments import table_specs

    results = smoke_run / "results"
    t2 = pd.read_csv(results / "tables" / "table2.csv")
    assert {"oracle", "mismatched"} <= set(t2["modal_fusion"].astype(str))
    stats = pd.read_csv(results / "tables" / "stats.csv")
    rows = set(stats.loc[stats["table"] == "table2", "row"])
    refs = set(stats.loc[stats["table"] == "table2", "reference"])
    assert any("oracle" in r for r in rows) and any("mismatched" in r for r in refs)
    cfg = load_config(ROOT / "config" / "smoke.yaml")
    mis = next(s[0] for lab, s in table_specs(cfg, "table2")
               if lab.get("modal_fusion") == "mismatched")
    source = margin_source(node_for(mis, "us", 1))
    P = Paths(str(results))
    k, f = source.setting
    donors = json.loads(Path(P.mismatch_donors(source.node, k, f)).read_text())
    manifest = pd.read_csv(P.manifest, dtype={"case_id": str, "patient_id": str})
    patient = dict(zip(manifest["case_id"], manifest["patient_id"]))
    split = json.loads(Path(P.splits).read_text())["folds"][0]
    subset = {c: name for name, cases in split.items() for c in cases}
    assert sorted(donors) == sorted(patient)
    assert all(patient[c] != patient[d] and subset[c] == subset[d] for c, d in donors.items())
    with np.load(P.margins_of(source)) as mis_m, np.load(
            P.margins(source.node, k, f)) as own:
        assert all(np.array_equal(mis_m[c], own[d]) for c, d in donors.items())
    oracle_file = Path(P.oracle_margins("ceus", k, f))
    assert oracle_file.exists()
