"""Apply a trained experiment to new cases, unrolling the loops exactly as in evaluation.

For loop 0..L each branch predicts with its node's best checkpoint; from loop 1 on it gets
the margins the MMG made from its source branch's loop l−1 predictions *of these cases*
(never from ground truth). Written per case, all at the original (cropped) size of the
modality: both modalities' masks, the margins each branch received in the reported loop, and
overlay PNGs of the original image (US; CEUS: the cached middle frame) with the mask's contours
(magenta) and the received margin band's outline (cyan). ``predictions.json`` records the
experiment, the cases, the reported loops and every written size (``sizes_hw``: modality →
case → [H, W]).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from iman.errors import UserError
from iman.experiments import (
    DIAGNOSTIC,
    Node,
    Spec,
    branch_modalities,
    margin_source,
    node_for,
    parse_name,
)
from iman.paths import Paths, case_file

if TYPE_CHECKING:
    from iman.data.ingest import CaseSource

__all__ = ["PredictError", "predict_cases"]


class PredictError(UserError, RuntimeError):
    """Wrong inputs for ``iman predict``; the message lists every problem."""


def _node_ckpt(results: Path, run: str, modality: str, loop: int) -> Path:
    return Path(Paths(str(results)).node(Node(run, modality, loop)).best)


def _check(results: Path, experiment: str) -> tuple[Spec, dict]:
    try:
        spec = parse_name(experiment)
    except (ValueError, KeyError) as err:
        raise PredictError(f"{experiment!r} is not an experiment name ({err})") from None
    if spec.routing in DIAGNOSTIC:
        what = ("ground-truth margins" if spec.routing == "oracle"
                else "another patient's margins")
        raise PredictError(
            f"{experiment!r} is a diagnostic control (margin routing {spec.routing!r}: {what}), "
            "a table row and never a method: predict with a method's experiment (IMAN's "
            "routing is 'cross')")
    summary_file = Path(Paths(str(results)).summary(experiment))
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    _require_methods(spec, summary, summary_file)
    missing = [str(_node_ckpt(results, n.run, n.modality, n.loop))
               for loop in range((spec.loops or 0) + 1) for m in branch_modalities(spec)
               for n in [node_for(spec, m, loop)]
               if not _node_ckpt(results, n.run, n.modality, n.loop).exists()]
    if not summary_file.exists():
        missing.append(str(summary_file))
    if missing:
        raise PredictError("experiment not trained (run the workflow first); missing:\n  "
                           + "\n  ".join(missing))
    return spec, summary


def _require_methods(spec: Spec, summary: dict, summary_file: Path) -> None:
    """The method the experiment's nodes were trained with is installed: a missing plug-in
    names its package (recorded in each node's provenance), an unknown name the valid ones."""
    from iman.models.registry import PluginError, UnknownModelError, require_installed

    records = [r["method"] for r in summary.get("provenance", {}).values() if "method" in r]
    try:
        for record in records or [{"name": spec.method}]:
            require_installed(record, str(summary_file))
    except (PluginError, UnknownModelError) as err:
        raise PredictError(str(err)) from None


def _ingest_new(layout: str, sheet: Path, work: Path, size: int) -> pd.DataFrame:
    from iman.data.ingest import DatasetError, ingest

    try:
        return ingest(layout, sheet, work, size)
    except DatasetError as err:
        raise PredictError(str(err)) from None


MASK_BGR = (255, 0, 255)
"""Contour colour of the predicted mask in the overlays (magenta, as in the figures)."""
MARGIN_BGR = (255, 255, 0)
"""Outline colour of the received margin band (margin >= 0.5) in the overlays (cyan)."""


def _thickness(shape: tuple[int, ...]) -> int:
    """Overlay line width for an image of ``shape``: one pixel per 200 of its short side."""
    return max(1, round(min(shape[:2]) / 200))


def _overlay(image: np.ndarray, mask: np.ndarray, margin: np.ndarray | None, out: Path) -> None:
    """Grey ``image`` with the 0/1 ``mask``'s contours and the ``margin`` band outlined.

    All three share the image's (original) size; the mask contours are drawn last, on top.
    An all-or-nothing margin band (no boundary to show) is not outlined.
    """
    if mask.shape != image.shape or (margin is not None and margin.shape != image.shape):
        raise ValueError(f"overlay parts differ in size: image {image.shape}, mask {mask.shape}"
                         f", margin {None if margin is None else margin.shape}")
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    width = _thickness(image.shape)
    if margin is not None:
        band = (margin >= 0.5).astype(np.uint8)
        if 0 < band.sum() < band.size:
            contours, _ = cv2.findContours(band, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(rgb, contours, -1, MARGIN_BGR, width)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, MASK_BGR, width)
    cv2.imwrite(str(out), rgb)


def _to_size(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-size float map bilinearly resized to ``size`` (H, W), float32."""
    return cv2.resize(np.asarray(array, np.float32), (size[1], size[0]),
                      interpolation=cv2.INTER_LINEAR)


def _predict_node(ckpt: Path, cache: Path, cases: list[str], modality: str, spec: Spec,
                  frames: dict[str, list[int]], margins: dict | None,
                  device: str) -> dict[str, np.ndarray]:
    from iman.data.dataset import load_cases
    from iman.models import get_entry
    from iman.training.trainer import build_from_checkpoint, predict_probs

    model, state = build_from_checkpoint(ckpt, device)
    frames_file = cache.parent / "frames.json"
    frames_file.write_text(json.dumps(frames))
    data = load_cases(cache, cases, get_entry(spec.method).consumed(modality), modality,
                      frames_file, margins, state["config"].get("norm", "grey"))
    return dict(zip(cases, predict_probs(model, data, device)))


def _margin_threshold(summary: dict) -> float:
    """The MMG threshold the experiment's margins were made with (recorded by training)."""
    for record in summary.get("provenance", {}).values():
        margins = record.get("margins")
        if margins:
            return float(margins["threshold"])
    return 0.1  # the schema default (a loop-0-only experiment reads no margins)


def predict_cases(results: Path, experiment: str, sheet: Path, out: Path,
                  layout: str = "sheet") -> list[str]:
    """Predict every case of ``sheet``; returns the case ids written under ``out``."""
    import torch

    from iman.data.frames import select_frames
    from iman.data.ingest import case_sources
    from iman.margins.mmg import make_margins, original_sizes
    from iman.training.checkpoint import load_checkpoint

    spec, summary = _check(results, experiment)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threshold = _margin_threshold(summary)
    any_node = node_for(spec, branch_modalities(spec)[0], 0)
    size = load_checkpoint(_node_ckpt(results, any_node.run, any_node.modality, 0))[
        "config"]["img_size"]
    work = out / "_work"
    manifest = _ingest_new(layout, sheet, work, size)
    cache, cases = work / "cache", list(manifest["case_id"].astype(str))
    frames = {}
    for c in cases:
        with np.load(case_file(cache, c)) as npz:
            frames[c] = select_frames(npz["ceus"], spec.strategy or "middle", spec.T or 1,
                                      spec.step or 1)
    preds: dict = {}
    received: dict = {}
    for loop in range((spec.loops or 0) + 1):
        for m in branch_modalities(spec):
            node = node_for(spec, m, loop)
            margins = None
            source = margin_source(node)
            if source is not None:
                (k, f), src = source.setting, source.node
                margins = make_margins(preds[src], original_sizes(manifest, src.modality), k, f,
                                       threshold, device)
            received[node] = margins
            preds[node] = _predict_node(_node_ckpt(results, node.run, m, loop), cache, cases,
                                        m, spec, frames, margins, device)
    try:
        _write(out, manifest, case_sources(layout, sheet), spec, summary, preds, received)
    finally:
        shutil.rmtree(work / "cache", ignore_errors=True)
    return cases


def _write(out: Path, manifest: pd.DataFrame, sources: dict[str, CaseSource], spec: Spec,
           summary: dict, preds: dict, received: dict) -> None:
    """Masks, received margins and overlays of every case at the original size; the JSON.

    An original image that can no longer be read (or changed size) is one `PredictError`
    listing every such case and file, raised after the other outputs and before the JSON.
    """
    from iman.data.ingest import DatasetError, Problem, read_original

    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, dict[str, list[int]]] = {m: {} for m in branch_modalities(spec)}
    problems: list[Problem] = []
    for r in manifest.itertuples():
        case = str(r.case_id)
        for m in branch_modalities(spec):
            node = node_for(spec, m, int(summary["branches"][m]["loop"]))
            size = int(getattr(r, f"{m}_h")), int(getattr(r, f"{m}_w"))
            mask = (_to_size(preds[node][case], size) >= 0.5).astype(np.uint8)
            cv2.imwrite(str(out / f"{case}_{m}_mask.png"), mask * 255)
            margin = None if received[node] is None else _to_size(received[node][case], size)
            if margin is not None:
                cv2.imwrite(str(out / f"{case}_{m}_margin.png"),
                            np.round(np.clip(margin, 0.0, 1.0) * 255).astype(np.uint8))
            sizes[m][case] = list(size)
            try:  # the cache holds frame n_frames // 2 of the decoded stack at that index
                image = read_original(sources[case], m, int(r.n_frames) // 2)
            except DatasetError as err:
                problems += err.problems
                continue
            if image.shape != size:
                src = sources[case]
                problems.append(Problem(case, str(src.us_image if m == "us" else src.ceus),
                                        f"{image.shape[0]}x{image.shape[1]} now, "
                                        f"{size[0]}x{size[1]} at ingest"))
                continue
            _overlay(image, mask, margin, out / f"{case}_{m}_overlay.png")
    if problems:
        raise PredictError(f"{len(problems)} problem(s) reading the original images for the "
                           "overlays (those overlays and predictions.json not written):\n"
                           + "\n".join(f"  - {p}" for p in problems))
    (out / "predictions.json").write_text(json.dumps(
        {"experiment": summary["experiment"], "cases": list(manifest["case_id"].astype(str)),
         "loops": {m: summary["branches"][m]["loop"] for m in branch_modalities(spec)},
         "sizes_hw": sizes},
        indent=1))
