"""Patient-grouped, seeded train/val/test splits persisted as ``splits.json``.

No patient ever appears in two subsets. Patients are shuffled with the seed and assigned
greedily so each subset's *case* count lands within one case of its target: a ratio of the
cases, or (``sizes``) a fixed number of training and validation cases with every other case
tested. Fixed sizes keep the training cost of a run constant while more cases are added to
its test set (test cases cost inference only; docs/statistics.md).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "cross_patient_derangement",
    "kfold_split",
    "make_split",
    "read_split",
    "split_cases",
    "split_from_source",
    "split_targets",
    "write_splits",
]

def _groups(manifest: pd.DataFrame) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for case, patient in zip(manifest["case_id"], manifest["patient_id"]):
        groups[str(patient)].append(str(case))
    return dict(sorted(groups.items()))


def _assign(groups: dict[str, list[str]], targets: list[float], seed: int) -> list[list[str]]:
    """Give each shuffled patient to the subset furthest below its target case count."""
    rng = np.random.default_rng(seed)
    patients = list(groups)
    rng.shuffle(patients)
    patients.sort(key=lambda p: -len(groups[p]))  # place multi-case patients first (stable)
    bins: list[list[str]] = [[] for _ in targets]
    for p in patients:
        deficit = [t - len(b) for t, b in zip(targets, bins)]
        bins[int(np.argmax(deficit))].extend(groups[p])
    return [sorted(b) for b in bins]


def split_targets(n_cases: int, ratios: list[float],
                  sizes: dict[str, int] | None = None) -> list[float]:
    """Target case counts (train, val, test): ``sizes`` (train and val; the rest is tested)
    when given, else ``ratios`` (normalised) of ``n_cases``."""
    if sizes:
        rest = n_cases - sizes["train"] - sizes["val"]
        if rest < 1:
            raise ValueError(f"split.sizes: train {sizes['train']} + val {sizes['val']} leaves "
                             f"{rest} of the {n_cases} cases to test (need >= 1)")
        return [float(sizes["train"]), float(sizes["val"]), float(rest)]
    r = np.asarray(ratios, float) / float(np.sum(ratios))
    return list(r * n_cases)


def make_split(manifest: pd.DataFrame, ratios: list[float], seed: int,
               sizes: dict[str, int] | None = None) -> dict[str, list[str]]:
    """One grouped split: ``ratios`` (normalised) of the cases, or ``sizes`` (train and val
    case counts, the rest tested)."""
    groups = _groups(manifest)
    n = sum(len(c) for c in groups.values())
    train, val, test = _assign(groups, split_targets(n, ratios, sizes), seed)
    return {"train": train, "val": val, "test": test}


def kfold_split(manifest: pd.DataFrame, k: int, seed: int) -> list[dict[str, list[str]]]:
    """k grouped folds; fold i tests on part i, validates on part i+1, trains on the rest."""
    groups = _groups(manifest)
    n = sum(len(c) for c in groups.values())
    parts = _assign(groups, [n / k] * k, seed)
    folds = []
    for i in range(k):
        val_i = (i + 1) % k
        train = sorted(c for j, p in enumerate(parts) if j not in (i, val_i) for c in p)
        folds.append({"train": train, "val": parts[val_i], "test": parts[i]})
    return folds


def split_from_source(manifest: pd.DataFrame, val_ratio: float, seed: int) -> dict[str, list[str]]:
    """Keep the dataset's own train/test folders; draw val from train by patient."""
    src = manifest["source_split"].fillna("").astype(str)
    if not set(src) <= {"train", "test"} or "test" not in set(src):
        raise ValueError("split.use_source_split needs every case's source_split in {train, test}")
    train_part = manifest[src == "train"]
    inner = make_split(train_part, [1 - val_ratio, val_ratio, 0.0], seed)
    return {"train": inner["train"], "val": inner["val"],
            "test": sorted(manifest.loc[src == "test", "case_id"].astype(str))}


def write_splits(manifest: pd.DataFrame, out: Path, ratios: list[float], seed: int,
                 folds: int = 1, use_source_split: bool = False,
                 sizes: dict[str, int] | None = None) -> dict:
    """Compute the split(s) and write ``splits.json``; returns what was written."""
    if use_source_split:
        r = np.asarray(ratios, float)
        chosen = [split_from_source(manifest, float(r[1] / (r[0] + r[1])), seed)]
    elif folds > 1:
        chosen = kfold_split(manifest, folds, seed)
    else:
        chosen = [make_split(manifest, ratios, seed, sizes)]
    payload = {"seed": seed, "ratios": list(ratios), "sizes": sizes,
               "use_source_split": use_source_split, "folds": chosen}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    return payload


def cross_patient_derangement(cases: list[str], patients: dict[str, str],
                              seed: int) -> dict[str, str]:
    """A seeded permutation of ``cases`` in which no case keeps a case of its own patient:
    case → donor case (the mismatched-pairs control).

    Patients are shuffled, their cases laid out contiguously, and every case takes the case
    ``s`` places further on (cyclically), ``s`` being the largest number of cases of one
    patient: a bijection that never lands in the same patient's block when there are at least
    ``2 s`` cases. Fewer cases, or one patient only, cannot be deranged across patients.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for c in sorted(cases):
        groups[patients[c]].append(c)
    s = max((len(g) for g in groups.values()), default=0)
    if len(groups) < 2 or len(cases) < 2 * s:
        raise ValueError(f"cannot give each of {len(cases)} cases ({len(groups)} patients) "
                         "another patient's case: a subset needs at least twice as many cases "
                         "as its largest patient has")
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    laid = [c for p in order for c in groups[p]]
    n = len(laid)
    return {laid[i]: laid[(i + s) % n] for i in range(n)}


def read_split(splits_file: Path, fold: int = 0) -> dict[str, list[str]]:
    """The (fold's) train/val/test case lists."""
    return json.loads(Path(splits_file).read_text())["folds"][fold]


def split_cases(manifest: Path, out: Path, ratios: Sequence[float], seed: int, folds: int,
                use_source_split: bool, sizes: Mapping[str, int] | None = None) -> None:
    """Patient-grouped split(s) → splits.json."""
    df = pd.read_csv(manifest, dtype={"case_id": str, "patient_id": str})
    write_splits(df, out, list(ratios), seed, folds, use_source_split,
                 dict(sizes) if sizes else None)
