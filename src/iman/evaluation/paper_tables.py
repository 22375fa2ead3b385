"""The numbers of a paper table (rule ``table_data``): its rows' mean ± std over runs, the
printed paper values, the distinct test cases behind each row, each row's Holm-adjusted p
against its table reference row, and which best mean differs from its runner-up.

Experiment summaries and per-case rows → :func:`build_table` (rows of a paper table) →
:func:`add_significance` (case counts, ``*`` against each row's table reference, best vs
runner-up) → :func:`table_data` writes the tidy table (``<table>.csv``) and its marks
(``<table>_marks.json``), all that :mod:`iman.reporting.tables` needs to render it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.evaluation.metrics import REPORTED_METRICS
from iman.models.registry import method_label
from iman.names import MODALITIES, per_case_key, summary_key

__all__ = ["PAPER_BESIDE", "REPORTED", "TABLE_MODALITIES", "add_significance", "build_table",
           "empty_penalties", "init_files", "paper_values", "table_data", "table_modalities"]


REPORTED = {short: (m.column, m.higher) for short, m in REPORTED_METRICS.items()}
"""Reported columns: name in the table -> (metric column, higher is better)."""
PAPER_BESIDE = {short: m.printed for short, m in REPORTED_METRICS.items() if m.printed}
"""Reported paper-compatible column -> the printed paper value it is compared with (the CSV
column ``paper_<mod>_<printed>``, docs/metrics.md): what tables and figures put beside it."""



TABLE_MODALITIES: dict[str, tuple[str, ...]] = {"table3": ("ceus",)}
"""Modalities a table reports and tests when not both (Table III: CEUS only; every frame
count shares one US node, so its US comparisons would be a node against itself)."""



def table_modalities(table: str) -> tuple[str, ...]:
    """The modalities of a table's columns and of its paired comparisons."""
    return TABLE_MODALITIES.get(table, MODALITIES)



def paper_values(table: str) -> pd.DataFrame:
    """The printed values of a paper table (shipped with the package)."""
    ref = resources.files("iman") / "resources" / "paper_tables" / f"{table}.csv"
    with ref.open() as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)



def _paper_row(table: str, labels: dict[str, Any]) -> dict[str, float]:
    paper = paper_values(table)
    key = dict(labels)
    if "method" in key:
        key["method"] = method_label(key["method"])
    if "backbone" in key:
        key["backbone"] = method_label(key["backbone"])
    mask = np.ones(len(paper), bool)
    for k, v in key.items():
        if k not in paper.columns:
            return {}
        mask &= paper[k].astype(str) == str(v)
    if not mask.any():
        return {}
    row = paper[mask].iloc[0]
    return {f"paper_{c}": float(row[c]) for c in paper.columns
            if c.endswith(("_dsc", "_hd")) and row[c] != ""}



def build_table(table: str, rows: list[tuple[dict[str, Any], list[dict[str, Any]]]]
                ) -> pd.DataFrame:
    """One CSV row per table row: labels, reproduced mean/std over runs, paper values.

    The number of test cases behind a row (``<mod>_n_cases``) needs the per-case rows and is
    added by :func:`add_significance`.
    """
    records = []
    modalities = table_modalities(table)
    for labels, summaries in rows:
        rec: dict[str, Any] = dict(labels)
        if "method" in labels:
            rec["method"] = method_label(labels["method"])
        for modality in modalities:
            for short, (col, _) in REPORTED.items():
                vals = [s["branches"][modality]["test"][col]["mean"] for s in summaries
                        if modality in s["branches"]]
                if vals:
                    rec[f"{modality}_{short}"] = float(np.mean(vals))
                    rec[f"{modality}_{short}_std"] = (float(np.std(vals, ddof=1))
                                                      if len(vals) > 1 else np.nan)
            loops = [s["branches"][modality]["loop"] for s in summaries
                     if modality in s["branches"]]
            if loops:
                rec[f"{modality}_loop"] = ",".join(map(str, loops))
        rec.update(_paper_row(table, labels))
        rec["n_runs"] = len(summaries)  # seeds x folds
        records.append(rec)
    return pd.DataFrame(records)



_STAT_OF = {short: m.column for short, m in REPORTED_METRICS.items() if m.tested}
"""Table columns tested in stats.csv (their p_holm and paired difference set the marks)."""



def _table_reference_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The comparisons of ``stats`` against their table's reference row (``primary``; derived
    with :func:`iman.evaluation.stats.table_reference_flags` for a frame without that column)."""
    from iman.evaluation.stats import table_reference_flags

    if "primary" in stats:
        return stats[stats["primary"].astype(bool)]
    keep = pd.Series(False, index=stats.index)
    tables = stats.groupby("table").groups.values() if "table" in stats else [stats.index]
    for idx in tables:
        pairs = stats.loc[idx, ["row", "reference"]].drop_duplicates()
        flags = table_reference_flags(list(pairs["row"]), list(pairs["reference"]))
        primary = {(r, ref) for (r, ref), f in zip(pairs.itertuples(index=False), flags) if f}
        keep[idx] = [(r, ref) in primary
                     for r, ref in zip(stats.loc[idx, "row"], stats.loc[idx, "reference"])]
    return stats[keep]



def _case_counts(df: pd.DataFrame, per_case: list[list[pd.DataFrame]]) -> None:
    """``<mod>_n_cases``: distinct test cases over a row's runs (a case tested by 3 seeds
    counts once), placed after ``<mod>_loop``; then ``<mod>_n_empty``: the empty predictions
    among the row's test rows (cases × runs, :func:`iman.evaluation.stats.count_empty`)."""
    from iman.evaluation.stats import count_empty, tested_rows

    for modality in MODALITIES:
        if f"{modality}_loop" not in df:
            continue
        counts = []
        for runs in per_case:
            ids: set[str] = set()
            for f in runs:
                rows = tested_rows(f[f["modality"] == modality])
                ids.update(rows["case_id"].astype(str))
            counts.append(len(ids) if ids else None)
        empty = [count_empty([f[f["modality"] == modality] for f in runs]) for runs in per_case]
        after = f"{modality}_loop"
        for col, values in ((f"{modality}_n_cases", pd.array(counts, dtype="Int64")),
                            (f"{modality}_n_empty", pd.array(
                                [None if np.isnan(e) else int(e) for e in empty],
                                dtype="Int64"))):
            if col in df:
                df[col] = values
            else:
                df.insert(df.columns.get_loc(after) + 1, col, values)
            after = col



def add_significance(df: pd.DataFrame, row_names: list[str],
                     per_case: list[list[pd.DataFrame]], stats: pd.DataFrame | None
                     ) -> dict[str, dict[str, Any]]:
    """Add the per-case facts of each row to ``df`` and return, per displayed column, how its
    best row compares with the runner-up (what decides its bold).

    Added columns: ``<mod>_n_cases`` (distinct test cases over the row's runs),
    ``<mod>_n_empty`` (empty predictions), ``reference`` (the row's table reference row),
    ``<mod>_<dsc|hd>_p_holm`` and ``<mod>_<dsc|hd>_diff`` (the Holm-adjusted p and the paired
    mean difference row − reference, from ``stats``, matched on (row, reference): a row's
    comparisons with other rows never set its mark). ``row_names``/``per_case`` follow
    ``df``'s rows (``per_case``: each run's rows).

    Returned: per column ``{"p": p, "favours": f}``: the two-sided p
    (:func:`iman.evaluation.stats.compare`) of the best row vs the runner-up on their common
    cases, and which one the paired mean difference favours (``best``, ``runner-up``, or
    ``tie`` when the two means or the paired difference are equal).
    """
    from iman.evaluation.stats import case_means, compare

    _case_counts(df, per_case)
    if stats is not None and len(stats):
        primary = _table_reference_rows(stats)
        reference = dict(zip(primary["row"], primary["reference"]))
        if len(reference) != len(primary[["row", "reference"]].drop_duplicates()):
            raise ValueError("a row of the table has two table reference rows in stats")
        df["reference"] = [reference.get(r, "") for r in row_names]
        for modality in MODALITIES:
            for short, metric in _STAT_OF.items():
                sub = primary[(primary["modality"] == modality) & (primary["metric"] == metric)]
                keys = list(zip(sub["row"], sub["reference"]))
                p = dict(zip(keys, sub["p_holm"]))
                diff = dict(zip(keys, sub["mean_diff"]))
                if f"{modality}_{short}" in df:
                    df[f"{modality}_{short}_p_holm"] = [p.get((r, reference.get(r)), np.nan)
                                                        for r in row_names]
                    df[f"{modality}_{short}_diff"] = [diff.get((r, reference.get(r)), np.nan)
                                                      for r in row_names]
    separation: dict[str, dict[str, Any]] = {}
    for modality in MODALITIES:
        for short, (metric, higher) in REPORTED.items():
            col = f"{modality}_{short}"
            if col not in df or df[col].notna().sum() < 2:
                continue
            order = df[col].sort_values(ascending=not higher).dropna().index
            best, second = order[0], order[1]
            if df.at[best, col] == df.at[second, col]:
                separation[col] = {"p": 1.0, "favours": "tie"}
                continue

            def values(i: Any, metric: str = metric, modality: str = modality) -> pd.Series:
                runs = [f[f["modality"] == modality] for f in per_case[i]]
                return case_means(runs, metric)

            c = compare(values(best), values(second))
            towards = c.mean_diff if higher else -c.mean_diff
            favours = "best" if towards > 0 else "runner-up" if towards < 0 else "tie"
            separation[col] = {"p": c.p, "favours": favours}
    return separation



def init_files(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The pretrained files a row's networks started from ("" for a random start), read from
    its summaries' node records."""
    return sorted({Path(rec["protocol"]["weights"]).name if rec["protocol"].get("weights")
                   else "" for s in summaries
                   for rec in s.get("provenance", {}).values() if "protocol" in rec})


def table_data(name: str, rows: Sequence[tuple[dict[str, Any], Sequence[str]]],
               files: Mapping[str, str | Path], csv: Path, marks: Path) -> pd.DataFrame:
    """One paper table's numbers (``csv``) and marks (``marks``, JSON: per displayed column
    the p of its best row vs the runner-up, ``separation``; per row the pretrained files its
    networks started from, ``initialisation``) from its rows (labels, experiment names), their
    summaries (:func:`~iman.names.summary_key`), per-case rows
    (:func:`~iman.names.per_case_key`) and the table's paired comparisons (``stats``)."""
    from iman.experiments import row_label

    loaded = {exp: json.loads(Path(files[summary_key(exp)]).read_text())
              for _, exps in rows for exp in exps}
    df = build_table(name, [(dict(lab), [loaded[e] for e in exps]) for lab, exps in rows])
    per_case = {exp: pd.read_csv(files[per_case_key(exp)], dtype={"case_id": str})
                for _, exps in rows for exp in exps}
    separation = add_significance(
        df, [row_label(dict(lab)) for lab, _ in rows],
        [[per_case[e] for e in exps] for _, exps in rows],
        pd.read_csv(files["stats"], dtype={"seed_diffs": str}))
    init = [[row_label(dict(lab)), init_files([loaded[e] for e in exps])] for lab, exps in rows]
    for path in (csv, marks):
        path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    marks.write_text(json.dumps({"separation": separation, "initialisation": init,
                                 "empty_penalty_mm": empty_penalties(per_case.values())},
                                indent=1))
    return df


def empty_penalties(frames: Iterable[pd.DataFrame]) -> list[float]:
    """The distinct HD penalties (mm, the image diagonals) of the empty predictions among the
    test rows of ``frames``, sorted; empty when there are none."""
    from iman.evaluation.metrics import EMPTY_PRED
    from iman.evaluation.stats import tested_rows

    values: set[float] = set()
    for f in frames:
        if EMPTY_PRED in f:
            rows = tested_rows(f)
            values.update(float(v) for v in rows.loc[rows[EMPTY_PRED] == 1, "std_hd_mm"])
    return sorted(values)
