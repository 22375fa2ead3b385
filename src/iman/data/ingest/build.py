"""Validate a dataset, build every case into a temporary sibling directory and swap it in
only when every case succeeded; the `iman ingest` command."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from iman.data.ingest.arrays import MANIFEST_COLUMNS, _build_case
from iman.data.ingest.checks import _CeusPlan, _check_case
from iman.data.ingest.layouts import LAYOUTS, read_layout
from iman.data.ingest.problems import (
    WARNING_SEP,
    CaseSource,
    DatasetError,
    Problem,
    _CaseError,
    _show,
)


def _commit(tmp: Path, out_dir: Path) -> None:
    """Swap the finished output in: old manifest out first, new manifest in last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    old = tmp / "previous"
    old.mkdir()
    for name in ("manifest.csv", "cache"):
        if (out_dir / name).exists():
            os.replace(out_dir / name, old / name)
    os.replace(tmp / "cache", out_dir / "cache")
    os.replace(tmp / "manifest.csv", out_dir / "manifest.csv")
    shutil.rmtree(tmp)



def _write_all(
    pairs: list[tuple[CaseSource, _CeusPlan]],
    tmp: Path,
    size: int,
    min_frames: int,
    us_channels: int,
) -> pd.DataFrame:
    """Build every case into `tmp`; raise one DatasetError if any case fails."""
    (tmp / "cache").mkdir()
    rows, problems = [], []
    for src, plan in pairs:
        try:
            row, arrays = _build_case(src, plan, size, min_frames, us_channels)
        except _CaseError as fail:
            problems.append(Problem(src.case_id, _show(fail.path, src.base), fail.message))
            continue
        if not problems:
            np.savez_compressed(tmp / str(row["cache"]), **arrays)
        rows.append(row)
    if problems:
        raise DatasetError(problems)
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest.to_csv(tmp / "manifest.csv", index=False)
    return manifest



def _check_args(layout: str, size: int, min_frames: int, us_channels: int) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if size < 1 or min_frames < 1:
        raise ValueError(f"size and min_frames must be >= 1 (got {size}, {min_frames})")
    if us_channels not in (1, 3):
        raise ValueError(f"us_channels must be 1 or 3 (got {us_channels})")



def ingest(
    layout: str,
    root: Path,
    out_dir: Path,
    size: int,
    min_frames: int = 1,
    us_channels: int = 1,
) -> pd.DataFrame:
    """Validate a dataset, then write `out_dir/manifest.csv` and `out_dir/cache/*.npz`.

    `root` is the case sheet (`sheet`) or the `datasets` folder (`iman_public`). Raises
    `DatasetError` listing every problem; on error the previous output is left untouched.
    """
    _check_args(layout, size, min_frames, us_channels)
    root, out_dir = Path(root), Path(out_dir)
    sources, problems = read_layout(layout, root)
    pairs = []
    for src in sources:
        plan, case_problems = _check_case(src, min_frames)
        problems += case_problems
        if plan is not None:
            pairs.append((src, plan))
    if not sources and not problems:
        problems.append(Problem("dataset", str(root), "no cases"))
    if problems:
        raise DatasetError(problems)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.ingest-", dir=out_dir.parent))
    try:
        manifest = _write_all(pairs, tmp, size, min_frames, us_channels)
        _commit(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest



def main_ingest(argv: list[str] | None = None) -> int:
    """`iman ingest`: build manifest + cache; exit 2 with the problem list on bad data."""
    parser = argparse.ArgumentParser(prog="iman ingest", description=main_ingest.__doc__)
    parser.add_argument("--layout", choices=LAYOUTS, required=True)
    parser.add_argument("--root", type=Path, required=True, help="case sheet or datasets/")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--size", type=int, default=64, help="working size S (pixels)")
    parser.add_argument("--min-frames", type=int, default=1)
    parser.add_argument("--us-channels", type=int, choices=(1, 3), default=1)
    args = parser.parse_args(argv)
    try:
        manifest = ingest(
            args.layout, args.root, args.out, args.size, args.min_frames, args.us_channels
        )
    except DatasetError as err:
        print(err, file=sys.stderr)
        return 2
    notes = [w for text in manifest["warnings"] if text for w in text.split(WARNING_SEP)]
    n_cases_warned = int((manifest["warnings"] != "").sum())
    print(
        f"ingested {len(manifest)} cases ({args.layout}, {int(manifest['n_frames'].sum())} "
        f"CEUS frames) into {args.out} at {args.size}x{args.size}; "
        f"{len(notes)} warning(s) in {n_cases_warned} case(s)"
    )
    return 0
