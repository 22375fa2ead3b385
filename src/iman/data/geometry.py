"""Working-size geometry shared by the data checks and the MMG: how a kernel given in
original acquisition pixels becomes an element at the working resolution.

It lives in the data stage, the earliest that needs it (the fit check, :mod:`iman.data.protocol`,
compares MMG kernels with the lesions before anything trains); :mod:`iman.margins.mmg` uses it,
so imports flow one way (data → margins).
"""

from __future__ import annotations

import math

__all__ = ["kernel_axes", "nearest_odd"]


def nearest_odd(x: float) -> int:
    """The odd integer nearest to ``x`` (ties go up), at least 1."""
    return max(1, 2 * math.floor((x - 1.0) / 2.0 + 0.5) + 1)


def kernel_axes(kernel_px: float, orig_size: tuple[int, int], work_size: int) -> tuple[int, int]:
    """Element size ``(kh, kw)`` in working pixels for a ``kernel_px`` circle in original space."""
    h, w = orig_size
    if kernel_px <= 0 or h <= 0 or w <= 0 or work_size <= 0:
        raise ValueError(f"need positive sizes, got k={kernel_px}, orig={orig_size}, S={work_size}")
    return nearest_odd(kernel_px * work_size / h), nearest_odd(kernel_px * work_size / w)
