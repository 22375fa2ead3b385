"""The `iman_public` layout: the authors' public folder layout (`datasets/`)."""

from __future__ import annotations

from pathlib import Path

from iman.data.ingest.problems import CaseSource, Problem, _Collector
from iman.data.io import (
    IMAGE_SUFFIXES,
)

_PUBLIC_WARNINGS = [
    "iman_public layout has no patient information: patient_id = case_id",
    "iman_public layout has no pixel spacing: 1.0 mm assumed",
]



def _numbered(folder: Path, want_dirs: bool, col: _Collector) -> dict[int, Path]:
    """Entries of a folder keyed by their numeric name (non-numeric names are problems)."""
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.is_dir() != want_dirs:
            continue
        if not want_dirs and entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = entry.name if want_dirs else entry.stem
        if not stem.isdigit():
            col.add(entry, "name is not a numeric case id")
        elif int(stem) in found:
            col.add(entry, f"second file for case {int(stem):05d} ({found[int(stem)].name})")
        else:
            found[int(stem)] = entry
    return found



def scan_iman_public(root: Path) -> tuple[list[CaseSource], list[Problem]]:
    """Cases of the authors' `datasets` folder (us_small/ + ceus_frames/, train and test)."""
    col = _Collector("dataset", root)
    if not (root / "us_small").is_dir() or not (root / "ceus_frames").is_dir():
        col.add(root, "not the iman_public `datasets` folder (needs us_small/ and ceus_frames/)")
        return [], col.problems
    sources: list[CaseSource] = []
    seen: dict[str, str] = {}
    for split in ("train", "test"):
        us_dir, ce_dir = root / "us_small" / split, root / "ceus_frames" / split
        us_img = _numbered(us_dir / "img", False, col)
        us_lab = _numbered(us_dir / "labelcol", False, col)
        ce_img = _numbered(ce_dir / "img", True, col)
        ce_lab = _numbered(ce_dir / "labelcol", False, col)
        for num in sorted(set(us_img) | set(ce_img)):
            case = f"{num:05d}"
            if case in seen:
                col.problems.append(
                    Problem(case, f"us_small/{split}", f"duplicate case id (also in {seen[case]})")
                )
                continue
            seen[case] = split
            sources.append(
                CaseSource(
                    case_id=case,
                    patient_id=case,
                    source_split=split,
                    us_image=us_img.get(num, us_dir / "img" / f"{case}.jpg"),
                    us_mask=us_lab.get(num, us_dir / "labelcol" / f"{case}.png"),
                    ceus=ce_img.get(num, ce_dir / "img" / str(num)),
                    ceus_mask=ce_lab.get(num, ce_dir / "labelcol" / f"{case}.png"),
                    base=root,
                    warnings=list(_PUBLIC_WARNINGS),
                )
            )
    if not sources and not col.problems:
        col.add(root, "no cases found under us_small/{train,test} or ceus_frames/{train,test}")
    return sources, col.problems
