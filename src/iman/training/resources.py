"""A training job's resources (``mem_mb``, ``runtime``, ``gpu_mem_mb``) from the rehearsal's
``resources.csv``: its kind's measurements at the job's batch size and epochs, with headroom.

Memory: the RSS after the model was built plus the growth during the steps, the growth
scaled linearly from the measured to the job's batch size, times :data:`HEADROOM` ``mem``.
Runtime: the kind's predicted job time at the job's ``max_epochs`` (:func:`job_seconds`; an
upper bound: early stopping ends most jobs sooner) plus a fixed start-up allowance, times
``runtime``. GPU memory: ``max_memory_reserved`` likewise (only
when the rehearsal ran on CUDA). Each retry (``attempt``) asks for 50 % more memory and time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CLUSTER_FALLBACK", "FALLBACK", "HEADROOM", "JobResources", "job_resources",
           "job_seconds", "read_resources"]

HEADROOM = {"mem": 1.3, "runtime": 1.5, "gpu_mem": 1.2}
"""Factors over the rehearsal's measurements (docs/slurm.md)."""
STARTUP_S = 300.0
"""Seconds a job spends around its epochs: start-up, loading the data, the weights file."""
RETRY_GROWTH = 0.5
"""Extra memory and time per retry (attempt 2 asks 1.5x, attempt 3 2x)."""


@dataclass(frozen=True)
class JobResources:
    """What one training job asks for."""

    mem_mb: int
    runtime: int  # minutes
    gpu_mem_mb: int  # 0: no GPU measurement (CPU rehearsal, or none)


FALLBACK = JobResources(mem_mb=4000, runtime=60, gpu_mem_mb=0)
"""Resources of a job without a rehearsal measurement of its kind, run on this machine."""
CLUSTER_FALLBACK = JobResources(mem_mb=32000, runtime=720, gpu_mem_mb=0)
"""The same on a cluster (a non-local executor, e.g. SLURM): what the SLURM profile asked
for every training job before the rehearsal existed, so a cluster run without a rehearsal
keeps the values it had (a dry run is local and shows :data:`FALLBACK`)."""


@functools.cache
def _read(path: str, mtime: float) -> dict[str, dict[str, Any]]:
    df = pd.read_csv(path)
    return {r["kind"]: r for r in df[df["status"] == "ok"].to_dict("records")}


def read_resources(path: str | Path) -> dict[str, dict[str, Any]]:
    """The measured (``status == ok``) rows of a ``resources.csv`` by kind key; {} when the
    file does not exist. Cached per file version."""
    p = Path(path)
    return _read(str(p), p.stat().st_mtime) if p.exists() else {}


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def job_seconds(row: Mapping[str, Any], epochs: float) -> float:
    """Predicted wall seconds of one job of a kind at ``epochs`` epochs (steps scaled
    linearly from the measured to the configured batch size)."""
    scale = row["configured_batch_size"] / row["batch_size"]
    per_epoch = (row["steps_per_epoch"] * row["s_per_step"] * scale
                 + row["val_batches"] * row["s_val_batch"] * scale)
    margins = row["s_margins_per_case"] if pd.notna(row["s_margins_per_case"]) else 0.0
    return epochs * per_epoch + row["eval_cases"] * (row["s_per_eval_case"] + margins)


def job_resources(row: dict[str, Any] | None, batch_size: int, max_epochs: int,
                  attempt: int = 1, cluster: bool = False) -> JobResources:
    """Resources of a job of the kind measured in ``row``; without a row :data:`FALLBACK`,
    or :data:`CLUSTER_FALLBACK` when the job is submitted to a ``cluster``."""
    if row is None:
        return CLUSTER_FALLBACK if cluster else FALLBACK
    grow = 1 + RETRY_GROWTH * (attempt - 1)
    scale = batch_size / row["batch_size"]
    rss = row["rss_model_mb"] + max(0.0, row["rss_peak_mb"] - row["rss_model_mb"]) * scale
    seconds = job_seconds({**row, "configured_batch_size": batch_size}, max_epochs)
    gpu = row.get("cuda_max_reserved_mb")
    gpu_mb = 0 if gpu is None or pd.isna(gpu) else _round_up(
        gpu * scale * HEADROOM["gpu_mem"] * grow, 1024)
    return JobResources(
        mem_mb=_round_up(rss * HEADROOM["mem"] * grow, 100),
        runtime=max(10, _round_up((seconds + STARTUP_S) * HEADROOM["runtime"] * grow / 60, 5)),
        gpu_mem_mb=gpu_mb)
