"""Apply a trained experiment to new cases, unrolling the loops exactly as in evaluation.

For loop 0..L each branch predicts with its node's best checkpoint; from loop 1 on it gets
the margins the MMG made from its source branch's loop l−1 predictions *of these cases*
(never from ground truth). Written per case: both modalities' masks at the original size,
the margins each branch received in the reported loop, and overlay PNGs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from iman.experiments import (
    Node,
    Spec,
    branch_modalities,
    margin_source,
    node_for,
    parse_name,
)
from iman.paths import Paths, case_file

__all__ = ["PredictError", "predict_cases"]


class PredictError(RuntimeError):
    """Wrong inputs for ``iman predict``; the message lists every problem."""


def _node_ckpt(results: Path, run: str, modality: str, loop: int) -> Path:
    return Path(Paths(str(results)).node_file(Node(run, modality, loop), "best.pt"))


def _check(results: Path, experiment: str) -> tuple[Spec, dict]:
    try:
        spec = parse_name(experiment)
    except (ValueError, KeyError) as err:
        raise PredictError(f"{experiment!r} is not an experiment name ({err})") from None
    summary_file = Path(Paths(str(results)).summary(experiment))
    missing = [str(_node_ckpt(results, n.run, n.modality, n.loop))
               for loop in range((spec.loops or 0) + 1) for m in branch_modalities(spec)
               for n in [node_for(spec, m, loop)]
               if not _node_ckpt(results, n.run, n.modality, n.loop).exists()]
    if not summary_file.exists():
        missing.append(str(summary_file))
    if missing:
        raise PredictError("experiment not trained (run the workflow first); missing:\n  "
                           + "\n  ".join(missing))
    return spec, json.loads(summary_file.read_text())


def _ingest_new(layout: str, sheet: Path, work: Path, size: int) -> pd.DataFrame:
    from iman.data.ingest import DatasetError, ingest

    try:
        return ingest(layout, sheet, work, size)
    except DatasetError as err:
        raise PredictError(str(err)) from None


def _overlay(image: np.ndarray, mask: np.ndarray, out: Path) -> None:
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (255, 0, 255), 1)
    cv2.imwrite(str(out), rgb)


def _predict_node(ckpt: Path, cache: Path, cases: list[str], modality: str, spec: Spec,
                  frames: dict[str, list[int]], margins: dict | None,
                  device: str) -> dict[str, np.ndarray]:
    from iman.data.dataset import load_cases
    from iman.models import get_entry
    from iman.train import build_from_checkpoint, predict_probs

    model, _ = build_from_checkpoint(ckpt, device)
    frames_file = cache.parent / "frames.json"
    frames_file.write_text(json.dumps(frames))
    data = load_cases(cache, cases, get_entry(spec.method).consumed(modality), modality,
                      frames_file, margins)
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
    from iman.mmg import make_margins, original_sizes

    spec, summary = _check(results, experiment)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threshold = _margin_threshold(summary)
    any_node = node_for(spec, branch_modalities(spec)[0], 0)
    size = torch.load(_node_ckpt(results, any_node.run, any_node.modality, 0),
                      weights_only=False)["config"]["img_size"]
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
                src, (k, f) = source
                margins = make_margins(preds[src], original_sizes(manifest, src.modality), k, f,
                                       threshold, device)
            received[node] = margins
            preds[node] = _predict_node(_node_ckpt(results, node.run, m, loop), cache, cases,
                                        m, spec, frames, margins, device)
    _write(out, manifest, cache, spec, summary, preds, received)
    shutil.rmtree(work / "cache", ignore_errors=True)
    return cases


def _write(out: Path, manifest: pd.DataFrame, cache: Path, spec: Spec, summary: dict,
           preds: dict, received: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for r in manifest.itertuples():
        case = str(r.case_id)
        with np.load(case_file(cache, case)) as npz:
            for m in branch_modalities(spec):
                loop = int(summary["branches"][m]["loop"])
                node = node_for(spec, m, loop)
                h, w = int(getattr(r, f"{m}_h")), int(getattr(r, f"{m}_w"))
                prob = cv2.resize(preds[node][case].astype(np.float32), (w, h),
                                  interpolation=cv2.INTER_LINEAR)
                mask = (prob >= 0.5).astype(np.uint8)
                cv2.imwrite(str(out / f"{case}_{m}_mask.png"), mask * 255)
                margin = received[node]
                if margin is not None:
                    cv2.imwrite(str(out / f"{case}_{m}_margin.png"),
                                np.round(np.asarray(margin[case], np.float32) * 255)
                                .astype(np.uint8))
                image = npz["us"] if m == "us" else npz["ceus"][npz["ceus"].shape[0] // 2]
                image = image if image.ndim == 2 else image[0]
                small = cv2.resize(mask, image.shape[::-1], interpolation=cv2.INTER_NEAREST)
                _overlay(image, small, out / f"{case}_{m}_overlay.png")
    (out / "predictions.json").write_text(json.dumps(
        {"experiment": summary["experiment"], "cases": list(manifest["case_id"].astype(str)),
         "loops": {m: summary["branches"][m]["loop"] for m in branch_modalities(spec)}},
        indent=1))
