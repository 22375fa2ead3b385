"""Synthetic US + CEUS breast-lesion phantom, written in the ``sheet`` layout.

The real Breast-US-CEUS data set is private, so the workflow's default data set is this
phantom: per case one B-mode US image, one CEUS video (PNG frame folder or MP4), and the two
aligned ground-truth masks (US = lesion core; CEUS = core plus a larger infiltration zone).
Everything is deterministic from the seed; see ``docs/phantom.md`` for the physics-inspired
model and its parameters.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np

__all__ = [
    "SHEET_COLUMNS",
    "CaseSpec",
    "RenderedCase",
    "gamma_variate",
    "generate",
    "render_case",
    "sample_specs",
]

SHEET_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "us_image",
    "us_mask",
    "ceus",
    "ceus_mask",
    "spacing_mm",
    "ceus_crop",
    "us_crop",
)
VIDEO_FORMATS = ("frames", "mp4", "mixed")
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1]
ISOECHOIC_CONTRAST = 0.85
INFILTRATION_TIMING = 0.25
"""How far the infiltration zone's arrival, time to peak and washout go from the parenchyma's
(0) towards the core's (1)."""


@dataclass(frozen=True)
class CaseSpec:
    """Sampled parameters of one case (sizes are fractions of the image width/height)."""

    case_id: str
    patient_id: str
    index: int
    # breast anatomy (shared by a patient's cases)
    skin_depth: float
    fat_depth: float
    gland_depth: float
    gland_echo: float
    fat_echo: float
    attenuation: float
    fov: str
    # lesion core
    cx: float
    cy: float
    radius: float
    aspect: float
    angle: float
    lobulation: tuple[float, ...]
    lobe_phase: tuple[float, ...]
    spikes: int
    contrast: float
    halo: float
    posterior: float
    # CEUS
    infiltration: float
    n_vessels: int
    lesion_peak: float
    infiltration_ratio: float
    background_peak: float
    arrival: float
    time_to_peak: float
    washout: float
    necrosis: int
    boundary_blur: float
    bubble_shape: float


@dataclass(frozen=True)
class RenderedCase:
    """Pixel arrays of one case: US (H, W) uint8, CEUS (F, H, W) uint8, bool masks (H, W)."""

    us: np.ndarray
    ceus: np.ndarray
    us_mask: np.ndarray
    ceus_mask: np.ndarray


def gamma_variate(t: np.ndarray, arrival: np.ndarray | float, time_to_peak: np.ndarray | float,
                  alpha: np.ndarray | float) -> np.ndarray:
    """Normalised gamma-variate bolus curve: 0 before ``arrival``, peak 1 at arrival + ttp.

    ``g(τ) = τ^α · exp(α (1 − τ))`` with ``τ = (t − arrival) / time_to_peak``; larger ``α``
    gives a sharper rise and a faster washout, the classic indicator-dilution model of CEUS
    time-intensity curves.
    """
    tau = (np.asarray(t, dtype=np.float32) - arrival) / time_to_peak
    safe = np.maximum(tau, 1e-6)
    curve = np.exp(alpha * (np.log(safe) + 1.0 - safe))
    return np.where(tau > 0, curve, 0.0).astype(np.float32)


# ----------------------------------------------------------------------------------------
# sampling


def _patient_anatomy(rng: np.random.Generator) -> dict[str, float | str]:
    """Breast composition shared by all cases of one patient."""
    skin = float(rng.uniform(0.025, 0.045))
    fat = skin + float(rng.uniform(0.08, 0.2))
    gland = fat + float(rng.uniform(0.4, 0.55))
    return {
        "skin_depth": skin,
        "fat_depth": fat,
        "gland_depth": min(gland, 0.9),
        "gland_echo": float(rng.uniform(0.8, 1.2)),
        "fat_echo": float(rng.uniform(0.3, 0.5)),
        "attenuation": float(rng.uniform(0.6, 1.6)),
        "fov": str(rng.choice(["full", "linear", "trapezoid"])),
    }


def _lesion(rng: np.random.Generator, anatomy: dict[str, float | str]) -> dict[str, object]:
    """Lesion core, its US appearance and its CEUS perfusion parameters."""
    radius = float(rng.uniform(0.04, 0.125))  # diameter 8-25 % of the width
    fat = float(anatomy["fat_depth"])
    gland = float(anatomy["gland_depth"])
    cy_lo, cy_hi = fat + 0.5 * radius, max(fat + 0.5 * radius + 0.01, gland - radius)
    n_lobes = 5
    spiculated = bool(rng.random() < 0.35)
    lob = rng.uniform(0.0, 0.12, n_lobes) * np.array([1.0, 0.8, 0.6, 0.45, 0.35])
    # about one lesion in ten is nearly isoechoic (hard), the rest clearly hypoechoic
    if rng.random() < 0.10:
        contrast = float(rng.uniform(ISOECHOIC_CONTRAST, 0.97))
    else:
        contrast = float(rng.uniform(0.05, 0.40))
    return {
        "cx": float(rng.uniform(0.28, 0.72)),
        "cy": float(rng.uniform(cy_lo, cy_hi)),
        "radius": radius,
        "aspect": float(rng.uniform(0.6, 1.6)),
        "angle": float(rng.uniform(0.0, math.pi)),
        "lobulation": tuple(float(v) for v in lob),
        "lobe_phase": tuple(float(v) for v in rng.uniform(0, 2 * math.pi, n_lobes)),
        "spikes": int(rng.integers(6, 14)) if spiculated else 0,
        "contrast": contrast,
        "halo": float(rng.uniform(0.2, 0.6)) if spiculated and rng.random() < 0.5 else 0.0,
        "posterior": float(rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.7)),
        "infiltration": float(rng.uniform(0.25, 0.6)),
        "n_vessels": int(rng.integers(2, 6)),
        "lesion_peak": float(rng.uniform(0.35, 0.8)),
        "infiltration_ratio": float(rng.uniform(0.1, 0.45)),
        "background_peak": float(rng.uniform(0.16, 0.36)),
        "arrival": float(rng.uniform(0.1, 0.22)),
        "time_to_peak": float(rng.uniform(0.12, 0.28)),
        "washout": float(rng.uniform(1.5, 3.5)),
        "necrosis": int(rng.integers(0, 4)) if radius > 0.07 else 0,
        "boundary_blur": float(rng.uniform(0.015, 0.035)),
        "bubble_shape": float(rng.uniform(0.9, 2.2)),
    }


def sample_specs(n_patients: int = 30, seed: int = 0,
                 second_case_fraction: float = 0.12) -> list[CaseSpec]:
    """Draw every case's parameters; ``round(fraction · n_patients)`` patients get two cases.

    A second case is either a second acquisition of the same lesion (new position/pose,
    same shape) or a different lesion of the same breast, mirroring the paper's 169 samples
    from 165 patients.
    """
    if n_patients < 1:
        raise ValueError("n_patients must be >= 1")
    if not 0.0 <= second_case_fraction <= 1.0:
        raise ValueError("second_case_fraction must lie in [0, 1]")
    rng = np.random.default_rng([seed, 7])
    n_double = round(second_case_fraction * n_patients)
    doubles = set(rng.choice(n_patients, size=n_double, replace=False).tolist())
    specs: list[CaseSpec] = []
    for p in range(n_patients):
        prng = np.random.default_rng([seed, 11, p])
        anatomy = _patient_anatomy(prng)
        lesion = _lesion(prng, anatomy)
        lesions = [lesion]
        if p in doubles:
            if prng.random() < 0.5:  # second acquisition of the same lesion
                again = dict(_lesion(prng, anatomy))
                for key in ("radius", "aspect", "lobulation", "lobe_phase", "spikes",
                            "contrast", "halo", "infiltration", "lesion_peak",
                            "infiltration_ratio", "necrosis"):
                    again[key] = lesion[key]
                again["angle"] = float(lesion["angle"]) + float(prng.normal(0, 0.2))
                lesions.append(again)
            else:
                lesions.append(_lesion(prng, anatomy))
        for les in lesions:
            idx = len(specs)
            specs.append(CaseSpec(case_id=f"C{idx:04d}", patient_id=f"P{p:03d}", index=idx,
                                  **anatomy, **les))  # type: ignore[arg-type]
    return specs


# ----------------------------------------------------------------------------------------
# rendering helpers


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_yx: tuple[float, float],
                  down: int = 4) -> np.ndarray:
    """Zero-mean unit-std correlated Gaussian field, made cheaply at 1/down resolution."""
    h, w = shape
    sh, sw = max(2, h // down), max(2, w // down)
    field = rng.standard_normal((sh, sw)).astype(np.float32)
    sy, sx = max(sigma_yx[0] / down, 0.3), max(sigma_yx[1] / down, 0.3)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    return (field - field.mean()) / (field.std() + 1e-6)


def _wavy(rng: np.random.Generator, w: int, base: float, amp: float) -> np.ndarray:
    """A gently undulating depth curve (one y value per column), for tissue interfaces."""
    x = np.linspace(0, 1, w, dtype=np.float32)
    y = np.full(w, base, dtype=np.float32)
    for k in (1, 2, 3, 5):
        y += amp / k * np.sin(2 * math.pi * k * x + rng.uniform(0, 2 * math.pi))
    return y


def _lesion_polar(spec: CaseSpec, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius and angle of each pixel in the lesion's rotated, scaled frame."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = spec.radius * w
    a, b = r * math.sqrt(spec.aspect), r / math.sqrt(spec.aspect)
    dx, dy = xx - spec.cx * w, yy - spec.cy * h
    ca, sa = math.cos(spec.angle), math.sin(spec.angle)
    u, v = (dx * ca + dy * sa) / a, (-dx * sa + dy * ca) / b
    return np.sqrt(u * u + v * v), np.arctan2(v, u)


def _boundary(spec: CaseSpec, theta: np.ndarray, rng: np.random.Generator) -> tuple[
        np.ndarray, np.ndarray]:
    """Core boundary radius R(θ) (lobulated + optional thin spikes) and its smooth part."""
    n = 4096  # tabulate R on a fine angle grid, then look the pixels up
    grid = np.linspace(-math.pi, math.pi, n, endpoint=False)
    smooth = np.ones(n)
    for k, (amp, ph) in enumerate(zip(spec.lobulation, spec.lobe_phase), start=2):
        smooth += amp * np.cos(k * grid + ph)
    spikes = np.zeros(n)
    for _ in range(spec.spikes):
        centre = rng.uniform(-math.pi, math.pi)
        width = rng.uniform(0.03, 0.07)
        d = np.angle(np.exp(1j * (grid - centre)))
        spikes = np.maximum(spikes, rng.uniform(0.3, 0.8) * np.exp(-0.5 * (d / width) ** 2))
    idx = np.clip(((theta + math.pi) * (n / (2 * math.pi))).astype(np.int32), 0, n - 1)
    return (smooth + spikes).astype(np.float32)[idx], smooth.astype(np.float32)[idx]


def _fov_mask(spec: CaseSpec, h: int, w: int) -> np.ndarray:
    """Probe field of view: full frame, linear (side margins) or trapezoid (widening)."""
    fov = np.ones((h, w), dtype=bool)
    if spec.fov == "full":
        return fov
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    linear = spec.fov == "linear"
    margin = np.full_like(yy, 0.04 * w) if linear else 0.12 * w * (1.0 - yy / h)
    return fov & (xx >= margin) & (xx < w - margin)


def _vessels(rng: np.random.Generator, spec: CaseSpec, infil: np.ndarray, h: int,
             w: int) -> tuple[np.ndarray, np.ndarray]:
    """Branching vessel-like extensions leaving the infiltration zone.

    Returns an intensity map in [0, 1] (all branches) and the mask of the thick proximal
    segments, which radiologists include in the enhancing region.
    """
    scale = spec.radius * w
    img = np.zeros((h, w), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    cx, cy = spec.cx * w, spec.cy * h
    thick_min = max(2.0, 0.12 * scale)
    stack: list[tuple[float, float, float, float, int]] = []
    for _ in range(spec.n_vessels):
        phi = rng.uniform(-math.pi, math.pi)
        dirx, diry = math.cos(phi), math.sin(phi)
        dist = 0.0
        while True:  # walk out to the infiltration boundary
            x, y = round(cx + dist * dirx), round(cy + dist * diry)
            if not (0 <= x < w and 0 <= y < h) or not infil[y, x]:
                break
            dist += 1.0
        stack.append((cx + (dist - 2) * dirx, cy + (dist - 2) * diry, phi,
                      max(1.5, rng.uniform(0.15, 0.3) * scale), 0))
    while stack:
        x, y, phi, thick, depth = stack.pop()
        steps = int(rng.integers(4, 9))
        for _ in range(steps):
            phi += rng.normal(0, 0.3)
            step = max(2.0, 0.18 * scale)
            nx, ny = x + step * math.cos(phi), y + step * math.sin(phi)
            t = max(1, round(thick))
            cv2.line(img, (round(x), round(y)), (round(nx), round(ny)),
                     255, t, cv2.LINE_AA)
            if thick >= thick_min:
                cv2.line(mask, (round(x), round(y)), (round(nx), round(ny)),
                         1, t, cv2.LINE_8)
            if depth < 2 and rng.random() < 0.25:
                stack.append((nx, ny, phi + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.9),
                              thick * 0.7, depth + 1))
            x, y, thick = nx, ny, thick * 0.85
            if thick < 0.8:
                break
    return img.astype(np.float32) / 255.0, mask.astype(bool)


def _blobs(rng: np.random.Generator, inside: np.ndarray, n: int, size: float,
           h: int, w: int) -> np.ndarray:
    """``n`` soft elliptical blobs centred on random pixels of ``inside``."""
    out = np.zeros((h, w), dtype=np.float32)
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return out
    for _ in range(n):
        i = int(rng.integers(len(ys)))
        axes = (max(1, int(size * rng.uniform(0.6, 1.3))),
                max(1, int(size * rng.uniform(0.4, 1.0))))
        cv2.ellipse(out, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360,
                    1.0, -1)
    sigma = max(0.5, size / 3)
    return cv2.GaussianBlur(out, (0, 0), sigma)


# ----------------------------------------------------------------------------------------
# the two modalities


def _render_us(rng: np.random.Generator, spec: CaseSpec, core_soft: np.ndarray,
               core: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """B-mode image (float, before log compression) and the tissue-class map for CEUS."""
    s = w / 460.0  # texture scales with the image size
    skin = _wavy(rng, w, spec.skin_depth * h, 0.004 * h)
    fat = _wavy(rng, w, spec.fat_depth * h, 0.02 * h)
    gland = _wavy(rng, w, spec.gland_depth * h, 0.03 * h)
    yy = np.arange(h, dtype=np.float32)[:, None]
    layer = np.zeros((h, w), dtype=np.uint8)  # 0 skin, 1 fat, 2 gland, 3 deep
    layer[yy >= skin[None, :]] = 1
    layer[yy >= fat[None, :]] = 2
    layer[yy >= gland[None, :]] = 3

    echo = np.empty((h, w), dtype=np.float32)
    # subcutaneous fat: dark lobules separated by bright Cooper ligaments
    lobules = _smooth_noise(rng, (h, w), (14 * s, 22 * s))
    septa = np.exp(-(np.abs(lobules) / 0.12) ** 2)
    echo[:] = spec.fat_echo * (1.0 + 0.15 * lobules) + 0.5 * septa
    # glandular tissue: horizontally layered, anisotropic texture with dark ducts
    layered = _smooth_noise(rng, (h, w), (3 * s, 30 * s))
    coarse = _smooth_noise(rng, (h, w), (25 * s, 40 * s))
    gland_echo = spec.gland_echo * (1.0 + 0.25 * layered + 0.15 * coarse)
    ducts = np.clip(_smooth_noise(rng, (h, w), (4 * s, 26 * s)) - 2.0, 0, None)
    gland_echo = gland_echo * (1.0 - np.clip(1.8 * ducts, 0, 0.8))
    echo = np.where(layer == 2, gland_echo, echo)
    # deep: retromammary fat then striated pectoral muscle
    depth_below = yy - gland[None, :]
    striations = 0.5 + 0.5 * np.sin(depth_below / (5 * s) + 0.6 * _smooth_noise(
        rng, (h, w), (10 * s, 40 * s)))
    muscle = (0.3 + 0.4 * striations) * (1.0 + 0.3 * _smooth_noise(rng, (h, w), (6 * s, 30 * s)))
    deep = np.where(depth_below < 0.03 * h, 0.3, muscle)
    echo = np.where(layer == 3, deep, echo)
    # skin: bright double line
    skin_band = np.exp(-0.5 * ((yy - skin[None, :]) / (2.0 * s + 0.5)) ** 2)
    top_line = np.exp(-0.5 * ((yy - 0.35 * skin[None, :]) / (1.5 * s + 0.5)) ** 2)
    echo = np.where(layer == 0, 0.5, echo) + 1.6 * skin_band + 1.0 * top_line

    # lesion core: hypo/isoechoic with internal heterogeneity, optional echogenic halo
    local = cv2.GaussianBlur(echo, (0, 0), max(1.0, 0.5 * spec.radius * w))
    inner = spec.contrast * local * (1.0 + 0.2 * _smooth_noise(rng, (h, w), (5 * s, 5 * s)))
    echo = echo * (1.0 - core_soft) + inner * core_soft
    if spec.halo > 0:
        ring = cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (max(3, int(9 * s)) | 1,) * 2)).astype(bool) & ~core
        echo = echo + spec.halo * cv2.GaussianBlur(ring.astype(np.float32), (0, 0), 2 * s + 0.5)

    # posterior acoustic shadowing (<0) or enhancement (>0) below the lesion
    column = np.maximum.accumulate(core_soft, axis=0)
    below = np.clip(column - core_soft, 0, 1)
    first = np.argmax(core, axis=0)
    dist = np.clip(yy - first[None, :], 0, None) / h
    fade = np.exp(-dist / 0.35)
    below = cv2.GaussianBlur(below, (0, 0), sigmaX=3 * s + 0.5, sigmaY=0.5)
    echo = echo * (1.0 + spec.posterior * below * fade)

    # multiplicative speckle: |complex Gaussian| (Rayleigh), correlated by a small blur
    hh, ww = max(2, h // 2), max(2, w // 2)
    re = rng.standard_normal((hh, ww)).astype(np.float32)
    im = rng.standard_normal((hh, ww)).astype(np.float32)
    re = cv2.GaussianBlur(re, (0, 0), sigmaX=0.9, sigmaY=0.5)
    im = cv2.GaussianBlur(im, (0, 0), sigmaX=0.9, sigmaY=0.5)
    speckle = cv2.resize(np.sqrt(re * re + im * im), (w, h), interpolation=cv2.INTER_LINEAR)
    speckle /= speckle.mean()
    intensity = np.maximum(echo, 0.02) * speckle
    # depth attenuation, partly compensated by the time-gain control
    depth = yy / h
    intensity = intensity * np.exp(-spec.attenuation * depth) * (1.0 + 0.6 * depth)
    return intensity.astype(np.float32), layer


def _log_compress(amplitude: np.ndarray, reference: float, dynamic_range_db: float) -> np.ndarray:
    """B-mode display: amplitude in dB re ``reference``, mapped from −DR..0 dB to 0..255."""
    db = 20.0 * np.log10(np.maximum(amplitude, 1e-6) / reference)
    return np.clip((db + dynamic_range_db) * (255.0 / dynamic_range_db), 0, 255)


def _render_ceus(rng: np.random.Generator, spec: CaseSpec, core: np.ndarray,
                 infil: np.ndarray, vessels: np.ndarray, layer: np.ndarray, fov: np.ndarray,
                 n_frames: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """CEUS frames (F, H, W) uint8 and the per-frame jitter (F, 2).

    Intensity = gamma-variate curve x peak enhancement x fresh microbubble speckle; the
    frames are jittered by a small smooth motion and shown with a compressive display map.
    """
    s = w / 460.0
    r_px = spec.radius * w
    # peak enhancement A(x, y)
    layer_gain = np.array([0.2, 0.45, 1.0, 0.55], dtype=np.float32)[layer]
    parenchyma = spec.background_peak * layer_gain * (
        1.0 + 0.35 * _smooth_noise(rng, (h, w), (12 * s, 18 * s)))
    patchy = 1.0 + 0.3 * _smooth_noise(rng, (h, w), (0.25 * r_px + 1, 0.25 * r_px + 1))
    lesion_peak = spec.lesion_peak * patchy
    necrotic = _blobs(rng, cv2.erode(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0,
                      spec.necrosis, 0.22 * r_px, h, w)
    lesion_peak = lesion_peak * (1.0 - 0.9 * np.clip(necrotic, 0, 1))
    infil_peak = spec.lesion_peak * spec.infiltration_ratio * (
        1.0 + 0.35 * _smooth_noise(rng, (h, w), (0.3 * r_px + 1, 0.3 * r_px + 1)))
    peak = parenchyma.copy()
    peak = np.where(infil, np.maximum(infil_peak, parenchyma), peak)
    peak = np.where(core, lesion_peak, peak)
    peak = np.maximum(peak, 0.8 * spec.lesion_peak * vessels)
    blur = max(0.8, spec.boundary_blur * w)
    peak = cv2.GaussianBlur(np.clip(peak, 0, None), (0, 0), blur)
    # timing: the lesion core fills first (fast-in), the parenchyma later and more slowly; the
    # infiltration zone, fed by fewer vessels, takes a timing nearer the parenchyma's
    region = cv2.GaussianBlur(np.maximum(core.astype(np.float32),
                                         INFILTRATION_TIMING * infil.astype(np.float32)),
                              (0, 0), blur)
    late = 1.0 - region
    arrival = spec.arrival + 0.08 * late + 0.01 * _smooth_noise(rng, (h, w), (20, 20))
    ttp = spec.time_to_peak * (1.0 + 0.6 * late)
    alpha = spec.washout * (1.0 - 0.5 * late)
    # the timing maps are smooth, so the curves are evaluated at 1/4 resolution
    lo = (max(2, w // 4), max(2, h // 4))
    t = np.linspace(0.0, 1.0, n_frames, dtype=np.float32)[:, None, None]
    curves = gamma_variate(t, cv2.resize(arrival, lo, interpolation=cv2.INTER_AREA)[None],
                           cv2.resize(ttp, lo, interpolation=cv2.INTER_AREA)[None],
                           cv2.resize(alpha, lo, interpolation=cv2.INTER_AREA)[None])
    # microbubble speckle: fresh gamma-distributed field every frame, slightly correlated
    hh, ww = max(2, h // 2), max(2, w // 2)
    bubbles = rng.gamma(spec.bubble_shape, 1.0 / spec.bubble_shape,
                        (n_frames, hh, ww)).astype(np.float32)
    floor = 0.015 * np.abs(rng.standard_normal(n_frames))
    motion = _motion(rng, n_frames)
    lut = _ceus_lut()
    frames = np.empty((n_frames, h, w), dtype=np.uint8)
    for k in range(n_frames):
        b = cv2.resize(bubbles[k], (w, h), interpolation=cv2.INTER_LINEAR)
        c = cv2.resize(curves[k], (w, h), interpolation=cv2.INTER_LINEAR)
        f = _shift(c * peak * b + np.float32(floor[k]), float(motion[k, 0]),
                   float(motion[k, 1]))
        frames[k] = lut[np.clip(f * _LUT_SCALE, 0, len(lut) - 1).astype(np.int32)] * fov
    return frames, motion


_LUT_SCALE = 8192.0


def _ceus_lut() -> np.ndarray:
    """Contrast-mode display: dark background, compressive gamma (0.75) to 8 bits."""
    x = np.arange(int(2 * _LUT_SCALE), dtype=np.float64) / _LUT_SCALE
    return np.clip(255.0 * np.power(x / 1.2, 0.75) + 0.5, 0, 255).astype(np.uint8)


def _motion(rng: np.random.Generator, n_frames: int, limit: float = 2.0) -> np.ndarray:
    """Smooth probe/breathing jitter per frame, (F, 2) offsets in px within ±limit."""
    steps = rng.normal(0, 0.35, (n_frames, 2))
    path = np.cumsum(steps, axis=0)
    path -= path.mean(axis=0)
    return np.clip(path, -limit, limit).astype(np.float32)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Sub-pixel translation with edge replication."""
    m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def render_case(spec: CaseSpec, seed: int, n_frames: int = 30, height: int = 560,
                width: int = 460) -> tuple[RenderedCase, np.ndarray]:
    """Render one case; returns the arrays and the per-frame (dx, dy) motion offsets."""
    h, w = height, width
    rng = np.random.default_rng([seed, 23, spec.index])
    rho, theta = _lesion_polar(spec, h, w)
    bound, smooth = _boundary(spec, theta, rng)
    fov = _fov_mask(spec, h, w)
    core = (rho < bound) & fov
    infil_shape = smooth * (1.0 + spec.infiltration * (
        1.0 + 0.35 * np.cos(theta * 2 + rng.uniform(0, 6.3))
        + 0.25 * np.cos(theta * 3 + rng.uniform(0, 6.3))))
    infil = (rho < np.maximum(infil_shape, bound)) & fov
    vessels, vessel_mask = _vessels(rng, spec, infil, h, w)
    vessels *= fov
    close = max(3, int(0.02 * w)) | 1
    ceus_mask = cv2.morphologyEx((core | infil | vessel_mask).astype(np.uint8), cv2.MORPH_CLOSE,
                                 cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close, close)))
    ceus_mask = (ceus_mask > 0) & fov | core

    soft_sigma = max(0.5, 1.2 * w / 460.0)
    core_soft = cv2.GaussianBlur(core.astype(np.float32), (0, 0), soft_sigma)
    us_int, layer = _render_us(rng, spec, core_soft, core, h, w)
    us = _log_compress(us_int, reference=2.5, dynamic_range_db=42.0)
    us += rng.normal(0, 2.0, us.shape).astype(np.float32)
    us = np.where(fov, us, 0.0)

    ceus, motion = _render_ceus(rng, spec, core, infil, vessels, layer, fov.astype(np.uint8),
                                n_frames, h, w)
    rendered = RenderedCase(
        us=np.clip(us + 0.5, 0, 255).astype(np.uint8),
        ceus=ceus,
        us_mask=core,
        ceus_mask=ceus_mask,
    )
    return rendered, motion


# ----------------------------------------------------------------------------------------
# writing


def _side_by_side_layout(h: int, w: int) -> tuple[int, int, tuple[int, int, int, int],
                                                  tuple[int, int, int, int]]:
    """Frame size and CEUS/US boxes (x0, y0, x1, y1, half-open) of a dual-mode capture."""
    top = 2 * max(4, round(0.025 * h))
    bottom = 2 * max(2, round(0.01 * h))
    left = 2 * max(2, round(0.01 * w))
    gap = 2 * max(4, round(0.02 * w))
    full_w = left + w + gap + w + left
    full_h = top + h + bottom
    ceus_box = (left, top, left + w, top + h)
    us_box = (left + w + gap, top, left + w + gap + w, top + h)
    return full_h, full_w, ceus_box, us_box


def _compose(ceus_frame: np.ndarray, us_frame: np.ndarray, layout: tuple[
        int, int, tuple[int, int, int, int], tuple[int, int, int, int]]) -> np.ndarray:
    """One dual-mode frame: dark screen, a grey UI bar, CEUS left and US right."""
    full_h, full_w, cb, ub = layout
    frame = np.full((full_h, full_w), 8, dtype=np.uint8)
    bar = cb[1] // 2
    frame[bar // 2: bar // 2 + max(1, bar // 2), cb[0]: cb[0] + full_w // 6] = 150
    frame[bar // 2: bar // 2 + max(1, bar // 2), ub[0]: ub[0] + full_w // 8] = 150
    frame[cb[1]:cb[3], cb[0]:cb[2]] = ceus_frame
    frame[ub[1]:ub[3], ub[0]:ub[2]] = us_frame
    return frame


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    """High-quality H.264 (yuv420p, CRF 12) of grey frames; falls back to MPEG-4 part 2."""
    h, w = frames[0].shape
    container = av.open(str(path), mode="w")
    try:
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"crf": "12", "preset": "ultrafast"}
        except (av.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
            stream.bit_rate = 8_000_000
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _box(b: tuple[int, int, int, int]) -> str:
    return ",".join(str(v) for v in b)


def generate(out_dir: Path, n_patients: int = 30, seed: int = 0,
             second_case_fraction: float = 0.12, n_frames: int = 30, height: int = 560,
             width: int = 460, spacing_mm: float = 0.1, side_by_side: bool = False,
             video_format: str = "mixed") -> Path:
    """Write the phantom in the ``sheet`` layout under ``out_dir``; return ``cases.csv``.

    Files per case: ``us/<case>.png``, ``us_mask/<case>.png``, ``ceus_mask/<case>.png``
    (masks 0/255) and the CEUS video as ``ceus/<case>/<k>.png`` or ``ceus/<case>.mp4``
    (``video_format`` ``frames``, ``mp4`` or ``mixed`` = even case indices frames, odd mp4).
    With ``side_by_side`` every video frame is a dual-mode capture (CEUS | gap | US) and the
    sheet gives the two boxes; the US image file stays the separate, un-jittered US image.
    Also writes ``params.json`` with every case's sampled parameters.
    """
    if video_format not in VIDEO_FORMATS:
        raise ValueError(f"video_format must be one of {VIDEO_FORMATS}, got {video_format!r}")
    if n_frames < 2:
        raise ValueError("n_frames must be >= 2")
    if height % 2 or width % 2 or height < 32 or width < 32:
        raise ValueError("height and width must be even and >= 32 (yuv420p video)")
    out_dir = Path(out_dir)
    for sub in ("us", "us_mask", "ceus_mask", "ceus"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    specs = sample_specs(n_patients, seed, second_case_fraction)
    layout = _side_by_side_layout(height, width) if side_by_side else None
    rows: list[dict[str, str]] = []
    for spec in specs:
        case, motion = render_case(spec, seed, n_frames, height, width)
        cid = spec.case_id
        cv2.imwrite(str(out_dir / "us" / f"{cid}.png"), case.us, _PNG_FAST)
        cv2.imwrite(str(out_dir / "us_mask" / f"{cid}.png"),
                    case.us_mask.astype(np.uint8) * 255, _PNG_FAST)
        cv2.imwrite(str(out_dir / "ceus_mask" / f"{cid}.png"),
                    case.ceus_mask.astype(np.uint8) * 255, _PNG_FAST)
        frames = list(case.ceus)
        if layout is not None:
            frames = [_compose(f, _shift(case.us, float(dx), float(dy)), layout)
                      for f, (dx, dy) in zip(frames, motion)]
        as_mp4 = video_format == "mp4" or (video_format == "mixed" and spec.index % 2 == 1)
        if as_mp4:
            ceus_rel = f"ceus/{cid}.mp4"
            _write_mp4(out_dir / ceus_rel, frames)
        else:
            ceus_rel = f"ceus/{cid}"
            (out_dir / ceus_rel).mkdir(exist_ok=True)
            for k, f in enumerate(frames):
                cv2.imwrite(str(out_dir / ceus_rel / f"{k}.png"), f, _PNG_FAST)
        rows.append({
            "case_id": cid,
            "patient_id": spec.patient_id,
            "us_image": f"us/{cid}.png",
            "us_mask": f"us_mask/{cid}.png",
            "ceus": ceus_rel,
            "ceus_mask": f"ceus_mask/{cid}.png",
            "spacing_mm": f"{spacing_mm:g}",
            "ceus_crop": _box(layout[2]) if layout else "",
            "us_crop": _box(layout[3]) if layout else "",
        })
    sheet = out_dir / "cases.csv"
    with sheet.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SHEET_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    params = {"seed": seed, "n_frames": n_frames, "height": height, "width": width,
              "side_by_side": side_by_side, "cases": [asdict(s) for s in specs]}
    (out_dir / "params.json").write_text(json.dumps(params, indent=1))
    return sheet
