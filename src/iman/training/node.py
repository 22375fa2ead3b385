"""One training node, as the train rule runs it: its protocol (the rule's params, generated
from the :class:`~iman.training.settings.TrainConfig` fields), its ``TrainConfig``, and
training + prediction of every case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iman.data.split import read_split
from iman.experiments import Node, Spec, parse_name
from iman.training.settings import TrainConfig, protocol_fields, recorded

if TYPE_CHECKING:
    from iman.training.trainer import CheckpointFiles

__all__ = ["node_protocol", "train_config", "train_node"]


def node_protocol(cfg: dict[str, Any], node: Node) -> dict[str, Any]:
    """The resolved training protocol of one node: every
    :class:`~iman.training.settings.TrainConfig` field that changes what is learned, in
    field order; ``train`` fields from the method's train settings, ``node`` fields from the
    node (:func:`_node_values`).

    It is the train rule's ``params``, so a change to any of it retrains the node (and
    everything downstream); machine settings (threads) and labels (meta) are left out.
    """
    from iman.config import method_train

    spec = parse_name(node.run)
    t = method_train(cfg, spec.method)
    values = {**t, **_node_values(cfg, node, spec, t)}
    return {f.name: values[f.name] for f in protocol_fields() if recorded(f, values[f.name])}


def _node_values(cfg: dict[str, Any], node: Node, spec: Spec,
                 t: dict[str, Any]) -> dict[str, Any]:
    """The ``node`` fields (model, data shape, injection, weights, seed) and the loop's
    learning rates (``lr`` × ``loop_lr_decay``**loop, ``min_lr`` at most that) and epoch
    budget (``loop_max_epochs`` / ``loop_patience`` for loops ≥ 1, :func:`_epoch_budget`)."""
    from iman.models import get_entry
    from iman.training.weights import resolve, weights_key

    entry = get_entry(spec.method)
    init = resolve(cfg["model"], spec.method, spec.variant)
    rgb = 3 if init.rgb else 1  # pretrained input: every grey channel → RGB
    weights, weights_sha256 = weights_key(init)  # content-keyed: moving the cache retrains nothing
    in_channels = {m: rgb * (1 if m == "us" else int(spec.T or 1))
                   for m in entry.consumed(node.modality)}
    lr = t["lr"] * t["loop_lr_decay"] ** node.loop
    max_epochs, patience = _epoch_budget(t, node.loop)
    return {
        "model": spec.method, "variant": spec.variant, "in_channels": in_channels,
        "img_size": cfg["data"]["size"],
        "injection": spec.injection if entry.gates_skips else "input_channel",
        "weights": weights, "weights_sha256": weights_sha256, "norm": init.norm,
        "seed": spec.seed, "lr": lr, "min_lr": min(t["min_lr"], lr),
        "augment": dict(t["augment"]),
        "max_epochs": max_epochs, "patience": patience,
        "min_epochs": min(t["min_epochs"], max_epochs),
    }


def _epoch_budget(t: dict[str, Any], loop: int) -> tuple[int, int]:
    """(max_epochs, patience) of a node at ``loop``: warm-started loops (l >= 1) take
    ``loop_max_epochs`` / ``loop_patience`` where set."""
    if loop == 0:
        return t["max_epochs"], t["patience"]
    return t["loop_max_epochs"] or t["max_epochs"], t["loop_patience"] or t["patience"]


def train_config(protocol: dict[str, Any], node: Node, threads: int = 1) -> TrainConfig:
    """The :class:`~iman.training.settings.TrainConfig` of one node from its protocol (a
    field the protocol does not record takes its default)."""
    from iman.training.weights import locate

    fields = dict(protocol)
    if fields.get("weights"):  # a cache file name (or a config path) → the file, digest-checked
        fields["weights"] = str(locate(fields["weights"], fields.get("weights_sha256")))
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
    from iman.models.registry import method_record
    from iman.provenance import environment
    from iman.training.trainer import Trainer, build_from_checkpoint, predict_probs

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
              "method": method_record(tcfg.model), "protocol": protocol, "fold": fold,
              "device": device, "threads": threads,
              "margins": (None if margins_file is None else
                          {"file": margins_file.name, "threshold": margins_threshold}),
              "training": summary, "environment": environment(),
              "seconds": {k: round(v, 3) for k, v in clock.items()}}
    provenance_out.write_text(json.dumps(record, indent=1))
    return summary
