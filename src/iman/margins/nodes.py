"""Margin files of the margins rules: the MMG on a node's predictions, on ground truth (oracle
control) and another patient's margins (mismatched control).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from iman.data.split import read_split
from iman.paths import case_file

__all__ = ["make_margins_node", "make_mismatched_margins", "make_oracle_margins"]


def make_margins_node(pred_file: Path, manifest_file: Path, modality: str, kernel: int,
                      filt: str, threshold: float, out_file: Path) -> None:
    """MMG on one node's predictions of every case → margins npz (working resolution)."""
    import pandas as pd

    from iman.margins.mmg import make_margins, original_sizes

    sizes = original_sizes(pd.read_csv(manifest_file, dtype={"case_id": str}), modality)
    with np.load(pred_file) as npz:
        preds = {k: npz[k].astype(np.float32) for k in npz.files}
    _save_margins(make_margins(preds, sizes, kernel, filt, threshold=threshold), out_file)



def _save_margins(margins: dict[str, np.ndarray], out_file: Path) -> None:
    """Write a margins npz atomically (no half-written file under its final name)."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp.npz")
    np.savez_compressed(tmp, **margins)
    tmp.replace(out_file)



def make_oracle_margins(cache_dir: Path, manifest_file: Path, modality: str, kernel: int,
                        filt: str, threshold: float, out_file: Path) -> None:
    """MMG on every case's ground-truth ``modality`` mask → margins npz (oracle control).

    A diagnostic upper bound, never a method: the margins a branch would receive if the other
    branch predicted its lesion perfectly (training and test cases alike).
    """
    import pandas as pd

    from iman.margins.mmg import make_margins, original_sizes

    manifest = pd.read_csv(manifest_file, dtype={"case_id": str})
    masks = {}
    for case in manifest["case_id"]:
        with np.load(case_file(cache_dir, case)) as c:
            masks[case] = c[f"{modality}_mask"].astype(np.float32)
    sizes = original_sizes(manifest, modality)
    _save_margins(make_margins(masks, sizes, kernel, filt, threshold=threshold), out_file)



def make_mismatched_margins(margins_file: Path, manifest_file: Path, splits_file: Path,
                            fold: int, seed: int, out_file: Path, donors_file: Path) -> None:
    """Each case receives the margins of another patient's case of its own split subset
    (:func:`iman.data.split.cross_patient_derangement`, seeded): the negative control.

    ``donors_file``: the case → donor map (JSON), for inspection and the tests.
    """
    import pandas as pd

    from iman.data.split import cross_patient_derangement

    manifest = pd.read_csv(manifest_file, dtype={"case_id": str, "patient_id": str})
    patients = dict(zip(manifest["case_id"], manifest["patient_id"]))
    split = read_split(splits_file, fold)
    with np.load(margins_file) as npz:
        margins = {k: npz[k] for k in npz.files}
    out: dict[str, np.ndarray] = {}
    donors: dict[str, str] = {}
    for i, subset in enumerate(("train", "val", "test")):
        if split[subset]:
            donors.update(cross_patient_derangement(split[subset], patients, seed * 7 + i))
    for case, donor in donors.items():
        out[case] = margins[donor]
    _save_margins(out, out_file)
    Path(donors_file).write_text(json.dumps(donors, indent=1, sort_keys=True))
