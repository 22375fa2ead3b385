"""Per-case metrics of a node (evaluate rule) and an experiment's summary: each branch's loop
chosen by validation DSC, that loop's test rows (summarize rule).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.data.split import read_split
from iman.experiments import Node, experiment_nodes, parse_name
from iman.names import node_key
from iman.paths import case_file

__all__ = ["SELECT_BY", "evaluate_node", "summarize", "summarize_experiment"]


def evaluate_node(pred_file: Path, cache_dir: Path, splits_file: Path, modality: str,
                  fold: int, out_csv: Path) -> pd.DataFrame:
    """Per-case metrics (both families) for the val and test cases of one node."""
    from iman.evaluation.metrics import case_metrics

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



SELECT_BY = "std_dsc"



def summarize_experiment(name: str, nodes: list[Node], metric_files: list[Path]
                         ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick each branch's loop by validation DSC: the summary and the chosen loops' test rows
    (``modality`` and ``loop`` columns added). Reads the metric files, writes nothing."""
    branches: dict[str, Any] = {}
    per_case = []
    for modality in dict.fromkeys(n.modality for n in nodes):
        loops = {}
        for node, path in zip(nodes, metric_files):
            if node.modality != modality:
                continue
            df = pd.read_csv(path, dtype={"case_id": str})
            val, test = df[df.split == "val"], df[df.split == "test"]
            loops[node.loop] = (float(val[SELECT_BY].mean()), test, node)
        chosen = max(loops, key=lambda lp: (loops[lp][0], -lp))
        _, test, node = loops[chosen]
        metrics = [c for c in test.columns if c not in ("case_id", "split")]
        branches[modality] = {
            "loop": chosen, "run": node.run, "n_test": len(test),
            "val_dsc_by_loop": {str(lp): v[0] for lp, v in sorted(loops.items())},
            "test_dsc_by_loop": {str(lp): float(v[1][SELECT_BY].mean())
                                 for lp, v in sorted(loops.items())},
            "test": {c: {"mean": float(test[c].mean()),
                         "std": float(test[c].std(ddof=1)) if len(test) > 1 else None}
                     for c in metrics},
        }
        per_case.append(test.assign(modality=modality, loop=chosen))
    summary = {"experiment": name, "selection": f"loop with best mean validation {SELECT_BY}",
               "branches": branches}
    return summary, pd.concat(per_case)



def summarize(experiment: str, files: Mapping[str, str | Path], summary_out: Path,
              per_case_out: Path) -> None:
    """Select each branch's loop by validation DSC; write the summary and the per-case rows.

    ``files`` holds each reported node's ``metrics.csv`` and ``provenance.json`` under
    :func:`node_key` names; the summary records the chosen nodes' provenance, the per-case
    rows their experiment's ``seed`` and ``fold`` (empty for the hold-out split).
    """
    spec = parse_name(experiment)
    nodes = experiment_nodes(spec)
    summary, rows = summarize_experiment(
        experiment, nodes, [Path(files[node_key(n, "metrics")]) for n in nodes])
    chosen = {m: Node(b["run"], m, b["loop"]) for m, b in summary["branches"].items()}
    summary["provenance"] = {
        m: json.loads(Path(files[node_key(n, "provenance")]).read_text())
        for m, n in chosen.items()}
    for path in (summary_out, per_case_out):
        path.parent.mkdir(parents=True, exist_ok=True)
    summary_out.write_text(json.dumps(summary, indent=1))
    rows.assign(seed=spec.seed, fold=spec.fold).to_csv(per_case_out, index=False)
