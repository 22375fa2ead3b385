"""Every paired comparison of a table (table_stats rule) and their concatenation (stats rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from iman.names import per_case_key

__all__ = ["STAT_METRICS", "concat_stats", "stats_table"]


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
    ``modalities``: table → the modalities it tests (default
    :data:`iman.evaluation.paper_tables.TABLE_MODALITIES`: Table III CEUS only, the others US and
    CEUS). ``primary`` marks a comparison against the row's table reference row
    (:func:`iman.evaluation.stats.table_reference_flags`), the one a table's ``*`` shows;
    ``better`` is the sign of ``mean_diff`` (and ``effect_size``) that means the row is
    better. Holm's correction runs within each table, modality and metric.
    """
    from iman.evaluation.paper_tables import table_modalities
    from iman.evaluation.stats import (
        CI_METHOD,
        TEST,
        case_means,
        compare,
        holm,
        table_reference_flags,
    )

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
