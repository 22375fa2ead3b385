"""Light workflow steps (split, frames, margins, evaluate, summaries, tables, cost).

They only read and write small files and never import torch, so each job starts fast;
``workflow/scripts/step.py`` dispatches to them by the rule's ``params.step``.
Every step takes the job's ``(input, output, params, wildcards, log)`` and records success
or the traceback in the rule's log.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import pandas as pd

from iman.experiments import Node, experiment_name, table_specs

__all__ = ["cost", "evaluate", "frames", "margins", "split", "summarize", "table"]

Step = Callable[[Any, Any, Any, Any], None]


def _step(func: Step) -> Callable[..., None]:
    """Run ``func(input, output, params, wildcards)``; log 'done' or the traceback."""

    @wraps(func)
    def run(input: Any, output: Any, params: Any, wildcards: Any, log: Any) -> None:
        log_file = Path(log[0])
        log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            func(input, output, params, wildcards)
        except Exception:
            log_file.write_text(traceback.format_exc())
            raise
        log_file.write_text("done\n")

    return run


@_step
def split(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """Patient-grouped split(s) → splits.json."""
    from iman.data.split import write_splits

    s = params.split
    df = pd.read_csv(input.manifest, dtype={"case_id": str, "patient_id": str})
    write_splits(df, Path(output[0]), s["ratios"], s["seed"], s["folds"], s["use_source_split"])


@_step
def frames(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """Frame indices of every cached case for one (T, step, strategy)."""
    from iman.data.frames import write_frames

    df = pd.read_csv(input.manifest, dtype={"case_id": str})
    files = {c: Path(input.cache) / f"{c}.npz" for c in df["case_id"]}
    write_frames(files, Path(output[0]), wildcards.strategy, int(wildcards.T),
                 int(wildcards.step))


@_step
def margins(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """MMG on one node's predictions of every case."""
    from iman.pipeline import make_margins_node

    make_margins_node(Path(input.pred), Path(input.manifest), wildcards.modality,
                      int(wildcards.kernel), wildcards.filter, params.threshold,
                      Path(output[0]))


@_step
def evaluate(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """Per-case metrics of one node (val and test cases)."""
    from iman.pipeline import evaluate_node

    evaluate_node(Path(input.pred), Path(input.manifest).parent / "cache", Path(input.splits),
                  wildcards.modality, params.fold, Path(output[0]))


@_step
def summarize(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """Select each branch's loop by validation DSC and write the experiment summary."""
    from iman.tables import summarize_experiment

    summarize_experiment(wildcards.exp, [Node(r, m, int(lp)) for r, m, lp in params.nodes],
                         [Path(p) for p in input], Path(output.summary))


@_step
def table(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """One paper table from its experiments' summaries."""
    from iman.tables import build_table, write_table

    summaries = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in input}
    rows = [(labels, [summaries[experiment_name(s)] for s in specs])
            for labels, specs in table_specs(params.config, wildcards.table)]
    write_table(wildcards.table, build_table(wildcards.table, rows),
                Path(output.csv).with_suffix(""))


@_step
def cost(input: Any, output: Any, params: Any, wildcards: Any) -> None:
    """Cost table of every training job and the total."""
    from iman.cost import collect_costs, write_cost_table

    bench = [Path(p) for p in params.benchmarks if Path(p).exists()]
    write_cost_table(collect_costs(bench, [Path(p) for p in input]), Path(output[0]))
