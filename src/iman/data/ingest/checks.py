"""The cheap first pass: every file of a case exists and decodes, sizes and frame counts fit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from iman.data.ingest.problems import (
    Box,
    CaseSource,
    Problem,
    Size,
    _CaseError,
    _Collector,
    _fmt,
)
from iman.data.io import (
    ReadError,
    binarise_mask,
    image_size,
    is_video,
    list_frames,
    probe_video,
    read_image,
    read_mask,
)

ASPECT_TOL = 0.02
"""Largest relative aspect-ratio difference for which a mask is resized to its image."""



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
