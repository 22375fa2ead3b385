"""Patient-grouped split (no leakage, stable, ratios) and frame sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iman.data.frames import keyframe_indices, middle_indices, select_frames, write_frames
from iman.data.split import kfold_split, make_split, split_from_source, write_splits


def _manifest(n_patients: int = 30, doubles: int = 4) -> pd.DataFrame:
    rows = []
    for p in range(n_patients):
        for _k in range(2 if p < doubles else 1):
            rows.append({"case_id": f"C{len(rows):04d}", "patient_id": f"P{p:03d}"})
    return pd.DataFrame(rows)


def _patients(df: pd.DataFrame, cases: list[str]) -> set[str]:
    return set(df.set_index("case_id").loc[cases, "patient_id"])


def test_split_has_no_patient_leakage_and_covers_all() -> None:
    df = _manifest()
    s = make_split(df, [0.6, 0.2, 0.2], seed=0)
    sets = [_patients(df, s[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(df.case_id)


def test_split_ratios_within_one_case() -> None:
    df = _manifest(40, 6)
    s = make_split(df, [0.6, 0.2, 0.2], seed=3)
    n = len(df)
    for key, r in zip(("train", "val", "test"), (0.6, 0.2, 0.2)):
        assert abs(len(s[key]) - r * n) <= 1.0 + 1e-9


def test_split_is_stable_and_seeded(tmp_path: Path) -> None:
    df = _manifest()
    a = write_splits(df, tmp_path / "a.json", [0.6, 0.2, 0.2], seed=0)
    b = write_splits(df, tmp_path / "b.json", [0.6, 0.2, 0.2], seed=0)
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    c = make_split(df, [0.6, 0.2, 0.2], seed=1)
    assert a == b and c["test"] != a["folds"][0]["test"]


def test_kfold_rotates_test_and_never_leaks() -> None:
    df = _manifest(25, 3)
    folds = kfold_split(df, 5, seed=0)
    tests = [c for f in folds for c in f["test"]]
    assert sorted(tests) == sorted(df.case_id)
    for f in folds:
        assert not _patients(df, f["train"]) & _patients(df, f["test"] + f["val"])


def test_source_split_is_kept() -> None:
    df = _manifest(10, 0).assign(source_split=["train"] * 8 + ["test"] * 2)
    s = split_from_source(df, 0.25, seed=0)
    assert s["test"] == ["C0008", "C0009"] and len(s["val"]) == 2


def test_middle_frames_match_the_paper_example() -> None:
    assert middle_indices(80, 5, 3) == [34, 37, 40, 43, 46]
    assert middle_indices(101, 5, 3) == [44, 47, 50, 53, 56]
    assert middle_indices(80, 1, 3) == [40]
    assert middle_indices(5, 5, 3) == [0, 0, 2, 4, 4]  # clamped to the video


def test_keyframes_pick_largest_changes_in_order() -> None:
    frames = np.zeros((10, 4, 4), np.uint8)
    frames[3:] = 50   # big change at 3
    frames[7:] = 200  # bigger change at 7
    frames[9:] = 210  # small change at 9
    assert keyframe_indices(frames, 2) == [3, 7]
    with pytest.raises(ValueError, match="unknown frame strategy"):
        select_frames(frames, "random", 3, 1)


def test_write_frames_reads_the_cache(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "C1.npz", ceus=np.zeros((80, 8, 8), np.uint8))
    out = tmp_path / "frames.json"
    write_frames({"C1": tmp_path / "C1.npz"}, out, "middle", 5, 3)
    assert json.loads(out.read_text()) == {"C1": [34, 37, 40, 43, 46]}
