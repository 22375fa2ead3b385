"""Compute cost of the training jobs, from Snakemake benchmark files and training histories.

Inputs (see docs/contracts.md):

* ``results/benchmarks/train/{run}/{modality}/loop{loop}.tsv``: Snakemake ``benchmark:`` TSV,
  header ``s  h:m:s  max_rss  max_vms  max_uss  max_pss  io_in  io_out  mean_load  cpu_time``
  (memory in MB, ``NA`` when the job ended before the first sample; one row per repeat).
* ``results/runs/{run}/{modality}/loop{loop}/history.csv``: ``epoch,train_loss,val_loss,
  val_dice,lr,seconds``;
* ``results/runs/{run}/{modality}/loop{loop}/provenance.json``: the node (``node``: run,
  modality, loop) and the ``device`` it trained on (``cpu`` or ``cuda:<name>``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iman.paths import parse_node

__all__ = ["COLUMNS", "collect_costs", "cost_table", "estimate_from_rehearsal",
           "estimate_headline", "estimate_hours", "history_node", "write_cost_table"]

#: columns of the table returned by :func:`collect_costs`
COLUMNS = ["run", "modality", "loop", "wall_seconds", "max_rss_mb", "device", "epochs",
           "train_seconds"]

Key = tuple[str, str, int]


def history_node(path: Path) -> Key:
    """(run, modality, loop) of a benchmark TSV or a history CSV path (:func:`parse_node`)."""
    node = parse_node(path)
    return node.run, node.modality, node.loop


def _read_benchmark(path: Path) -> tuple[float, float]:
    """(wall seconds summed over repeats, max RSS in MB or NaN) of one benchmark TSV."""
    bench = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    missing = {"s", "max_rss"} - set(bench.columns)
    if missing:
        raise ValueError(f"{path}: not a Snakemake benchmark file (missing {sorted(missing)})")
    if bench.empty:
        raise ValueError(f"{path}: benchmark file has no rows")
    rss = pd.to_numeric(bench["max_rss"], errors="coerce").max()
    return float(bench["s"].sum()), float(rss)


def _read_history(path: Path) -> tuple[int, float]:
    """(epochs run, summed epoch seconds) of one training history."""
    hist = pd.read_csv(path)
    missing = {"epoch", "seconds"} - set(hist.columns)
    if missing:
        raise ValueError(f"{path}: not a training history (missing {sorted(missing)})")
    # a resumed job may repeat the epoch it was interrupted in: count each epoch once
    hist = hist.drop_duplicates("epoch", keep="last")
    return len(hist), float(hist["seconds"].sum())


def _read_device(path: Path) -> tuple[Key, str]:
    """(node key, device) of one node's provenance record."""
    record = json.loads(Path(path).read_text())
    node = record["node"]
    return (node["run"], node["modality"], int(node["loop"])), record.get("device") or "unknown"


def collect_costs(benchmark_files: Sequence[Path], histories: Sequence[Path],
                  provenances: Sequence[Path] = ()) -> pd.DataFrame:
    """One row per (run, modality, loop): wall seconds, max RSS MB, device, epochs run.

    A node with a benchmark but no history (or the reverse) keeps NA in the missing columns,
    one without a provenance record the device ``unknown``; ``train_seconds`` is the sum of
    the history's per-epoch ``seconds``.
    """
    rows: dict[Key, dict[str, object]] = {}

    def row(key: Key) -> dict[str, object]:
        return rows.setdefault(key, {
            "run": key[0], "modality": key[1], "loop": key[2], "wall_seconds": float("nan"),
            "max_rss_mb": float("nan"), "device": "unknown", "epochs": pd.NA,
            "train_seconds": float("nan"),
        })

    def fill(files: Sequence[Path], what: str, read: Any, cols: tuple[str, str]) -> None:
        """Each file's two values into its node's row; a node seen twice is an error."""
        for f in files:
            key = history_node(Path(f))
            if key in rows and not pd.isna(rows[key][cols[0]]):
                raise ValueError(f"two {what} for {key}")
            row(key).update(zip(cols, read(Path(f))))

    fill(benchmark_files, "benchmark files", _read_benchmark, ("wall_seconds", "max_rss_mb"))
    fill(histories, "histories", _read_history, ("epochs", "train_seconds"))
    for record in provenances:
        key, device = _read_device(Path(record))
        row(key).update(device=device)

    df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=COLUMNS)
    return df.astype({"loop": "Int64", "epochs": "Int64", "wall_seconds": "float64",
                      "max_rss_mb": "float64", "train_seconds": "float64"})


def write_cost_table(df: pd.DataFrame, out_csv: Path) -> float:
    """Write ``df`` plus a TOTAL row (sums; max of max RSS) to ``out_csv``; return total seconds."""
    total = float(df["wall_seconds"].sum())  # NaN-skipping
    total_row = pd.DataFrame([{
        "run": "TOTAL", "modality": "", "loop": pd.NA, "wall_seconds": total,
        "max_rss_mb": df["max_rss_mb"].max() if len(df) else float("nan"),
        "device": ";".join(sorted(set(df["device"]))), "epochs": df["epochs"].sum(),
        "train_seconds": float(df["train_seconds"].sum()),
    }], columns=COLUMNS).astype(df.dtypes.to_dict())
    out = pd.concat([df, total_row], ignore_index=True) if len(df) else total_row
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_csv, index=False)  # full precision (round-trip floats)
    return total


def estimate_hours(cost: pd.DataFrame, nodes: list, epochs: float) -> pd.DataFrame:
    """Device hours of a planned run from the ``cost.csv`` of a reduced one.

    Per (method, variant, modality): the reduced run's seconds per epoch (Σ epoch seconds /
    Σ epochs) and per-job overhead (mean of wall − epoch seconds) times the planned
    ``nodes`` (:func:`iman.experiments.all_table_nodes`) at ``epochs`` epochs each. Groups
    the reduced run did not train have NaN rates (listed, not guessed). Run the reduced run
    on the same kind of device, variants and image size as the planned one.
    """
    from iman.experiments import parse_name

    def key(run: str, modality: str) -> tuple[str, str, str]:
        spec = parse_name(run)
        return spec.method, spec.variant, modality

    measured = cost[cost["run"] != "TOTAL"].dropna(subset=["wall_seconds", "train_seconds"])
    measured = measured.assign(group=[key(r, m) for r, m in zip(measured["run"],
                                                                  measured["modality"])])
    rates: dict[tuple[str, str, str], tuple[float, float, int]] = {}
    for k, g in measured.groupby("group"):
        epochs_run = float(pd.to_numeric(g["epochs"]).sum())
        per_epoch = float(g["train_seconds"].sum()) / epochs_run if epochs_run else float("nan")
        overhead = float((g["wall_seconds"] - g["train_seconds"]).clip(lower=0).mean())
        rates[k] = (per_epoch, overhead, len(g))
    planned: dict[tuple[str, str, str], int] = {}
    for n in nodes:
        k = key(n.run, n.modality)
        planned[k] = planned.get(k, 0) + 1
    rows = []
    for (method, variant, modality), count in sorted(planned.items()):
        per_epoch, overhead, measured_jobs = rates.get((method, variant, modality),
                                                      (float("nan"), float("nan"), 0))
        hours = count * (overhead + per_epoch * epochs) / 3600
        rows.append({"method": method, "variant": variant, "modality": modality,
                     "planned_jobs": count, "measured_jobs": measured_jobs,
                     "s_per_epoch": per_epoch, "overhead_s": overhead, "hours": hours})
    return pd.DataFrame(rows)


def estimate_from_rehearsal(resources: pd.DataFrame, model_cfg: Any, nodes: list,
                            epochs: float | None = None) -> pd.DataFrame:
    """Device hours of a planned run from a rehearsal's ``resources.csv``: per kind of job
    (:mod:`iman.training.kinds`), the kind's predicted job time at ``epochs`` (default: the
    rehearsed ``max_epochs``) times its planned jobs. A kind the rehearsal did not measure
    (absent, or failed) has NaN hours: listed, not guessed."""
    from iman.training.kinds import node_kind
    from iman.training.resources import job_seconds

    measured = {r["kind"]: r for r in resources[resources["status"] == "ok"].to_dict("records")}
    planned: dict[str, int] = {}
    for n in nodes:
        key = node_kind(model_cfg, n).key
        planned[key] = planned.get(key, 0) + 1
    rows = []
    for key, count in planned.items():
        r = measured.get(key)
        e = epochs if epochs else (r["max_epochs"] if r else float("nan"))
        per_job = job_seconds(r, e) if r else float("nan")
        rows.append({"kind": key, "planned_jobs": count, "measured_jobs": int(r is not None),
                     "device": r["device"] if r else "", "job_hours": per_job / 3600,
                     "hours": count * per_job / 3600})
    return pd.DataFrame(rows)


def estimate_headline(table: pd.DataFrame, epochs: float | str, group: str) -> str:
    """One line: the hours of the jobs that have a rate, and what cannot be estimated (never
    a bare "0.0 device hours" when rates are missing)."""
    known = table[table["hours"].notna()]
    unknown = table[table["hours"].isna()]
    jobs, n_known = int(table["planned_jobs"].sum()), int(known["planned_jobs"].sum())
    if known.empty:
        return (f"cannot estimate: none of the {len(table)} {group}s ({jobs} training jobs) "
                f"has a measured rate; measure them first")
    line = (f"{known['hours'].sum():.1f} device hours for {n_known} of {jobs} training jobs "
            f"({len(known)} {group}s) at {epochs} epochs each")
    if len(unknown):
        names = ", ".join(str(k) for k in unknown.iloc[:, 0].head(5))
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        line += (f"; cannot estimate {int(unknown['planned_jobs'].sum())} jobs of "
                 f"{len(unknown)} {group}s without a measured rate ({names}{more})")
    return line


def cost_table(histories: Sequence[str | Path], provenances: Sequence[str | Path],
               benchmarks: Sequence[str | Path], out: Path) -> None:
    """Cost table of every training job and the total (benchmarks that exist): time from
    the benchmarks and histories, the device from each node's provenance record."""
    bench = [Path(p) for p in benchmarks if Path(p).exists()]
    write_cost_table(collect_costs(bench, [Path(p) for p in histories],
                                   [Path(p) for p in provenances]), out)
