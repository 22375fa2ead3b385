"""Which CEUS frames feed the network: per-case indices written to a JSON file.

``middle`` (the paper): the middle frame ``c = n // 2`` and neighbours every ``step`` frames,
``c + step * (i - T // 2)``, clamped to the video; 80 frames, T = 5, step 3 → 34..46.
``keyframes`` (CEUSegNet's idea): the T frames with the largest grey-level change from their
predecessor, returned in temporal order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from iman.names import STRATEGIES
from iman.paths import case_file

__all__ = ["frame_picks", "keyframe_indices", "middle_indices", "select_frames", "write_frames"]


def middle_indices(n_frames: int, T: int, step: int) -> list[int]:
    """Middle frame and ``T // 2`` neighbours on each side, ``step`` apart, clamped."""
    if n_frames < 1:
        raise ValueError("a video needs at least one frame")
    c = n_frames // 2
    return [int(min(max(c + step * (i - T // 2), 0), n_frames - 1)) for i in range(T)]


def keyframe_indices(frames: np.ndarray, T: int) -> list[int]:
    """Frames with the largest mean absolute change from the previous frame (sorted)."""
    n = frames.shape[0]
    if n <= T:
        return [min(i, n - 1) for i in range(T)]
    f = frames.astype(np.float32)
    change = np.concatenate([[0.0], np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))])
    top = np.argsort(-change, kind="stable")[:T]
    return sorted(int(i) for i in top)


def select_frames(frames: np.ndarray, strategy: str, T: int, step: int) -> list[int]:
    """Indices for one case's frame stack ``(F, H, W)``."""
    if strategy == "middle":
        return middle_indices(frames.shape[0], T, step)
    if strategy == "keyframes":
        return keyframe_indices(frames, T)
    raise ValueError(f"unknown frame strategy {strategy!r}; choose from {STRATEGIES}")


def write_frames(cache_files: dict[str, Path], out: Path, strategy: str, T: int,
                 step: int) -> dict[str, list[int]]:
    """Select frames for every cached case and write ``{case_id: [indices]}``."""
    chosen = {}
    for case, path in sorted(cache_files.items()):
        with np.load(path) as npz:
            chosen[case] = select_frames(npz["ceus"], strategy, T, step)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(chosen, indent=1))
    return chosen


def frame_picks(manifest: Path, cache_dir: Path, out: Path, strategy: str, T: int,
                step: int) -> None:
    """Frame indices of every cached case for one (T, step, strategy)."""
    df = pd.read_csv(manifest, dtype={"case_id": str})
    write_frames({c: case_file(cache_dir, c) for c in df["case_id"]}, out, strategy, T, step)
