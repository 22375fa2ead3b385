"""Node-level steps the Snakemake rules call: train a node, make margins, evaluate.

Each function reads the files of the previous stage and writes the files of its own; no
function decides anything from the test split (it is only predicted and scored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iman.experiments import Node, parse_name
from iman.paths import case_file

if TYPE_CHECKING:
    import pandas as pd

    from iman.train import CheckpointFiles

__all__ = ["evaluate_node", "make_margins_node", "make_mismatched_margins",
           "make_oracle_margins", "node_protocol", "read_split", "train_config", "train_node"]


def read_split(splits_file: Path, fold: int = 0) -> dict[str, list[str]]:
    """The (fold's) train/val/test case lists."""
    return json.loads(Path(splits_file).read_text())["folds"][fold]


def node_protocol(cfg: dict[str, Any], node: Node) -> dict[str, Any]:
    """The resolved training protocol of one node: every :class:`TrainConfig` field that
    changes what is learned (model, data shape, injection, weights, optimisation, seed).

    It is the train rule's ``params``, so a change to any of it retrains the node (and
    everything downstream); machine settings (threads) and labels (meta) are left out.
    """
    from iman.config import method_train
    from iman.models import get_entry
    from iman.weights import resolve, weights_key

    spec = parse_name(node.run)
    entry = get_entry(spec.method)
    init = resolve(cfg["model"], spec.method, spec.variant)
    rgb = 3 if init.rgb else 1  # pretrained input: every grey channel → RGB
    weights, weights_sha256 = weights_key(init)  # content-keyed: moving the cache retrains nothing
    in_channels = {m: rgb * (1 if m == "us" else int(spec.T or 1))
                   for m in entry.consumed(node.modality)}
    t = method_train(cfg, spec.method)
    lr = t["lr"] * t["loop_lr_decay"] ** node.loop
    return {
        "model": spec.method, "variant": spec.variant, "in_channels": in_channels,
        "img_size": cfg["data"]["size"],
        "injection": spec.injection if entry.gates_skips else "input_channel",
        "weights": weights, "weights_sha256": weights_sha256, "norm": init.norm,
        "max_epochs": t["max_epochs"], "min_epochs": t["min_epochs"],
        "batch_size": t["batch_size"], "lr": lr, "min_lr": min(t["min_lr"], lr),
        "weight_decay": t["weight_decay"], "patience": t["patience"],
        "converge_eps": t["converge_eps"], "converge_window": t["converge_window"],
        "bce_weight": t["bce_weight"], "augment": dict(t["augment"]), "seed": spec.seed,
        "amp": t["amp"],
    }


def train_config(protocol: dict[str, Any], node: Node, threads: int = 1):
    """The :class:`~iman.train.TrainConfig` of one node from its protocol."""
    from iman.train import TrainConfig
    from iman.weights import locate

    fields = dict(protocol)
    digest = fields.pop("weights_sha256", None)
    if fields.get("weights"):  # a cache file name (or a config path) → the file, digest-checked
        fields["weights"] = str(locate(fields["weights"], digest))
    return TrainConfig(**fields, threads=threads,
                       meta={"run": node.run, "modality": node.modality, "loop": node.loop})


def train_node(protocol: dict[str, Any], node: Node, cache_dir: Path, splits_file: Path,
               fold: int, frames_file: Path | None, checkpoints: CheckpointFiles,
               pred_out: Path, provenance_out: Path, init_weights: Path | None = None,
               margins_file: Path | None = None, margins_threshold: float | None = None,
               threads: int = 1, progress: bool = True) -> dict[str, Any]:
    """Train one branch/loop (``checkpoints``), then predict every case with its best
    weights (``pred_out``).

    ``provenance_out`` records the protocol, the node, the device, the training summary and
    the environment (git commit, package versions) that produced it.
    """
    import time

    import psutil
    import torch

    from iman.data.dataset import load_cases, load_margins
    from iman.models import get_entry
    from iman.provenance import environment
    from iman.train import Trainer, build_from_checkpoint, predict_probs

    clock = {"start": time.time() - psutil.Process().create_time()}
    t0 = time.perf_counter()
    tcfg = train_config(protocol, node, threads)
    entry = get_entry(tcfg.model)
    inputs = entry.consumed(node.modality)
    split = read_split(splits_file, fold)
    margins = load_margins(margins_file)
    load = lambda ids: load_cases(cache_dir, ids, inputs, node.modality, frames_file,  # noqa: E731
                                  margins, tcfg.norm)
    trainer = Trainer(tcfg, load(split["train"]), load(split["val"]), checkpoints, init_weights)
    clock["setup"], t0 = time.perf_counter() - t0, time.perf_counter()
    summary = trainer.fit(progress=progress)
    clock["fit"], t0 = time.perf_counter() - t0, time.perf_counter()
    model, _ = build_from_checkpoint(checkpoints.best, trainer.device)
    every = sorted(split["train"] + split["val"] + split["test"])
    probs = predict_probs(model, load(every), trainer.device, tcfg.batch_size, tcfg.amp)
    np.savez_compressed(pred_out, **{c: p.astype(np.float16) for c, p in zip(every, probs)})
    clock["predict"] = time.perf_counter() - t0
    device = (trainer.device if trainer.device == "cpu"
              else f"cuda:{torch.cuda.get_device_name()}")
    record = {"node": {"run": node.run, "modality": node.modality, "loop": node.loop},
              "protocol": protocol, "fold": fold, "device": device, "threads": threads,
              "margins": (None if margins_file is None else
                          {"file": margins_file.name, "threshold": margins_threshold}),
              "training": summary, "environment": environment(),
              "seconds": {k: round(v, 3) for k, v in clock.items()}}
    provenance_out.write_text(json.dumps(record, indent=1))
    return summary


def make_margins_node(pred_file: Path, manifest_file: Path, modality: str, kernel: int,
                      filt: str, threshold: float, out_file: Path) -> None:
    """MMG on one node's predictions of every case → margins npz (working resolution)."""
    import pandas as pd

    from iman.mmg import make_margins, original_sizes

    sizes = original_sizes(pd.read_csv(manifest_file, dtype={"case_id": str}), modality)
    with np.load(pred_file) as npz:
        preds = {k: npz[k].astype(np.float32) for k in npz.files}
    _save_margins(make_margins(preds, sizes, kernel, filt, threshold=threshold), out_file)


def _save_margins(margins: dict[str, np.ndarray], out_file: Path) -> None:
    """Write a margins npz atomically (no half-written file under its final name)."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp.npz")
    np.savez_compressed(tmp, **margins)
    tmp.replace(out_file)


def make_oracle_margins(cache_dir: Path, manifest_file: Path, modality: str, kernel: int,
                        filt: str, threshold: float, out_file: Path) -> None:
    """MMG on every case's ground-truth ``modality`` mask → margins npz (oracle control).

    A diagnostic upper bound, never a method: the margins a branch would receive if the other
    branch predicted its lesion perfectly (training and test cases alike).
    """
    import pandas as pd

    from iman.mmg import make_margins, original_sizes

    manifest = pd.read_csv(manifest_file, dtype={"case_id": str})
    masks = {}
    for case in manifest["case_id"]:
        with np.load(case_file(cache_dir, case)) as c:
            masks[case] = c[f"{modality}_mask"].astype(np.float32)
    sizes = original_sizes(manifest, modality)
    _save_margins(make_margins(masks, sizes, kernel, filt, threshold=threshold), out_file)


def make_mismatched_margins(margins_file: Path, manifest_file: Path, splits_file: Path,
                            fold: int, seed: int, out_file: Path, donors_file: Path) -> None:
    """Each case receives the margins of another patient's case of its own split subset
    (:func:`iman.data.split.cross_patient_derangement`, seeded): the negative control.

    ``donors_file``: the case → donor map (JSON), for inspection and the tests.
    """
    import pandas as pd

    from iman.data.split import cross_patient_derangement

    manifest = pd.read_csv(manifest_file, dtype={"case_id": str, "patient_id": str})
    patients = dict(zip(manifest["case_id"], manifest["patient_id"]))
    split = read_split(splits_file, fold)
    with np.load(margins_file) as npz:
        margins = {k: npz[k] for k in npz.files}
    out: dict[str, np.ndarray] = {}
    donors: dict[str, str] = {}
    for i, subset in enumerate(("train", "val", "test")):
        if split[subset]:
            donors.update(cross_patient_derangement(split[subset], patients, seed * 7 + i))
    for case, donor in donors.items():
        out[case] = margins[donor]
    _save_margins(out, out_file)
    Path(donors_file).write_text(json.dumps(donors, indent=1, sort_keys=True))


def evaluate_node(pred_file: Path, cache_dir: Path, splits_file: Path, modality: str,
                  fold: int, out_csv: Path) -> pd.DataFrame:
    """Per-case metrics (both families) for the val and test cases of one node."""
    import pandas as pd

    from iman.metrics import case_metrics

    split = read_split(splits_file, fold)
    rows = []
    with np.load(pred_file) as preds:
        for subset in ("val", "test"):
            for case in split[subset]:
                with np.load(case_file(cache_dir, case)) as c:
                    m = case_metrics(preds[case].astype(np.float32), c[f"{modality}_mask"],
                                     c[f"{modality}_mask_orig"],
                                     float(c[f"{modality}_spacing_mm"]))
                rows.append({"case_id": case, "split": subset, **m})
    df = pd.DataFrame(rows)
    df.to_csv(out_csv, index=False)
    return df
