"""Share of every training job that is not training, from a finished run's own records.

For each training node: job wall time (Snakemake ``benchmark:`` TSV under
``results/benchmarks/train/``) and epoch time (Σ ``seconds`` of its ``history.csv``).
Overhead = wall − epochs: process start, imports, Snakemake's script preamble, data
loading, predicting every case. Prints one row per method and branch, the totals, and the
share of nodes that stopped at the epoch cap (still learning).

    .venv/bin/python benchmarks/workflow_overhead.py                  # ./results
    .venv/bin/python benchmarks/workflow_overhead.py --results /tmp/run/results --top 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from iman.experiments import Node, parse_name
from iman.paths import NodeFiles, Paths, parse_node
from iman.reporting.cost import collect_costs


def overhead_table(results: Path) -> pd.DataFrame:
    """One row per training node: wall, epoch seconds, overhead, epochs, val DSC."""
    paths = Paths(str(results))
    benches = sorted(Path(paths.root).glob("benchmarks/train/**/*.tsv"))
    folders = sorted(Path(paths.root).glob("runs/*/*/loop*"))
    histories = [p for d in folders if (p := Path(NodeFiles(str(d)).history)).exists()]
    records = [p for d in folders if (p := Path(NodeFiles(str(d)).provenance)).exists()]
    if not benches or not histories:
        raise SystemExit(f"no benchmarks/histories under {results}: run the workflow first")
    df = collect_costs(benches, histories, records)
    best = {parse_node(h): float(pd.read_csv(h)["val_dice"].max()) for h in histories}
    df["method"] = [parse_name(r).method for r in df["run"]]
    df["best_val_dsc"] = [best.get(Node(r, m, int(lp)), float("nan"))
                          for r, m, lp in zip(df["run"], df["modality"], df["loop"])]
    df["overhead_seconds"] = df["wall_seconds"] - df["train_seconds"]
    return df


def main(argv: list[str] | None = None) -> int:
    """Print the overhead summary of one results folder."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results", type=Path)
    ap.add_argument("--max-epochs", type=int, default=None,
                    help="epoch cap of the run (to count nodes that hit it)")
    args = ap.parse_args(argv)
    df = overhead_table(args.results)
    wall, train = df["wall_seconds"].sum(), df["train_seconds"].sum()
    by = df.groupby(["method", "modality"]).agg(
        nodes=("run", "size"), wall_s=("wall_seconds", "sum"), epochs_s=("train_seconds", "sum"),
        overhead_s=("overhead_seconds", "mean"), epochs=("epochs", "mean"))
    # the worst loop-0 node of each method and branch (every frame count, backbone, seed)
    by["loop0_best_val_dsc"] = (df[df["loop"] == 0]
                                .groupby(["method", "modality"])["best_val_dsc"].min())
    pd.set_option("display.width", 160)
    print(by.round(3).to_string())
    print(f"\ntraining nodes: {len(df)}")
    print(f"sum of job wall time: {wall:.1f} s; sum of epoch time: {train:.1f} s")
    print(f"overhead share (wall - epochs) / wall: {100 * (wall - train) / wall:.1f} %")
    print(f"mean overhead per job: {df['overhead_seconds'].mean():.2f} s")
    if args.max_epochs:
        capped = int((df["epochs"] >= args.max_epochs).sum())
        print(f"nodes at the {args.max_epochs}-epoch cap: {capped} of {len(df)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
