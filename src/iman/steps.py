"""Light workflow steps: one typed function per rule (split, frames, summaries, tables, cost,
figures, provenance).

They only read and write small files and never import torch, so each job starts fast. Each
rule's script in ``workflow/scripts/`` unpacks its job's named inputs, outputs and params and
calls exactly one of these (or one function of ``iman.pipeline`` / ``iman.data``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iman.experiments import Node, experiment_nodes, node_for, parse_name
from iman.names import MODALITIES, node_key, per_case_key, pred_key, summary_key
from iman.paths import case_file

__all__ = ["STAT_METRICS", "concat_stats", "cost_table", "frame_picks", "margin_pathway_figure",
           "qualitative_figure", "record_run", "split_cases", "stats_table", "summarize",
           "table"]


def split_cases(manifest: Path, out: Path, ratios: Sequence[float], seed: int, folds: int,
                use_source_split: bool, sizes: Mapping[str, int] | None = None) -> None:
    """Patient-grouped split(s) → splits.json."""
    from iman.data.split import write_splits

    df = pd.read_csv(manifest, dtype={"case_id": str, "patient_id": str})
    write_splits(df, out, list(ratios), seed, folds, use_source_split,
                 dict(sizes) if sizes else None)


def frame_picks(manifest: Path, cache_dir: Path, out: Path, strategy: str, T: int,
                step: int) -> None:
    """Frame indices of every cached case for one (T, step, strategy)."""
    from iman.data.frames import write_frames

    df = pd.read_csv(manifest, dtype={"case_id": str})
    write_frames({c: case_file(cache_dir, c) for c in df["case_id"]}, out, strategy, T, step)


def summarize(experiment: str, files: Mapping[str, str | Path], summary_out: Path,
              per_case_out: Path) -> None:
    """Select each branch's loop by validation DSC; write the summary and the per-case rows.

    ``files`` holds each reported node's ``metrics.csv`` and ``provenance.json`` under
    :func:`node_key` names; the summary records the chosen nodes' provenance, the per-case
    rows their experiment's ``seed`` and ``fold`` (empty for the hold-out split).
    """
    from iman.tables import summarize_experiment

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


def table(name: str, rows: Sequence[tuple[dict[str, Any], Sequence[str]]],
          files: Mapping[str, str | Path], csv: Path, md: Path, tex: Path,
          html: Path) -> None:
    """One paper table (``csv``, ``md``, ``tex``, ``html``) from its rows (labels, experiment
    names), their summaries (:func:`~iman.names.summary_key`), per-case rows
    (:func:`~iman.names.per_case_key`) and the table's paired comparisons (``stats``)."""
    from iman.experiments import row_label
    from iman.tables import add_significance, build_table, init_note, write_table

    loaded = {exp: json.loads(Path(files[summary_key(exp)]).read_text())
              for _, exps in rows for exp in exps}
    df = build_table(name, [(dict(lab), [loaded[e] for e in exps]) for lab, exps in rows])
    per_case = {exp: pd.read_csv(files[per_case_key(exp)], dtype={"case_id": str})
                for _, exps in rows for exp in exps}
    separation = add_significance(
        df, [row_label(dict(lab)) for lab, _ in rows],
        [[per_case[e] for e in exps] for _, exps in rows], pd.read_csv(files["stats"]))
    init = init_note([(row_label(dict(lab)), [loaded[e] for e in exps]) for lab, exps in rows])
    write_table(name, df, csv, md, tex, html, separation, init)


STAT_METRICS = {"std_dsc": ("DSC", True), "std_hd_mm": ("HD (mm)", False)}
"""Metrics tested per comparison, with (label, higher is better): the standard DSC and
Hausdorff distance."""

_STATS_COLUMNS = ["table", "row", "reference", "primary", "modality", "metric", "better",
                 "n_runs", "n_cases", "mean_diff", "ci_low", "ci_high", "p", "p_holm",
                 "effect_size", "test", "ci_method"]
"""Columns of ``stats.csv`` (docs/statistics.md)."""


def stats_table(comparisons: Sequence[tuple[str, str, str, Sequence[str], Sequence[str]]],
                per_case: Mapping[str, str | Path], out: Path,
                modalities: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Every paired comparison of every table → ``stats.csv`` (docs/statistics.md).

    ``comparisons``: (table, row, reference row, row experiments, reference experiments);
    ``per_case``: each experiment's ``per_case.csv`` under :func:`~iman.names.per_case_key`;
    ``modalities``: table → the
    modalities it tests (default :data:`iman.tables.TABLE_MODALITIES`: Table III CEUS only,
    the others US and CEUS). ``primary`` marks a comparison against the row's table reference
    row (:func:`iman.stats.table_reference_flags`), the one a table's ``*`` shows; ``better``
    is the sign of ``mean_diff`` (and ``effect_size``) that means the row is better. Holm's
    correction runs within each table, modality and metric.
    """
    from iman.stats import CI_METHOD, TEST, case_means, compare, holm, table_reference_flags
    from iman.tables import table_modalities

    def tested(table: str) -> Sequence[str]:
        return modalities.get(table, ("us", "ceus")) if modalities is not None else (
            table_modalities(table))

    comparisons = [tuple(c) for c in comparisons]
    primary: dict[tuple[str, str, str], bool] = {}
    for table in dict.fromkeys(c[0] for c in comparisons):
        own = [c for c in comparisons if c[0] == table]
        flags = table_reference_flags([c[1] for c in own], [c[2] for c in own])
        primary.update({(c[0], c[1], c[2]): f for c, f in zip(own, flags)})
    frames = {e: pd.read_csv(per_case[per_case_key(e)], dtype={"case_id": str})
              for _, _, _, a, b in comparisons for e in (*a, *b)}
    records = []
    for table, row, ref, row_exps, ref_exps in comparisons:
        for modality in tested(table):
            pick = [f[f["modality"] == modality] for e in row_exps for f in [frames[e]]]
            base = [f[f["modality"] == modality] for e in ref_exps for f in [frames[e]]]
            if not any(len(f) for f in pick) or not any(len(f) for f in base):
                continue
            for metric, (_, higher) in STAT_METRICS.items():
                c = compare(case_means(pick, metric), case_means(base, metric))
                records.append({"table": table, "row": row, "reference": ref,
                                "primary": primary[(table, row, ref)], "modality": modality,
                                "metric": metric, "better": "positive" if higher else "negative",
                                "n_runs": len(row_exps), **c.as_dict(), "test": TEST,
                                "ci_method": CI_METHOD})
    df = pd.DataFrame(records, columns=[c for c in _STATS_COLUMNS if c != "p_holm"])
    df.insert(df.columns.get_loc("p") + 1, "p_holm", float("nan"))
    for _, idx in df.groupby(["table", "modality", "metric"]).groups.items():
        df.loc[idx, "p_holm"] = holm(df.loc[idx, "p"].to_numpy())
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    return df


def concat_stats(files: Sequence[str | Path], out: Path) -> None:
    """The per-table comparison files as one ``stats.csv`` (table order kept)."""
    frames = [pd.read_csv(f) for f in files]
    pd.concat(frames, ignore_index=True).to_csv(out, index=False, float_format="%.6g")


def cost_table(histories: Sequence[str | Path], provenances: Sequence[str | Path],
               benchmarks: Sequence[str | Path], out: Path) -> None:
    """Cost table of every training job and the total (benchmarks that exist): time from
    the benchmarks and histories, the device from each node's provenance record."""
    from iman.cost import collect_costs, write_cost_table

    bench = [Path(p) for p in benchmarks if Path(p).exists()]
    write_cost_table(collect_costs(bench, [Path(p) for p in histories],
                                   [Path(p) for p in provenances]), out)


def qualitative_figure(methods: Sequence[str], reference: str, files: Mapping[str, str | Path],
                       cache_dir: Path, n_cases: int, png: Path, pdf: Path) -> None:
    """Fig. 3 grid: each method's selected-loop predictions on test cases spread over the
    ``reference`` method's DSC range (IMAN in the workflow).

    ``files`` holds per method its summary, per-case rows and every candidate loop's
    predictions (:func:`~iman.names.summary_key`, :func:`~iman.names.per_case_key`,
    :func:`~iman.names.pred_key`, keyed by the method's name).
    """
    from iman.figures import pick_cases, qualitative_grid
    from iman.tables import METHOD_LABELS

    preds = {}
    for method in methods:
        summary = json.loads(Path(files[summary_key(method)]).read_text())
        preds[METHOD_LABELS.get(method, method)] = {
            m: Path(files[pred_key(method, Node(b["run"], m, b["loop"]))])
            for m, b in summary["branches"].items()}
    reference_rows = pd.read_csv(files[per_case_key(reference)], dtype={"case_id": str})
    cases = pick_cases(reference_rows, n_cases)
    qualitative_grid({c: case_file(cache_dir, c) for c in cases}, preds, png, pdf)


def margin_pathway_figure(experiment: str, files: Mapping[str, str | Path], cache_dir: Path,
                          png: Path, pdf: Path) -> None:
    """The 'X' pathway of one test case across an IMAN experiment's loops.

    ``files`` holds the experiment's per-case rows (:func:`~iman.names.per_case_key`) and,
    by :func:`~iman.names.node_key`, each loop's predictions and the margins each branch
    received.
    """
    from iman.figures import margin_pathway, pick_cases

    spec = parse_name(experiment)
    case = pick_cases(pd.read_csv(files[per_case_key(experiment)], dtype={"case_id": str}),
                      1)[0]
    entries = []
    for loop in range((spec.loops or 0) + 1):
        entry: dict[str, Path] = {}
        for m in MODALITIES:
            node = node_for(spec, m, loop)
            entry[f"{m}_pred"] = Path(files[node_key(node, "pred")])
            if node_key(node, "margin") in files:
                entry[f"{m}_margin"] = Path(files[node_key(node, "margin")])
        entries.append(entry)
    margin_pathway(case, case_file(cache_dir, case), entries, png, pdf)


def record_run(config: Mapping[str, Any], config_out: Path, provenance_out: Path) -> None:
    """The resolved config (as ``iman config`` prints it) and the run's environment."""
    from iman.config import dump_config
    from iman.provenance import environment

    config_out.write_text(dump_config(config))
    provenance_out.write_text(json.dumps({"config": config, **environment()}, indent=1))
