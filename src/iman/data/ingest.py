"""Ingest of a real US + CEUS dataset into the manifest and the per-case cache.

Two layouts are read: a CSV case sheet (`sheet`) and the authors' public folder layout
(`iman_public`). The ingest runs in two passes. The first checks every case cheaply (files
exist, still images and masks decode, mask sizes, frame headers, frame counts) and collects
every problem of the whole dataset; if there is any, one `DatasetError` lists them all and
nothing is written. The second pass decodes the CEUS frames, resizes everything to the working
size and writes `manifest.csv` and `cache/<case_id>.npz` into a temporary sibling directory
that replaces the previous output only when every case succeeded. See docs/data.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import jsonschema
import numpy as np
import pandas as pd
import yaml

from iman.data.io import (
    IMAGE_SUFFIXES,
    ReadError,
    binarise_mask,
    image_size,
    is_video,
    iter_video_frames,
    list_frames,
    probe_video,
    read_image,
    read_mask,
    to_grey,
)

__all__ = [
    "ASPECT_TOL",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "CaseSource",
    "DatasetError",
    "Problem",
    "default_schema_path",
    "ingest",
    "main_ingest",
    "read_case_sheet",
    "read_original",
    "scan_iman_public",
]

MANIFEST_COLUMNS = [
    "case_id", "patient_id", "source_split", "us_image", "us_mask", "ceus", "ceus_mask",
    "us_h", "us_w", "ceus_h", "ceus_w", "n_frames", "us_spacing_mm", "ceus_spacing_mm",
    "warnings", "cache",
]  # fmt: skip
LAYOUTS = ("sheet", "iman_public")
ASPECT_TOL = 0.02
"""Largest relative aspect-ratio difference for which a mask is resized to its image."""
WARNING_SEP = " | "

Box = tuple[int, int, int, int]
Size = tuple[int, int]
T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One problem of the dataset: the case, the file and what is wrong with it."""

    case: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.case}: {self.file}: {self.message}"


class DatasetError(Exception):
    """Every problem found in a dataset; the message lists all of them, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) found in the dataset:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass
class CaseSource:
    """Where one case's files are and how to read them, as given by a layout."""

    case_id: str
    patient_id: str
    source_split: str
    us_image: Path
    us_mask: Path
    ceus: Path
    ceus_mask: Path
    base: Path
    us_spacing_mm: float = 1.0
    ceus_spacing_mm: float = 1.0
    us_crop: Box | None = None
    ceus_crop: Box | None = None
    warnings: list[str] = field(default_factory=list)


class _CaseError(Exception):
    """A single problem of one file, raised inside a case check."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass
class _Collector:
    """Collects the problems of one case with file names relative to the dataset root."""

    case: str
    base: Path
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.case, _show(path, self.base), message))

    def run(self, fn: Callable[[], T]) -> T | None:
        """Result of `fn`, or None after recording the `_CaseError` it raised."""
        try:
            return fn()
        except _CaseError as fail:
            self.add(fail.path, fail.message)
            return None


@dataclass
class _Still:
    """A still image (cropped) with its 0/1 mask at the same size."""

    image: np.ndarray
    mask: np.ndarray
    warnings: list[str]


@dataclass
class _CeusPlan:
    """CEUS facts from the cheap pass: frame files (None for a video), sizes, count."""

    frames: list[Path] | None
    raw_size: Size
    size: Size
    n_frames: int
    colour: bool


def _show(path: Path, base: Path) -> str:
    """Path relative to the dataset root when inside it, else as given."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _fmt(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def default_schema_path() -> Path:
    """The case-sheet JSON schema shipped with the workflow (repository checkout)."""
    return Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "case_sheet.schema.yaml"


# --------------------------------------------------------------------------- layouts


def _schema_message(error: jsonschema.ValidationError) -> str:
    """A short sentence for one schema violation of a sheet row."""
    col = str(error.path[0]) if error.path else ""
    value = error.instance
    if error.validator == "required":
        name = re.findall(r"'([^']+)'", error.message)
        return f"missing value in required column {name[0] if name else error.message}"
    if error.validator == "type":
        return f"column {col}: {value!r} is not a {error.validator_value}"
    if error.validator in ("exclusiveMinimum", "minimum"):
        return f"column {col}: {value!r} must be > {error.validator_value}"
    if error.validator == "pattern":
        expected = error.schema.get("x-expected", error.validator_value)
        return f"column {col}: {value!r} is not {expected}"
    if error.validator == "enum":
        return f"column {col}: {value!r} is not one of {', '.join(error.validator_value)}"
    return f"column {col}: {error.message}"


def _coerce_row(record: dict[str, str], numeric: set[str]) -> dict[str, object]:
    """Sheet cells as schema instance: empty cells dropped, finite numbers parsed."""
    row: dict[str, object] = {}
    for key, text in record.items():
        text = str(text).strip()
        if not text:
            continue
        row[key] = text
        if key in numeric:
            try:
                number = float(text)
            except ValueError:
                continue
            if math.isfinite(number):
                row[key] = number
    return row


def _parse_box(text: object) -> Box | None:
    if text is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in str(text).split(","))
    return x0, y0, x1, y1


def _source_from_row(row: dict[str, object], base: Path) -> CaseSource:
    """A validated sheet row as a CaseSource (spacing default with a warning)."""
    warnings = []
    spacing = row.get("spacing_mm")
    if spacing is None:
        spacing = 1.0
        warnings.append("spacing_mm missing, 1.0 mm assumed")
    return CaseSource(
        case_id=str(row["case_id"]),
        patient_id=str(row["patient_id"]),
        source_split=str(row.get("split", "")),
        us_image=base / str(row["us_image"]),
        us_mask=base / str(row["us_mask"]),
        ceus=base / str(row["ceus"]),
        ceus_mask=base / str(row["ceus_mask"]),
        base=base,
        us_spacing_mm=float(spacing),
        ceus_spacing_mm=float(row.get("ceus_spacing_mm", spacing)),
        us_crop=_parse_box(row.get("us_crop")),
        ceus_crop=_parse_box(row.get("ceus_crop")),
        warnings=warnings,
    )


def _load_sheet_table(
    sheet: Path,
) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[Problem]]:
    """Header and (line number, cells) records of a CSV sheet; blank lines skipped.

    Short rows are padded with empty cells (missing values are caught by the schema); rows
    with more cells than the header are problems.
    """
    if not sheet.is_file():
        return [], [], [Problem("sheet", str(sheet), "case sheet missing")]
    try:
        with sheet.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            lines = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except (csv.Error, UnicodeDecodeError) as exc:
        return [], [], [Problem("sheet", str(sheet), f"not a readable CSV ({exc})")]
    if not lines:
        return [], [], [Problem("sheet", sheet.name, "empty case sheet")]
    header = [c.strip() for c in lines[0][1]]
    records, problems = [], []
    for line, cells in lines[1:]:
        if len(cells) > len(header):
            problems.append(
                Problem(f"row {line}", sheet.name, f"{len(cells)} cells, header has {len(header)}")
            )
            continue
        records.append((line, dict(zip(header, cells + [""] * (len(header) - len(cells))))))
    return header, records, problems


def _header_problems(
    columns: Iterable[str], schema: dict, sheet: Path
) -> tuple[list[Problem], bool]:
    """Problems of the sheet's header and whether they prevent reading its rows."""
    cols = list(columns)
    known, required = list(schema["properties"]), schema["required"]
    problems = [
        Problem("sheet", sheet.name, f"unknown column {c!r} (valid: {', '.join(known)})")
        for c in cols
        if c not in known
    ]
    fatal = [
        Problem("sheet", sheet.name, f"required column {c!r} missing")
        for c in required
        if c not in cols
    ]
    fatal += [
        Problem("sheet", sheet.name, f"column {c!r} appears more than once")
        for c, n in Counter(cols).items()
        if n > 1
    ]
    return problems + fatal, bool(fatal)


def read_case_sheet(
    sheet: Path, schema_path: Path | None = None
) -> tuple[list[CaseSource], list[Problem]]:
    """Cases of a CSV case sheet and every sheet-level problem (schema, duplicates)."""
    schema = yaml.safe_load((schema_path or default_schema_path()).read_text())
    header, records, problems = _load_sheet_table(sheet)
    if not header:
        return [], problems
    header_problems, fatal = _header_problems(header, schema, sheet)
    problems = header_problems + problems
    if fatal:
        return [], problems
    numeric = {k for k, v in schema["properties"].items() if v.get("type") == "number"}
    validator = jsonschema.Draft202012Validator(schema)
    sources: list[CaseSource] = []
    first_row: dict[str, int] = {}
    for line, cells in records:
        record = {k: v for k, v in cells.items() if k in schema["properties"]}
        row = _coerce_row(record, numeric)
        case = str(row.get("case_id", ""))
        label = f"{case} (row {line})" if case else f"row {line}"
        errors = sorted(validator.iter_errors(row), key=lambda e: list(e.path))
        problems += [Problem(label, sheet.name, _schema_message(e)) for e in errors]
        if case in first_row:
            problems.append(
                Problem(label, sheet.name, f"duplicate case_id (first on row {first_row[case]})")
            )
        elif case:
            first_row[case] = line
            if not errors:
                sources.append(_source_from_row(row, sheet.parent))
    return sources, problems


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


# --------------------------------------------------------------------------- per-case checks


def _require_file(path: Path) -> None:
    if not path.exists():
        raise _CaseError(path, "missing file")
    if not path.is_file():
        raise _CaseError(path, "not a file")


def _crop_box(path: Path, raw: Size, box: Box | None, name: str) -> Box | None:
    """The box to cut from an image of size `raw`; None when no crop applies.

    An image already of the box's size is taken as cropped (no-op); a box outside the
    image is an error.
    """
    if box is None:
        return None
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise _CaseError(path, f"{name} {x0},{y0},{x1},{y1} is an empty box")
    if raw == (y1 - y0, x1 - x0):
        return None
    if x1 > raw[1] or y1 > raw[0]:
        raise _CaseError(path, f"{name} {x0},{y0},{x1},{y1} lies outside the {_fmt(raw)} image")
    return box


def _cut(img: np.ndarray, box: Box | None) -> np.ndarray:
    if box is None:
        return img
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def _load_image(path: Path, box: Box | None, name: str) -> tuple[np.ndarray, Size, Box | None]:
    """Decoded image, its raw size and the crop that applies to it."""
    _require_file(path)
    try:
        img = read_image(path)
    except ReadError as exc:
        raise _CaseError(path, str(exc)) from exc
    raw = (img.shape[0], img.shape[1])
    crop = _crop_box(path, raw, box, name)
    return _cut(img, crop), raw, crop


def _load_mask(path: Path, what: str) -> tuple[np.ndarray, list[str]]:
    """0/1 mask at its stored size, with a note when its values needed interpretation."""
    _require_file(path)
    try:
        raw = read_mask(path)
    except ReadError as exc:
        raise _CaseError(path, str(exc)) from exc
    mask, note = binarise_mask(raw)
    if not mask.any():
        raise _CaseError(path, "empty mask (no foreground pixel)")
    return mask, [f"{what}: {note}"] if note else []


def _fit_mask(
    mask: np.ndarray, path: Path, raw: Size, crop: Box | None, size: Size, what: str
) -> tuple[np.ndarray, list[str]]:
    """Mask in its image's geometry: cropped like a full capture, resized when off by < 2 %."""
    if crop is not None and mask.shape == raw:
        mask = _cut(mask, crop)
    have = (mask.shape[0], mask.shape[1])
    if have == size:
        return mask, []
    aspect = (have[1] / have[0]) / (size[1] / size[0]) - 1.0
    if abs(aspect) > ASPECT_TOL:
        raise _CaseError(
            path,
            f"mask size {_fmt(have)} does not match the image {_fmt(size)} (HxW): aspect "
            f"ratios differ by {abs(aspect):.1%} (> {ASPECT_TOL:.0%})",
        )
    mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    if not mask.any():
        raise _CaseError(path, "mask empty after resizing to the image size")
    return mask, [
        f"{what}: size {_fmt(have)} resized (nearest) to the image size {_fmt(size)} "
        f"(aspect ratios differ by {abs(aspect):.1%})"
    ]


def _load_us(src: CaseSource, col: _Collector) -> _Still | None:
    """US image (cropped) and its mask in the same geometry; problems go to `col`."""
    image = col.run(lambda: _load_image(src.us_image, src.us_crop, "us_crop"))
    mask = col.run(lambda: _load_mask(src.us_mask, "us_mask"))
    if image is None or mask is None:
        return None
    img, raw, crop = image
    size = (img.shape[0], img.shape[1])
    fitted = col.run(lambda: _fit_mask(mask[0], src.us_mask, raw, crop, size, "us_mask"))
    if fitted is None:
        return None
    return _Still(img, fitted[0], mask[1] + fitted[1])


def _frame_sizes(frames: list[Path], col: _Collector) -> list[Size] | None:
    sizes, ok = [], True
    for frame in frames:
        try:
            sizes.append(image_size(frame))
        except ReadError as exc:
            col.add(frame, str(exc))
            ok = False
    return sizes if ok else None


def _probe_ceus(
    src: CaseSource, col: _Collector
) -> tuple[list[Path] | None, Size, int, bool] | None:
    """Frame files (folder) or None (video), majority raw size, frame count, colour.

    None when unreadable frames were already recorded in `col`.
    """
    path = src.ceus
    if not path.exists():
        raise _CaseError(path, "missing CEUS video or frame folder")
    if path.is_dir():
        frames = list_frames(path)
        if not frames:
            raise _CaseError(path, "frame folder holds no image files")
        sizes = _frame_sizes(frames, col)
        if sizes is None:
            return None
        raw = Counter(sizes).most_common(1)[0][0]
        return frames, raw, len(frames), False
    if not is_video(path):
        raise _CaseError(path, "CEUS must be a video (.mp4/.avi/.mov/.mkv/.wmv) or a frame folder")
    try:
        info = probe_video(path)
    except ReadError as exc:
        raise _CaseError(path, str(exc)) from exc
    return None, (info.height, info.width), info.n_frames, info.colour


def _plan_ceus(src: CaseSource, min_frames: int, col: _Collector) -> _CeusPlan | None:
    """CEUS plan of the cheap pass (crop checked, frame count against `min_frames`)."""
    probed = _probe_ceus(src, col)
    if probed is None:
        return None
    frames, raw, n_frames, colour = probed
    crop = _crop_box(src.ceus, raw, src.ceus_crop, "ceus_crop")
    size = raw if crop is None else (crop[3] - crop[1], crop[2] - crop[0])
    if n_frames < min_frames:
        raise _CaseError(src.ceus, f"{n_frames} frame(s), fewer than min_frames = {min_frames}")
    return _CeusPlan(frames, raw, size, n_frames, colour)


def _load_ceus_mask(src: CaseSource, plan: _CeusPlan, col: _Collector) -> _Still | None:
    mask = col.run(lambda: _load_mask(src.ceus_mask, "ceus_mask"))
    if mask is None:
        return None
    crop = None if plan.size == plan.raw_size else src.ceus_crop
    fitted = col.run(
        lambda: _fit_mask(mask[0], src.ceus_mask, plan.raw_size, crop, plan.size, "ceus_mask")
    )
    if fitted is None:
        return None
    return _Still(np.zeros((0, 0), np.uint8), fitted[0], mask[1] + fitted[1])


def _check_case(src: CaseSource, min_frames: int) -> tuple[_CeusPlan | None, list[Problem]]:
    """Cheap pass over one case: every problem of its files, and the CEUS plan."""
    col = _Collector(src.case_id, src.base)
    _load_us(src, col)
    plan = col.run(lambda: _plan_ceus(src, min_frames, col))
    if plan is None:
        col.run(lambda: _load_mask(src.ceus_mask, "ceus_mask"))
    else:
        _load_ceus_mask(src, plan, col)
    return plan, col.problems


# --------------------------------------------------------------------------- building


def _to_size(img: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _mask_to_size(mask: np.ndarray, size: int) -> np.ndarray:
    small = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return (small >= 0.5).astype(np.uint8)


def _us_array(img: np.ndarray, size: int, channels: int) -> tuple[np.ndarray, list[str]]:
    """US at the working size: (S, S) grey, or (3, S, S) RGB when 3 channels are asked."""
    if channels == 3:
        rgb = img[:, :, ::-1] if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        return np.ascontiguousarray(_to_size(rgb, size).transpose(2, 0, 1)), []
    grey, colour = to_grey(img)
    note = ["us_image: colour content, converted with luminance weights"] if colour else []
    return _to_size(grey, size), note


def _folder_frames(plan: _CeusPlan) -> Iterator[tuple[np.ndarray, str, bool]]:
    """Decoded grey frames of a folder (3-channel frames by luminance), name, colour flag."""
    for path in plan.frames or []:
        try:
            img = read_image(path)
        except ReadError as exc:
            raise _CaseError(path, str(exc)) from exc
        grey, colour = to_grey(img, luminance=True)
        yield grey, path.name, colour


def _video_frames(src: CaseSource, plan: _CeusPlan) -> Iterator[tuple[np.ndarray, str, bool]]:
    try:
        for index, grey in enumerate(iter_video_frames(src.ceus)):
            yield grey, f"frame {index}", plan.colour
    except ReadError as exc:
        raise _CaseError(src.ceus, str(exc)) from exc


def _ceus_stack(
    src: CaseSource, plan: _CeusPlan, size: int, min_frames: int
) -> tuple[np.ndarray, list[str]]:
    """Every CEUS frame, majority-sized, cropped and resized: (F, S, S) uint8 and warnings."""
    crop = None if plan.size == plan.raw_size else src.ceus_crop
    source = _folder_frames(plan) if plan.frames is not None else _video_frames(src, plan)
    stack, odd, n_colour = [], [], 0
    for grey, name, colour in source:
        n_colour += colour
        if grey.shape != plan.raw_size:
            odd.append(f"{name} ({_fmt(grey.shape)})")
            grey = cv2.resize(grey, plan.raw_size[::-1], interpolation=cv2.INTER_AREA)
        stack.append(_to_size(_cut(grey, crop), size))
    if len(stack) < min_frames:
        raise _CaseError(src.ceus, f"{len(stack)} decodable frame(s), fewer than {min_frames}")
    notes = []
    if n_colour:
        notes.append(
            f"ceus: colour content in {n_colour}/{len(stack)} frames, "
            "converted with luminance weights"
        )
    if odd:
        notes.append(
            f"ceus: {len(odd)} frame(s) of another size resized to the majority size "
            f"{_fmt(plan.raw_size)}: {', '.join(odd)}"
        )
    return np.stack(stack), notes


def _nth_video_frame(src: CaseSource, index: int) -> np.ndarray:
    """Decoded frame `index` of the case's CEUS video (grey luma, as in the cache)."""
    frames = iter_video_frames(src.ceus)
    try:
        for k, grey in enumerate(frames):
            if k == index:
                return grey
    except ReadError as exc:
        raise _CaseError(src.ceus, str(exc)) from exc
    finally:
        frames.close()
    raise _CaseError(src.ceus, f"video has no decodable frame {index}")


def _original_ceus(src: CaseSource, frame: int | None, col: _Collector) -> np.ndarray | None:
    """CEUS frame `frame` (default the middle) at the majority size, cropped; see read_original."""
    plan = _plan_ceus(src, 1, col)
    if plan is None:
        return None
    index = plan.n_frames // 2 if frame is None else frame
    if index < 0 or (plan.frames is not None and index >= plan.n_frames):
        raise _CaseError(src.ceus, f"no frame {index} (0-based) in {plan.n_frames} frame(s)")
    if plan.frames is not None:
        path = plan.frames[index]
        try:
            grey = to_grey(read_image(path), luminance=True)[0]
        except ReadError as exc:
            raise _CaseError(path, str(exc)) from exc
    else:
        grey = _nth_video_frame(src, index)
    if grey.shape != plan.raw_size:
        grey = cv2.resize(grey, plan.raw_size[::-1], interpolation=cv2.INTER_AREA)
    return _cut(grey, None if plan.size == plan.raw_size else src.ceus_crop)


def read_original(src: CaseSource, modality: str, frame: int | None = None) -> np.ndarray:
    """A case's US image or CEUS frame at its original (cropped) size, uint8 grey (H, W).

    Decoded, made grey, size-normalised and cropped exactly as the ingest does before it
    resizes to the working size, so ``cv2.resize(..., (S, S), interpolation=cv2.INTER_AREA)``
    gives the cached ``us`` (grey US cache) or ``ceus[frame]``. `frame` is the 0-based CEUS
    frame (the cache's index; default the middle one, ``n // 2`` of the frames counted by the
    cheap pass); it is ignored for ``us``. Raises `DatasetError` naming the case and the file.
    """
    if modality not in ("us", "ceus"):
        raise ValueError(f"modality must be 'us' or 'ceus', got {modality!r}")
    col = _Collector(src.case_id, src.base)
    if modality == "us":
        loaded = col.run(lambda: _load_image(src.us_image, src.us_crop, "us_crop"))
        image = None if loaded is None else to_grey(loaded[0])[0]
    else:
        image = col.run(lambda: _original_ceus(src, frame, col))
    if image is None or col.problems:
        raise DatasetError(col.problems)
    return image


def _build_case(
    src: CaseSource, plan: _CeusPlan, size: int, min_frames: int, us_channels: int
) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """Full pass over one case: manifest row and cache arrays (raises `_CaseError`)."""
    col = _Collector(src.case_id, src.base)
    us = _load_us(src, col)
    ceus_mask = _load_ceus_mask(src, plan, col)
    if us is None or ceus_mask is None:
        first = col.problems[0]
        raise _CaseError(src.base / first.file, first.message)
    us_small, us_notes = _us_array(us.image, size, us_channels)
    frames, ceus_notes = _ceus_stack(src, plan, size, min_frames)
    arrays = {
        "us": us_small,
        "ceus": frames,
        "us_mask": _mask_to_size(us.mask, size),
        "ceus_mask": _mask_to_size(ceus_mask.mask, size),
        "us_mask_orig": us.mask.astype(np.uint8),
        "ceus_mask_orig": ceus_mask.mask.astype(np.uint8),
        "us_size": np.asarray(us.mask.shape, dtype=np.int64),
        "ceus_size": np.asarray(plan.size, dtype=np.int64),
        "us_spacing_mm": np.asarray(src.us_spacing_mm, dtype=np.float64),
        "ceus_spacing_mm": np.asarray(src.ceus_spacing_mm, dtype=np.float64),
    }
    notes = src.warnings + us.warnings + us_notes + ceus_mask.warnings + ceus_notes
    notes += [f"{k}: lesion vanishes at the working size {size}" for k in ("us_mask", "ceus_mask")
              if not arrays[k].any()]  # fmt: skip
    row = {
        "case_id": src.case_id,
        "patient_id": src.patient_id,
        "source_split": src.source_split,
        "us_image": str(src.us_image.absolute()),
        "us_mask": str(src.us_mask.absolute()),
        "ceus": str(src.ceus.absolute()),
        "ceus_mask": str(src.ceus_mask.absolute()),
        "us_h": us.mask.shape[0],
        "us_w": us.mask.shape[1],
        "ceus_h": plan.size[0],
        "ceus_w": plan.size[1],
        "n_frames": int(frames.shape[0]),
        "us_spacing_mm": src.us_spacing_mm,
        "ceus_spacing_mm": src.ceus_spacing_mm,
        "warnings": WARNING_SEP.join(notes),
        "cache": f"cache/{src.case_id}.npz",
    }
    return row, arrays


# --------------------------------------------------------------------------- output


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
    reader = read_case_sheet if layout == "sheet" else scan_iman_public
    sources, problems = reader(root)
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
