"""Node-level steps the Snakemake rules call: train a node, make margins, evaluate.

Each function reads the files of the previous stage and writes the files of its own; no
function decides anything from the test split (it is only predicted and scored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.experiments import Node, parse_name

__all__ = ["evaluate_node", "make_margins_node", "read_split", "train_config", "train_node"]


def read_split(splits_file: Path, fold: int = 0) -> dict[str, list[str]]:
    """The (fold's) train/val/test case lists."""
    return json.loads(Path(splits_file).read_text())["folds"][fold]


def _variant_weights(cfg: dict[str, Any], method: str) -> str | None:
    return cfg["model"]["weights"].get(method)


def train_config(cfg: dict[str, Any], node: Node, threads: int = 1):
    """The :class:`~iman.train.TrainConfig` of one node (model, data shape, protocol)."""
    from iman.models import get_entry
    from iman.train import TrainConfig

    spec = parse_name(node.run)
    entry = get_entry(spec.method)
    in_channels = {m: (1 if m == "us" else int(spec.T or 1)) for m in entry.consumed(node.modality)}
    injection = spec.injection if entry.gates_skips else "input_channel"
    t = cfg["train"]
    lr = t["lr"] * t["loop_lr_decay"] ** node.loop
    return TrainConfig(
        model=spec.method, variant=spec.variant, in_channels=in_channels,
        img_size=cfg["data"]["size"], injection=injection,
        weights=_variant_weights(cfg, spec.method), max_epochs=t["max_epochs"],
        min_epochs=t["min_epochs"], batch_size=t["batch_size"], lr=lr,
        min_lr=min(t["min_lr"], lr), weight_decay=t["weight_decay"], patience=t["patience"],
        converge_eps=t["converge_eps"], converge_window=t["converge_window"],
        bce_weight=t["bce_weight"], augment=dict(t["augment"]), seed=spec.seed, amp=t["amp"],
        threads=threads,
        meta={"run": node.run, "modality": node.modality, "loop": node.loop},
    )


def train_node(cfg: dict[str, Any], node: Node, cache_dir: Path, splits_file: Path,
               frames_file: Path | None, out_dir: Path, init_weights: Path | None = None,
               margins_file: Path | None = None, threads: int = 1,
               progress: bool = True) -> dict[str, Any]:
    """Train one branch/loop, then predict every case with its best weights (pred.npz)."""
    import torch

    from iman.data.dataset import load_cases, load_margins
    from iman.models import get_entry
    from iman.train import Trainer, build_from_checkpoint, predict_probs

    tcfg = train_config(cfg, node, threads)
    entry = get_entry(tcfg.model)
    inputs = entry.consumed(node.modality)
    split = read_split(splits_file, cfg["split"]["fold"])
    margins = load_margins(margins_file)
    load = lambda ids: load_cases(cache_dir, ids, inputs, node.modality, frames_file,  # noqa: E731
                                  margins)
    trainer = Trainer(tcfg, load(split["train"]), load(split["val"]), out_dir, init_weights)
    summary = trainer.fit(progress=progress)
    model, _ = build_from_checkpoint(out_dir / "best.pt", trainer.device)
    every = sorted(split["train"] + split["val"] + split["test"])
    probs = predict_probs(model, load(every), trainer.device, tcfg.batch_size, tcfg.amp)
    np.savez_compressed(out_dir / "pred.npz",
                        **{c: p.astype(np.float16) for c, p in zip(every, probs)})
    (out_dir / "device.txt").write_text(
        trainer.device if trainer.device == "cpu" else f"cuda:{torch.cuda.get_device_name()}")
    return summary


def make_margins_node(pred_file: Path, manifest_file: Path, modality: str, kernel: int,
                      filt: str, threshold: float, out_file: Path) -> None:
    """MMG on one node's predictions of every case → margins npz (working resolution)."""
    from iman.mmg import make_margins, original_sizes

    sizes = original_sizes(pd.read_csv(manifest_file, dtype={"case_id": str}), modality)
    with np.load(pred_file) as npz:
        preds = {k: npz[k].astype(np.float32) for k in npz.files}
    margins = make_margins(preds, sizes, kernel, filt, threshold=threshold)
    tmp = out_file.with_name(out_file.name + ".tmp.npz")
    np.savez_compressed(tmp, **margins)
    tmp.replace(out_file)


def evaluate_node(pred_file: Path, cache_dir: Path, splits_file: Path, modality: str,
                  fold: int, out_csv: Path) -> pd.DataFrame:
    """Per-case metrics (both families) for the val and test cases of one node."""
    from iman.metrics import case_metrics

    split = read_split(splits_file, fold)
    rows = []
    with np.load(pred_file) as preds:
        for subset in ("val", "test"):
            for case in split[subset]:
                with np.load(cache_dir / f"{case}.npz") as c:
                    m = case_metrics(preds[case].astype(np.float32), c[f"{modality}_mask"],
                                     c[f"{modality}_mask_orig"],
                                     float(c[f"{modality}_spacing_mm"]))
                rows.append({"case_id": case, "split": subset, **m})
    df = pd.DataFrame(rows)
    df.to_csv(out_csv, index=False)
    return df
