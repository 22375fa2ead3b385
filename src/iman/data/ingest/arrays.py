"""The second pass: a checked case's arrays at the working size, and an original image for
`iman predict`'s overlays."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from iman.data.ingest.checks import (
    _CeusPlan,
    _cut,
    _load_ceus_mask,
    _load_image,
    _load_us,
    _plan_ceus,
)
from iman.data.ingest.problems import (
    WARNING_SEP,
    CaseSource,
    DatasetError,
    _CaseError,
    _Collector,
    _fmt,
)
from iman.data.io import (
    ReadError,
    iter_video_frames,
    read_image,
    to_grey,
)
from iman.names import MODALITIES

MANIFEST_COLUMNS = [
    "case_id", "patient_id", "source_split", "us_image", "us_mask", "ceus", "ceus_mask",
    "us_h", "us_w", "ceus_h", "ceus_w", "n_frames", "us_spacing_mm", "ceus_spacing_mm",
    "warnings", "cache",
]  # fmt: skip



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
    if modality not in MODALITIES:
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
