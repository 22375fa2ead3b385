"""Readers for the raw files of a dataset: still images, masks, frame folders and videos.

Everything returns uint8 numpy arrays in (H, W) order. Readers raise `ReadError` for a file
that exists but cannot be read, so that the ingest can collect problems instead of stopping
at the first one. Image sizes come from the file header alone (Pillow reads PNG, JPEG, BMP and
TIFF headers without decoding pixels), so that the sizes of every CEUS frame can be checked
before any pixel data is decoded.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from iman.errors import UserError

__all__ = [
    "COLOUR_FRACTION",
    "COLOUR_TOL",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "ReadError",
    "VideoInfo",
    "binarise_mask",
    "image_size",
    "is_video",
    "iter_video_frames",
    "list_frames",
    "numeric_key",
    "probe_video",
    "read_image",
    "read_mask",
    "to_grey",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".wmv")
COLOUR_TOL = 12
"""Channel spread (grey levels) above which a pixel counts as coloured."""
COLOUR_FRACTION = 0.001
"""Fraction of coloured pixels above which an image has colour content (JPEG/video chroma
noise on grey content stays below it)."""

_HEADER_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
"""Pillow formats whose headers :func:`image_size` reads (a JPEG may come back as "MPO")."""


class ReadError(UserError):
    """A file exists but cannot be read as the expected kind (corrupt, truncated, empty)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a cheap look at a video tells: declared frame count, frame size, colour."""

    n_frames: int
    height: int
    width: int
    colour: bool


def is_video(path: Path) -> bool:
    """True when the file name has a video suffix."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def numeric_key(path: Path) -> tuple[tuple[object, ...], str]:
    """Natural sort key: digit runs compare as numbers, so `10.png` sorts after `9.png`.

    Parts alternate text/number, so two keys always compare like with like.
    """
    parts = re.split(r"(\d+)", path.stem)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), path.name


def list_frames(folder: Path) -> list[Path]:
    """Image files of a frame folder (hidden files skipped) in numeric order."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=numeric_key)


def _claims_format(head: bytes) -> str | None:
    """The first of :data:`_HEADER_FORMATS` whose Pillow plugin accepts this file signature."""
    Image.init()
    for fmt in _HEADER_FORMATS:
        accept = Image.OPEN[fmt][1] if fmt in Image.OPEN else None
        if accept is not None and accept(head):
            return fmt
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of a PNG, JPEG, BMP or TIFF image, read from its header only (Pillow)."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ReadError(f"cannot open: {exc.strerror}") from exc
    with fh:
        try:
            with warnings.catch_warnings():  # a damaged TIFF warns, then raises below
                warnings.simplefilter("ignore")
                with Image.open(fh, formats=_HEADER_FORMATS) as img:
                    width, height = img.size
        except Image.DecompressionBombError as exc:
            raise ReadError(f"image header declares an implausibly large image: {exc}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            fh.seek(0)
            claimed = _claims_format(fh.read(16))
            if claimed is None:
                kind = path.suffix.lower()[1:].upper() or "image"
                raise ReadError(f"not a {kind} file (bad signature)") from exc
            raise ReadError(f"corrupt or truncated {claimed} header") from exc
    if min(height, width) <= 0:
        raise ReadError("image of zero size")
    return int(height), int(width)


def read_image(path: Path) -> np.ndarray:
    """Decode an image to uint8, (H, W) grey or (H, W, 3) BGR; alpha is dropped."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ReadError("unreadable or corrupt image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ReadError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def _channel_max(img: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the colour channels (cv2: much faster than a strided reduce)."""
    b, g, r = cv2.split(img)
    return cv2.max(cv2.max(b, g), r)


def _channel_min(img: np.ndarray) -> np.ndarray:
    b, g, r = cv2.split(img)
    return cv2.min(cv2.min(b, g), r)


def to_grey(img: np.ndarray, luminance: bool = False) -> tuple[np.ndarray, bool]:
    """Grey version of an image and whether it had colour content.

    Grey content stored as 3 channels gives one channel back unchanged; real colour (a colour
    map, overlays) is converted with the luminance weights of `cv2.COLOR_BGR2GRAY`.
    `luminance=True` converts every 3-channel image with those weights (equal to the channel
    for exactly grey content), so the frames of one video are all mapped alike.
    """
    if img.ndim == 2:
        return img, False
    spread = cv2.subtract(_channel_max(img), _channel_min(img))
    colour = np.count_nonzero(spread > COLOUR_TOL) > COLOUR_FRACTION * spread.size
    if colour or luminance:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), bool(colour)
    return np.ascontiguousarray(img[:, :, 0]), False


def read_mask(path: Path) -> np.ndarray:
    """Raw mask values as one channel (the maximum over colour channels)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ReadError("unreadable or corrupt mask image")
    if img.ndim == 3:
        colour = np.ascontiguousarray(img[:, :, :3])
        img = _channel_max(colour) if img.shape[2] >= 3 else img[:, :, 0]
    return img


def binarise_mask(raw: np.ndarray) -> tuple[np.ndarray, str | None]:
    """0/1 uint8 mask and a note when the stored values were not a clean 0/1 or 0/255.

    Two-valued masks {0, v} map v to 1. Masks with more values are lossy (JPEG) copies:
    8-bit masks reaching 128 or more are thresholded at 128; masks whose maximum stays below
    128 (label-index masks such as 0..5) are thresholded at half their maximum.
    """
    values = np.unique(raw)
    if values.size <= 2 and values[0] == 0:
        mask = (raw > 0).astype(np.uint8)
        top = int(values[-1])
        note = None if top in (0, 1, 255) else f"values {{0, {top}}} read as 0/1"
        return mask, note
    top = int(values[-1])
    if raw.dtype == np.uint8 and top >= 128:
        return (raw >= 128).astype(np.uint8), (
            f"{values.size} distinct values (lossy/JPEG mask), binarised at >= 128"
        )
    threshold = top / 2
    return (raw >= threshold).astype(np.uint8), (
        f"values {int(values[0])}..{top}, binarised at >= {threshold:g} (half the maximum)"
    )


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise ReadError(f"unreadable or corrupt video ({exc.__class__.__name__})") from exc
    if not container.streams.video:
        container.close()
        raise ReadError("no video stream")
    return container


def probe_video(path: Path) -> VideoInfo:
    """Frame count (from the container, else by counting packets), size, colour of frame 0."""
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        n_frames = int(stream.frames or 0)
        if n_frames == 0:
            n_frames = sum(1 for pkt in container.demux(stream) if pkt.size)
            container.seek(0)
        first = next(container.decode(stream), None)
        if first is None:
            raise ReadError("video has no decodable frame")
        _, colour = to_grey(first.to_ndarray(format="bgr24"))
        return VideoInfo(n_frames, int(first.height), int(first.width), colour)
    except av.error.FFmpegError as exc:
        raise ReadError(f"corrupt video ({exc.__class__.__name__})") from exc
    finally:
        container.close()


def iter_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video as uint8 grey (the luma plane at full range), in order."""
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="gray")
    except av.error.FFmpegError as exc:
        raise ReadError(f"corrupt video ({exc.__class__.__name__})") from exc
    finally:
        container.close()
